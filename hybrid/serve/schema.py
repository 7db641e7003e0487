"""``hybrid serve``'s options, each declared once with its default and help (its flags are made
from them, :func:`hybrid.util.cli.add_options`): the model and its batches (:class:`ServeOptions`),
how videos are sampled and scores become events (:class:`VideoOptions`, also ``hybrid infer``'s
``video.*`` keys), how a live source is kept (:class:`LiveSettings`). The survey's own options are
``hybrid.survey.schema``'s."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hybrid.decisions import THRESHOLD
from hybrid.errors import DataError
from hybrid.serve.runtimes import DEFAULT_RUNTIME, RUNTIMES
from hybrid.util.cli import option, spec_from
from hybrid.video.events import EventSettings
from hybrid.video.sampling import check_fps

# Images or frames per forward pass, unless --batch says otherwise (every serving function's default).
BATCH = 16


@dataclass(frozen=True)
class ServeOptions:
    """How ``hybrid serve`` and ``hybrid survey`` run the model: where the files go, the decision
    threshold, the runtime, its threads and the batch."""

    out: str = option(".", "folder for the output files")
    threshold: float | None = option(None, "decision threshold (none given: the model's, tuned or 0.5)")
    runtime: str = option(DEFAULT_RUNTIME, "what runs the .onnx", choices=sorted(RUNTIMES))
    threads: int | None = option(None, "intra-op threads (none given: the runtime's choice)")
    batch: int = option(BATCH, "images or frames per forward pass")


@dataclass
class VideoOptions:
    """How frames are sampled and scores become events (``infer.py``'s ``video.*`` keys, same
    defaults); ``threshold`` ``None``: the model's own (tuned, or 0.5)."""

    fps: float = option(2.0, "frames sampled per second, by timestamp")
    smoothing_s: float = option(1.0, "moving-average window over each class's scores, s")
    merge_gap_s: float = option(1.0, "segments of a class closer than this merge, s")
    min_duration_s: float = option(1.0, "shorter events are dropped, s")
    threshold: float | None = option(None, "an event's smoothed score stays at or above this")


def video_options(flags: Mapping) -> VideoOptions:
    """The ``--fps``, ``--smoothing-s``, ... flags (parsed, as a mapping) as :class:`VideoOptions`,
    checked as events check them, so a bad value stops before the model is loaded."""
    options = spec_from(VideoOptions, {**flags, "fps": check_fps(flags["fps"])})
    threshold = THRESHOLD if options.threshold is None else options.threshold
    EventSettings(threshold, options.smoothing_s, options.merge_gap_s, options.min_duration_s)
    return options


@dataclass(frozen=True)
class LiveSettings:
    """How a live source is kept (``hybrid serve``'s live flags, declared here once)."""

    timeout: float = option(10.0, "seconds without a frame that count as a stall: the source is then reopened")
    # A camera rebooting or a tether plugged back takes tens of seconds to a few minutes; past 5
    # minutes the camera is more likely dead than restarting, and exit 1 lets a supervisor's
    # Restart=on-failure start hybrid serve again (which continues the same --out) and show it.
    give_up_s: float = option(
        300.0, "seconds without any frame, reopening all the while, after which the run ends (exit 1)"
    )
    max_lag_s: float = option(1.0, "a sample that waited longer than this for the model is skipped for the newest")
    realtime: bool = option(False, "play a video file at its own timestamps, as a camera")

    def __post_init__(self):
        for name in ("timeout", "give_up_s"):
            if getattr(self, name) <= 0:
                raise DataError(f"--{name.replace('_', '-')}={getattr(self, name)}: must be > 0 seconds")
        if self.max_lag_s < 0:
            raise DataError(f"--max-lag-s={self.max_lag_s}: must be >= 0 seconds")
