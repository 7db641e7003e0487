"""Timed events in a video: from per-frame class scores to defect segments, and the CCTV-Pipe
temporal metric that scores them (VideoPipe challenge, ICPR 2022).

Events: a class's score curve is smoothed over a time window, cut where it stays at or above a
threshold, merged across short gaps and kept when long enough. Every step works on timestamps,
not frame counts, so a variable frame rate changes nothing.

The metric: each prediction is a (video, label, moment, score); each truth a (video, label,
moment). Per label, predictions are matched one to one in descending score order to the nearest
unmatched truth in the same video within a distance threshold (5, 10, 15 s), as the challenge's
``eval_detection.py`` matches them; average precision is the VOC all-point interpolated area.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hybrid.decisions import THRESHOLD
from hybrid.errors import ConfigError, DataError
from hybrid.util.atomic import atomic_write, atomic_write_text

# Samples arriving one after another are at least this far apart (video frames are): what lets
# a live tracker settle a smoothed score without waiting for one sample more.
MIN_SAMPLE_GAP_S = 1e-3
# The challenge's distance thresholds, in seconds.
DISTANCE_THRESHOLDS = (5, 10, 15)


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


def interpolated_average_precision(precision: np.ndarray, recall: np.ndarray) -> float:
    """VOC all-point interpolated AP: the area under the precision envelope (the best precision at
    any higher recall), stepping where recall changes."""
    envelope = np.concatenate([[0.0], precision, [0.0]])
    steps = np.concatenate([[0.0], recall, [1.0]])
    envelope = np.maximum.accumulate(envelope[::-1])[::-1]
    changed = np.flatnonzero(steps[1:] != steps[:-1]) + 1
    return float(np.sum((steps[changed] - steps[changed - 1]) * envelope[changed]))


def _label_average_precision(truth: list[tuple[str, float]], predictions: list[tuple[str, float, float]], distance):
    """AP of one label at one distance: ``truth`` (video, moment), ``predictions`` (video, moment, score)."""
    if not predictions:
        return 0.0
    by_video: dict[str, list[int]] = {}
    for index, (video, _) in enumerate(truth):
        by_video.setdefault(video, []).append(index)
    matched = np.zeros(len(truth), bool)
    order = np.argsort([score for _, _, score in predictions], kind="stable")[::-1]
    hits = np.zeros(len(predictions))
    for rank, index in enumerate(order):
        video, moment, _ = predictions[index]
        candidates = by_video.get(video, [])
        gaps = np.abs(np.array([truth[c][1] for c in candidates]) - moment)
        for nearest in np.argsort(gaps, kind="stable"):  # nearest first; a matched truth is passed over
            if gaps[nearest] > distance:
                break
            if not matched[candidates[nearest]]:
                matched[candidates[nearest]] = True
                hits[rank] = 1
                break
    true_positives = np.cumsum(hits)
    precision = true_positives / np.arange(1, len(hits) + 1)
    return interpolated_average_precision(precision, true_positives / len(truth))


def temporal_map(
    truth: Iterable[tuple[str, str, float]],
    predictions: Iterable[tuple[str, str, float, float]],
    distances: Sequence[float] = DISTANCE_THRESHOLDS,
) -> dict[str, float]:
    """The CCTV-Pipe metric of ``predictions`` (video, label, moment, score) against ``truth``
    (video, label, moment): ``map@<d>`` per distance, their mean ``map``, and ``ap@<d>/<label>``
    for every label of the truth. Predicted labels the truth lacks are not scored (the challenge's
    classes are those of its ground truth); a label without predictions has AP 0."""
    truth_by_label: dict[str, list[tuple[str, float]]] = {}
    for video, label, moment in truth:
        truth_by_label.setdefault(label, []).append((video, float(moment)))
    predicted_by_label: dict[str, list[tuple[str, float, float]]] = {}
    for video, label, moment, score in predictions:
        predicted_by_label.setdefault(label, []).append((video, float(moment), float(score)))
    out: dict[str, float] = {}
    per_label: dict[str, dict[str, float]] = {}
    for distance in distances:
        name = f"{distance:g}"
        per_label[name] = {
            label: _label_average_precision(items, predicted_by_label.get(label, []), distance)
            for label, items in truth_by_label.items()
        }
        out[f"map@{name}"] = float(np.mean(list(per_label[name].values()))) if per_label[name] else 0.0
    out["map"] = float(np.mean([out[f"map@{d:g}"] for d in distances]))
    for name, values in per_label.items():
        out.update({f"ap@{name}/{label}": value for label, value in sorted(values.items())})
    return out


# --- the files of a video run: events.csv, and events.json in the CCTV-Pipe results format ----

EVENTS_FILE = "events.csv"
RESULTS_FILE = "events.json"
EVENT_COLUMNS = ["video", "label", "start_s", "end_s", "peak_s", "peak_score", "mean_score"]
EVENT_FLOAT_FORMAT = "%.4f"


def event_cells(event: Event) -> list:
    """The ``events.csv`` row of ``event``: times and scores to 4 decimals."""
    row = event.row()
    return [row[c] if isinstance(row[c], str) else EVENT_FLOAT_FORMAT % row[c] for c in EVENT_COLUMNS]


def results(events: Sequence[Event], videos: Sequence[str]) -> dict:
    """``{"results": {video: [{"label", "moment", "score"}]}}``: each event's peak time and score,
    every processed video listed (the CCTV-Pipe results format, for ``hybrid.jobs.evaluate_video``)."""
    found: dict[str, list] = {video: [] for video in videos}
    for e in events:
        found[e.video].append({"label": e.label, "moment": round(e.peak_s, 3), "score": round(e.peak_score, 6)})
    return {"results": found}


def write_events(folder: Path, events: Sequence[Event], videos: Sequence[str]) -> None:
    """``events.csv`` (one row per event) and ``events.json`` (:func:`results`) in ``folder``, each
    written whole, atomically."""

    def write_csv(tmp: Path) -> None:
        with open(tmp, "w", newline="") as handle:
            out = csv.writer(handle, lineterminator="\n")
            out.writerow(EVENT_COLUMNS)
            out.writerows(event_cells(e) for e in events)

    atomic_write(folder / EVENTS_FILE, write_csv)
    atomic_write_text(folder / RESULTS_FILE, json.dumps(results(events, videos), indent=1) + "\n")


# --- the CCTV-Pipe files: ground truth and results -------------------------------------------


def _read_json(path: Path, role: str, top: str) -> dict:
    if not path.is_file():
        raise DataError(f"{role}={path}: no such file")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{role}={path}: not JSON ({err})") from err
    if not isinstance(data, dict) or not isinstance(data.get(top), dict):
        raise DataError(f'{role}={path}: expected {{"{top}": {{video: ...}}}}')
    return data[top]


def _entry(path: Path, video: str, item, keys: tuple[str, ...]) -> tuple:
    try:
        return tuple(item[k] if k == "label" else float(item[k]) for k in keys)
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"{path}: video {video}: an entry lacks a number for one of {list(keys)}: {item}") from err


def read_truth(path: Path) -> list[tuple[str, str, float]]:
    """``(video, label, moment)`` of every annotation in a CCTV-Pipe ground-truth file."""
    database = _read_json(path, "labels", "database")
    rows = []
    for video, entry in database.items():
        for item in (entry or {}).get("annotations", []):
            rows.append((video, *_entry(path, video, item, ("label", "moment"))))
    if not rows:
        raise DataError(f"labels={path}: no annotations")
    return rows


def read_predictions(path: Path) -> list[tuple[str, str, float, float]]:
    """``(video, label, moment, score)`` of every prediction in a CCTV-Pipe results file."""
    results = _read_json(path, "predictions", "results")
    return [
        (video, *_entry(path, video, item, ("label", "moment", "score")))
        for video, items in results.items()
        for item in items or []
    ]
