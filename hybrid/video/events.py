"""Timed events in a video: from per-frame class scores to defect segments (scored by the
CCTV-Pipe metric, :mod:`~hybrid.video.cctv_pipe`; written by :mod:`~hybrid.video.event_files`).

A class's score curve is smoothed over a time window, cut where it stays at or above a threshold,
merged across short gaps and kept when long enough. Every step works on timestamps, not frame
counts, so a variable frame rate changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from hybrid.decisions import THRESHOLD
from hybrid.errors import ConfigError, DataError

# Samples arriving one after another are at least this far apart (video frames are): what lets
# a live tracker settle a smoothed score without waiting for one sample more.
MIN_SAMPLE_GAP_S = 1e-3


@dataclass(frozen=True)
class EventSettings:
    """How score curves become events (the ``video.*`` keys)."""

    threshold: float = 0.5
    smoothing_s: float = 1.0
    merge_gap_s: float = 1.0
    min_duration_s: float = 1.0

    def __post_init__(self):
        if not 0 < self.threshold <= 1:
            raise ConfigError(f"video.threshold={self.threshold}: must be in (0, 1]")
        for name in ("smoothing_s", "merge_gap_s", "min_duration_s"):
            if getattr(self, name) < 0:
                raise ConfigError(f"video.{name}={getattr(self, name)}: must be >= 0 seconds")


def class_settings(
    class_names: Sequence[str], threshold, *, smoothing_s: float, merge_gap_s: float, min_duration_s: float
) -> dict[str, EventSettings]:
    """:class:`EventSettings` per class: ``threshold`` one for all or one per class (``None``: :data:`~hybrid.decisions.THRESHOLD`)."""
    levels = np.broadcast_to(np.asarray(THRESHOLD if threshold is None else threshold, float), (len(class_names),))
    return {
        name: EventSettings(float(level), float(smoothing_s), float(merge_gap_s), float(min_duration_s))
        for name, level in zip(class_names, levels, strict=True)
    }


@dataclass(frozen=True)
class Event:
    """One segment of a class: ``[start_s, end_s)``, its peak frame's time and score (raw, not
    smoothed) and the mean raw score over the segment."""

    video: str
    label: str
    start_s: float
    end_s: float
    peak_s: float
    peak_score: float
    mean_score: float

    def row(self) -> dict:
        """The ``events.csv`` row."""
        return asdict(self)


def smooth(times: np.ndarray, scores: np.ndarray, window_s: float) -> np.ndarray:
    """Mean of the scores within ``window_s / 2`` seconds of each sample (a centred moving average
    over time, so uneven sampling weighs nothing twice); ``window_s = 0`` leaves them as they are."""
    tracker = EventTracker("", "", EventSettings(smoothing_s=max(float(window_s), 0.0)))
    tracker.add(times, scores)
    return tracker.smoothed(0, len(tracker.times))


class _Growing:
    """A 1-D float64 array that grows at its end (doubling its storage), for scores as they arrive."""

    def __init__(self):
        self.data = np.zeros(64, np.float64)
        self.size = 0

    def extend(self, values: np.ndarray) -> None:
        needed = self.size + len(values)
        if needed > len(self.data):
            self.data = np.concatenate([self.data, np.zeros(max(needed, 2 * len(self.data)) - len(self.data))])
        self.data[self.size : needed] = values
        self.size = needed

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key):
        return self.data[: self.size][key]


class EventTracker:
    """The events of one class in one video or stream, as its scores arrive: :meth:`add` takes the
    next samples and returns the events that can no longer change; :meth:`close` ends the
    video and returns the rest. Offline detection (:func:`detect_events`) is this tracker fed
    all at once, so a live stream and its recording give the same events.

    A sample's smoothed score is settled once a sample more than ``smoothing_s / 2`` after it has
    arrived; an event is final once a settled sample lies more than ``merge_gap_s`` past its end
    with no new segment in between. So an event is known at most :meth:`latency_bound_s` after
    it ends. Samples come in time order, at least :data:`MIN_SAMPLE_GAP_S` apart (sampled video
    frames are). Memory: the scores and times of the video so far (24 bytes a sample).
    """

    def __init__(self, video: str, label: str, settings: EventSettings):
        self.video, self.label, self.settings = video, label, settings
        self.times, self.raw = _Growing(), _Growing()
        self.cumulative = _Growing()  # cumulative[i]: the sum of the first i raw scores
        self.cumulative.extend(np.zeros(1))
        self.settled = 0  # samples whose smoothed score is final
        self.run_first: int | None = None  # the open segment's first sample
        self.pending: list[int] | None = None  # a closed segment [first, stop) that may still merge

    @staticmethod
    def latency_bound_s(settings: EventSettings, fps: float) -> float:
        """How long after its end (in stream time) an event is known, at most, when samples come
        every ``1 / fps`` s: half the smoothing window (rounded up to whole samples), the merge
        gap, and one sample (the first past the gap)."""
        step = 1 / fps
        return math.ceil(settings.smoothing_s / 2 / step - 1e-6) * step + settings.merge_gap_s + step

    def add(self, times: Sequence[float], scores: Sequence[float]) -> list[Event]:
        """Take the next samples (``times`` increasing, after those already added); the events
        they make final."""
        times, scores = np.asarray(times, np.float64), np.asarray(scores, np.float64)
        if not len(times):
            return []
        if len(self.times) and times[0] < self.times[-1] + MIN_SAMPLE_GAP_S:
            raise DataError(
                f"{self.video}: a sample at {times[0]:.4f} s after one at {self.times[-1]:.4f} s "
                f"(samples must be {MIN_SAMPLE_GAP_S * 1000:g} ms apart or more, in time order)"
            )
        self.times.extend(times)
        self.raw.extend(scores)
        # sequential sums continuing the last one: the same floats as one cumsum over the whole video
        self.cumulative.extend(np.cumsum(np.concatenate([[self.cumulative[-1]], scores]))[1:])
        if self.settings.smoothing_s <= 0:
            return self.settle(len(self.times))
        # settled: no later sample can fall in its window, as the next comes MIN_SAMPLE_GAP_S after the last
        horizon = self.times[-1] + MIN_SAMPLE_GAP_S - self.settings.smoothing_s / 2 - 1e-9
        return self.settle(int(np.searchsorted(self.times[:], horizon, side="left")))

    def close(self) -> list[Event]:
        """End of the video: every sample settles; the events still open or pending."""
        events = self.settle(len(self.times))
        if self.run_first is not None:
            self._segment_ends(len(self.times))
        if self.pending is not None:
            events += self._finish(*self.pending)
            self.pending = None
        return events

    def settle(self, upto: int) -> list[Event]:
        """Settle the smoothed scores of the samples before ``upto``; the events that become final."""
        first = self.settled
        if upto <= first:
            return []
        values, times = self.smoothed(first, upto), self.times[:]
        self.settled = upto
        events = []
        for index, above in enumerate(values >= self.settings.threshold, start=first):
            if self.pending is not None and times[index] - self._end_of(self.pending[1]) > self.settings.merge_gap_s:
                events += self._finish(*self.pending)  # too far for any later segment to merge with it
                self.pending = None
            if above and self.run_first is None:
                self._segment_starts(index)
            elif not above and self.run_first is not None:
                self._segment_ends(index)
        return events

    def smoothed(self, first: int, upto: int) -> np.ndarray:
        """The smoothed scores of samples ``first`` to ``upto`` (final once they are settled): the
        mean of the raw scores within ``smoothing_s / 2`` of each (a centred moving average over
        time, so uneven sampling weighs nothing twice)."""
        times, window = self.times[:], self.settings.smoothing_s
        if window <= 0 or len(times) < 2:
            return self.raw[first:upto].copy()
        moments = times[first:upto]
        left = np.searchsorted(times, moments - window / 2 - 1e-9, side="left")
        right = np.searchsorted(times, moments + window / 2 + 1e-9, side="right")
        return (self.cumulative[right] - self.cumulative[left]) / (right - left)

    def _segment_starts(self, index: int) -> None:
        if self.pending is not None:  # within the merge gap (else _finish ran): one segment again
            self.run_first, self.pending = self.pending[0], None
        else:
            self.run_first = index

    def _segment_ends(self, stop: int) -> None:
        self.pending, self.run_first = [self.run_first, stop], None

    def _end_of(self, stop: int) -> float:
        """Where the slot of sample ``stop - 1`` ends: the next sample's time (the last: one typical step on)."""
        times = self.times[:]
        if stop < len(times):
            return float(times[stop])
        step = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
        return float(times[-1] + step)

    def _finish(self, first: int, stop: int) -> list[Event]:
        """The segment ``[first, stop)`` as an event, or none when shorter than ``min_duration_s``."""
        start_s, end_s = float(self.times[first]), self._end_of(stop)
        if end_s - start_s < self.settings.min_duration_s:
            return []
        raw = self.raw[first:stop]
        peak = int(np.argmax(raw))
        return [
            Event(
                self.video,
                self.label,
                start_s,
                end_s,
                float(self.times[first + peak]),
                float(raw[peak]),
                float(raw.mean()),
            )
        ]


def detect_events(
    video: str, label: str, times: Sequence[float], scores: Sequence[float], settings: EventSettings
) -> list[Event]:
    """The events of one class in one video from its per-frame ``scores`` at ``times`` (seconds,
    increasing). A segment runs from the first sample whose smoothed score reaches the threshold to
    the first that falls below it; segments closer than ``merge_gap_s`` merge; those shorter than
    ``min_duration_s`` are dropped. (:class:`EventTracker` fed the whole video at once.)"""
    tracker = EventTracker(video, label, settings)
    return tracker.add(times, scores) + tracker.close()


def video_events(
    video: str, times: Sequence[float], probs: np.ndarray, classes: Sequence[tuple[str, int]],
    settings: dict[str, EventSettings],
) -> list[Event]:  # fmt: skip
    """The events of every class in ``classes`` (``(label, column of probs)``) in one scored
    video, in order of start time (then label)."""
    found = [
        event
        for label, column in classes
        for event in detect_events(video, label, times, np.asarray(probs)[:, column], settings[label])
    ]
    return sorted(found, key=lambda e: (e.start_s, e.label))
