"""Experiment tracking: Weights & Biases (offline without credentials) or nothing.

``wandb`` is imported only when ``logger=wandb`` is chosen, so ``logger=none`` loads no network
client at all.
"""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from urllib.parse import urlparse

from omegaconf import DictConfig

log = logging.getLogger(__name__)


class Tracker:
    """The tracking interface; this base class records nothing (``logger=none``)."""

    @property
    def run_id(self) -> str | None:
        """The tracker's id of this run (stored in checkpoints so a resumed run continues it)."""
        return None

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        """Record metrics, optionally at a step (the epoch)."""

    def log_summary(self, metrics: dict) -> None:
        """Record final values (test metrics, parameter counts)."""

    def log_image(self, key: str, path: Path) -> None:
        """Record an image file (plots)."""

    def finish(self, exit_code: int = 0) -> None:
        """Close the run."""


def has_wandb_credentials() -> bool:
    """An API key in the environment or in ``~/.netrc`` for the configured W&B host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_mode(requested: str) -> str:
    """``auto``: ``WANDB_MODE`` if set, else online with credentials and offline without."""
    if requested != "auto":
        return requested
    return os.environ.get("WANDB_MODE") or ("online" if has_wandb_credentials() else "offline")


class WandbTracker(Tracker):
    """A W&B run whose files live inside the Hydra run dir."""

    def __init__(self, cfg: DictConfig, run_dir: Path, config: dict, job_type: str, resume_id: str | None = None):
        import wandb

        self.wandb = wandb
        self.mode = wandb_mode(cfg.mode)
        run_dir.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            project=cfg.project,
            entity=cfg.get("entity"),
            group=cfg.get("group"),
            tags=list(cfg.get("tags") or []),
            name=cfg.get("name"),
            job_type=job_type,
            dir=str(run_dir),
            config=config,
            mode=self.mode,
            reinit="finish_previous",
            id=resume_id,
            resume="allow" if resume_id else None,
        )
        log.info("W&B run %s (%s) in %s", self.run.id, self.mode, self.run.dir)

    @property
    def run_id(self) -> str | None:
        return self.run.id

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        self.run.log(metrics, step=step)

    def log_summary(self, metrics: dict) -> None:
        self.run.summary.update(metrics)

    def log_image(self, key: str, path: Path) -> None:
        self.run.log({key: self.wandb.Image(str(path))})

    def finish(self, exit_code: int = 0) -> None:
        run_dir = Path(self.run.dir).parent
        self.run.finish(exit_code=exit_code)
        if self.mode == "offline":
            log.info("W&B run saved offline; upload it with: wandb sync %s", run_dir)


def build_tracker(cfg: DictConfig, run_dir: Path, config: dict, job_type: str, resume_id: str | None = None) -> Tracker:
    """The tracker chosen by the ``logger`` config group; ``resume_id`` continues that run."""
    if cfg.backend == "none":
        return Tracker()
    if cfg.backend == "wandb":
        return WandbTracker(cfg, run_dir, config, job_type, resume_id)
    raise ValueError(f"logger.backend={cfg.backend!r}; choose wandb or none")
