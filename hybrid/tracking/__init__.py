"""Experiment tracking: Weights & Biases (offline without credentials) or nothing (``logger=none``).

``wandb`` is imported only when ``logger=wandb`` is chosen, so ``logger=none`` loads no network
client at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from hybrid.tracking.base import Tracker
from hybrid.tracking.config import BACKENDS, check_backend
from hybrid.tracking.run_info import run_identity, run_metadata
from hybrid.util.hydra_job import command_line_overrides


def build_tracker(
    cfg: DictConfig,
    run_dir: Path,
    job_type: str,
    tags: Sequence[str] = (),
    monitor: str | None = None,
    resume_id: str | None = None,
) -> Tracker:
    """The tracker chosen by ``cfg.logger`` for a ``train`` or ``infer`` job of the composed ``cfg``.

    The tracked config is the resolved ``cfg`` plus ``run`` metadata: command line, overrides and
    git commit.
    """
    backend = cfg.logger.backend
    if backend == "none":
        return Tracker()
    check_backend(backend)
    from hybrid.tracking.wandb_tracker import WandbTracker

    config = OmegaConf.to_container(cfg, resolve=True)
    config["run"] = run_metadata(command_line_overrides())
    identity = run_identity(cfg.logger, str(cfg.task_name), run_dir, list(tags))
    return WandbTracker(cfg.logger, run_dir, config, job_type, identity, monitor, resume_id)


def log_results_table(
    cfg: DictConfig, run_dir: Path, job_type: str, tags: Sequence[str], key: str, frame, plot: tuple[str, Path] | None
) -> None:
    """One tracker run of ``cfg.logger`` holding a table of results (a pandas frame, logged as
    ``key``) and optionally a plot (``(key, path)``): the benchmark's efficiency table, a sweep's
    comparison."""
    tracker = build_tracker(cfg, run_dir, job_type, tags)
    try:
        tracker.log_table(key, list(frame.columns), frame.astype(object).values.tolist())
        if plot:
            tracker.log_image(*plot)
    finally:
        tracker.finish(0)


__all__ = ["BACKENDS", "Tracker", "build_tracker", "log_results_table"]
