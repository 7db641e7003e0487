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

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hybrid.errors import ConfigError, DataError

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
    if window_s <= 0 or len(times) < 2:
        return np.asarray(scores, np.float64)
    cumulative = np.concatenate([[0.0], np.cumsum(scores, dtype=np.float64)])
    left = np.searchsorted(times, times - window_s / 2 - 1e-9, side="left")
    right = np.searchsorted(times, times + window_s / 2 + 1e-9, side="right")
    return (cumulative[right] - cumulative[left]) / (right - left)


def _sample_ends(times: np.ndarray) -> np.ndarray:
    """Where each sample's time slot ends: the next sample's time (the last: one typical step on)."""
    step = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
    return np.append(times[1:], times[-1] + step)


def detect_events(
    video: str, label: str, times: Sequence[float], scores: Sequence[float], settings: EventSettings
) -> list[Event]:
    """The events of one class in one video from its per-frame ``scores`` at ``times`` (seconds,
    increasing). A segment runs from the first sample whose smoothed score reaches the threshold to
    the first that falls below it; segments closer than ``merge_gap_s`` merge; those shorter than
    ``min_duration_s`` are dropped."""
    times, raw = np.asarray(times, np.float64), np.asarray(scores, np.float64)
    if not len(times):
        return []
    above = smooth(times, raw, settings.smoothing_s) >= settings.threshold
    edges = np.diff(np.concatenate([[0], above.astype(np.int8), [0]]))
    runs = list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))  # [first, stop)
    ends = _sample_ends(times)
    merged: list[list[int]] = []
    for first, stop in runs:
        if merged and times[first] - ends[merged[-1][1] - 1] <= settings.merge_gap_s:
            merged[-1][1] = stop
        else:
            merged.append([first, stop])
    events = []
    for first, stop in merged:
        start_s, end_s = float(times[first]), float(ends[stop - 1])
        if end_s - start_s < settings.min_duration_s:
            continue
        peak = first + int(np.argmax(raw[first:stop]))
        events.append(
            Event(video, label, start_s, end_s, float(times[peak]), float(raw[peak]), float(raw[first:stop].mean()))
        )
    return events


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
