"""The CCTV-Pipe temporal metric (VideoPipe challenge, ICPR 2022) that scores timed events.

Each prediction is a (video, label, moment, score); each truth a (video, label, moment). Per label,
predictions are matched one to one in descending score order to the nearest unmatched truth in the
same video within a distance threshold (5, 10, 15 s), as the challenge's ``eval_detection.py``
matches them; average precision is the VOC all-point interpolated area. The files it reads:
:mod:`~hybrid.video.event_files`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

# The challenge's distance thresholds, in seconds.
DISTANCE_THRESHOLDS = (5, 10, 15)


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
