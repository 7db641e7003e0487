"""Glue for the Hydra entry points: run dir lookup and one-line errors."""

from __future__ import annotations

import logging
import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue

from hybrid.errors import HybridError

log = logging.getLogger("hybrid")


def run_dir(cfg: DictConfig) -> Path:
    """The Hydra run dir of this job (``paths.output_dir``), created if needed."""
    path = Path(str(cfg.paths.output_dir))
    path.mkdir(parents=True, exist_ok=True)
    return path


def command_line_overrides() -> list[str]:
    """The overrides this job was started with (empty outside Hydra)."""
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


@dataclass(frozen=True)
class MultirunJob:
    """One job of a Hydra multirun (``-m``) sweep."""

    sweep_dir: Path
    number: int
    swept: str  # this job's values of the swept keys, e.g. "model.emb_dim=48 trainer.lr=0.003"


def multirun_job() -> MultirunJob | None:
    """This job's place in a multirun sweep, or None for a single run (or outside Hydra).

    The swept values are the job's overrides that were not fixed on the command line: values
    picked from ``a,b`` lists or ranges, and those chosen by a sweeper such as Optuna.
    """
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    hydra_cfg = HydraConfig.get()
    fixed = fixed_override_keys(sys.argv[1:])
    swept = [o for o in hydra_cfg.overrides.task if o.split("=", 1)[0] not in fixed]
    return MultirunJob(Path(hydra_cfg.sweep.dir), int(hydra_cfg.job.num), " ".join(swept))


def fixed_override_keys(arguments: list[str]) -> set[str]:
    """Keys given a single value (not a sweep) among command-line ``arguments``."""
    overrides = [a for a in arguments if not a.startswith("-") and "=" in a]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException:  # not Hydra's syntax: treat nothing as fixed
        return set()
    return {o.get_key_element() for o in parsed if not o.is_sweep_override()}


def resume_command(ckpt: Path) -> str:
    """The command that resumes this job from ``ckpt``: same script, launcher and overrides."""
    overrides = [o for o in command_line_overrides() if not o.startswith(("ckpt_path=", "+ckpt_path="))]
    script = sys.argv[0] if sys.argv and sys.argv[0].endswith(".py") else "train.py"
    nproc = os.environ.get("LOCAL_WORLD_SIZE")
    launcher = f"torchrun --nproc_per_node={nproc}" if nproc and int(os.environ.get("WORLD_SIZE", 1)) > 1 else "python"
    words = [*launcher.split(), script, f"ckpt_path={ckpt.resolve()}", *overrides]
    return " ".join(shlex.quote(w) for w in words)


def one_line(err: Exception) -> str:
    """The message of ``err`` on one line. An error raised in a DataLoader worker comes back wrapped
    with the worker's traceback; its last line carries the original message."""
    text = str(err)
    if "Original Traceback" in text:
        last = text.strip().splitlines()[-1]
        return last.split(": ", 1)[1] if ": " in last else last
    return text


def run_entry(task: Callable[[DictConfig], object], cfg: DictConfig):
    """Run ``task``; a :class:`HybridError` or an unset required key (``???``) stops it with a
    one-line message and exit code 2 (or the error's own ``exit_code``, e.g. 143 after SIGTERM).

    In a multirun sweep a failing job's error is raised on instead, after the same line, so Hydra
    records the job as failed and the sweep goes on with the next one (Optuna reports the trial as
    failed); an interruption still stops the whole sweep.
    """
    code = 2
    try:
        return task(cfg)
    except (HybridError, MissingMandatoryValue) as err:
        if isinstance(err, MissingMandatoryValue):
            log.error("%s must be set on the command line", err.full_key)
        else:
            log.error("%s", one_line(err))
            code = getattr(err, "exit_code", 2)
        if code == 2 and multirun_job() is not None:
            raise
    raise SystemExit(code)
