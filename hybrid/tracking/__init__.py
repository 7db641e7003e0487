"""Experiment tracking: Weights & Biases (offline without credentials) or nothing (``logger=none``),
from the registry :data:`~hybrid.tracking.registry.TRACKERS`; :func:`tracked` finishes a run
whatever happens in it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig

from hybrid.tracking.base import Tracker
from hybrid.tracking.registry import TRACKERS
from hybrid.tracking.schema import BACKENDS, check_backend


def build_tracker(
    cfg: DictConfig,
    run_dir: Path,
    job_type: str,
    tags: Sequence[str] = (),
    monitor: str | None = None,
    resume_id: str | None = None,
) -> Tracker:
    """The tracker ``cfg.logger.backend`` names in :data:`~hybrid.tracking.registry.TRACKERS`, for
    a ``train`` or ``infer`` job (``job_type``) of the composed ``cfg``."""
    open_tracker = TRACKERS[check_backend(cfg.logger.backend)]
    return open_tracker(cfg, run_dir, job_type, tags, monitor, resume_id)


@contextmanager
def tracked(tracker: Tracker) -> Iterator[Tracker]:
    """``with tracked(build_tracker(...)) as tracker:``: the run is finished with exit code 0 when
    the block completes and 1 when it raises (an interruption included), so it is never left open."""
    exit_code = 1
    try:
        yield tracker
        exit_code = 0
    finally:
        tracker.finish(exit_code)


def log_results_table(
    cfg: DictConfig, run_dir: Path, job_type: str, tags: Sequence[str], key: str, frame, plot: tuple[str, Path] | None
) -> None:
    """One tracker run of ``cfg.logger`` holding a table of results (a pandas frame, logged as
    ``key``) and optionally a plot (``(key, path)``): the benchmark's efficiency table, a sweep's
    comparison."""
    with tracked(build_tracker(cfg, run_dir, job_type, tags)) as tracker:
        tracker.log_table(key, list(frame.columns), frame.astype(object).values.tolist())
        if plot:
            tracker.log_image(*plot)


__all__ = ["BACKENDS", "TRACKERS", "Tracker", "build_tracker", "log_results_table", "tracked"]
