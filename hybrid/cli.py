"""Glue for the Hydra entry points: run dir lookup and one-line errors."""

from __future__ import annotations

import logging
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


def run_entry(task: Callable[[DictConfig], object], cfg: DictConfig):
    """Run ``task``; a :class:`HybridError` or an unset required key (``???``) stops it with a
    one-line message and exit code 2."""
    try:
        return task(cfg)
    except HybridError as err:
        log.error("%s", err)
    except MissingMandatoryValue as err:
        log.error("%s must be set on the command line", err.full_key)
    raise SystemExit(2)
