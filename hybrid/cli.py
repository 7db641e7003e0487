"""Glue for the Hydra entry points: run dir lookup and one-line errors."""

from __future__ import annotations

import logging
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
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
    one-line message and exit code 2 (or the error's own ``exit_code``, e.g. 143 after SIGTERM)."""
    code = 2
    try:
        return task(cfg)
    except HybridError as err:
        log.error("%s", one_line(err))
        code = getattr(err, "exit_code", 2)
    except MissingMandatoryValue as err:
        log.error("%s must be set on the command line", err.full_key)
    raise SystemExit(code)
