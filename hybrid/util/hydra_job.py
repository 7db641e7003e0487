"""What Hydra says about the running job: its run dir, its command-line overrides, its place in a sweep."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig


def run_dir(cfg: DictConfig) -> Path:
    """The Hydra run dir of this job (``paths.output_dir``), created if needed."""
    path = Path(str(cfg.paths.output_dir))
    path.mkdir(parents=True, exist_ok=True)
    return path


def override_key(override: str) -> str:
    """The key a command-line override sets: ``+model.emb_dim=48`` -> ``model.emb_dim`` (Hydra's
    ``+`` / ``++`` / ``~`` prefixes dropped)."""
    return override.split("=", 1)[0].lstrip("+~")


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
