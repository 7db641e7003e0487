"""The trackers ``logger.backend`` names, as a registry: each name maps to a function that opens
that tracker's run for a job. A backend's client library is imported only when its run is opened,
so ``logger=none`` loads no network client (and gathers no run metadata). A new backend registers
itself in :data:`TRACKERS`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from hybrid.tracking.base import Tracker
from hybrid.tracking.run_info import run_identity, run_metadata
from hybrid.util.hydra_job import command_line_overrides

# (cfg, run_dir, job_type, tags, monitor, resume_id) -> the tracker of that run
OpenTracker = Callable[[DictConfig, Path, str, Sequence[str], "str | None", "str | None"], Tracker]


def no_tracker(cfg, run_dir, job_type, tags, monitor, resume_id) -> Tracker:
    """``logger=none``: the base tracker, which records nothing."""
    return Tracker()


def wandb_tracker(cfg, run_dir, job_type, tags, monitor, resume_id) -> Tracker:
    """``logger=wandb``: a W&B run (offline without credentials). The tracked config is the
    resolved ``cfg`` plus ``run`` metadata: command line, overrides and git commit."""
    from hybrid.tracking.wandb_tracker import WandbTracker

    config = OmegaConf.to_container(cfg, resolve=True)
    config["run"] = run_metadata(command_line_overrides())
    identity = run_identity(cfg.logger, str(cfg.task_name), run_dir, list(tags))
    return WandbTracker(cfg.logger, run_dir, config, job_type, identity, monitor, resume_id)


# logger.backend -> how its run is opened
TRACKERS: dict[str, OpenTracker] = {"wandb": wandb_tracker, "none": no_tracker}
