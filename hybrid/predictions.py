"""The files a prediction run leaves, written the same way by ``infer.py`` / ``train.py`` and by
torch-free serving (``hybrid serve``), with the standard library's csv module: ``predictions.csv``
(``Filename``, one probability column per class named as the class, ``prediction``; rows sorted by
``Filename``) and ``skipped.csv`` (``Filename``, ``reason``: missing or unreadable)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hybrid.util.atomic import atomic_write

FILE = "predictions.csv"
SKIPPED_FILE = "skipped.csv"
FLOAT_FORMAT = "%.9g"  # a float32 probability round-trips


def write_predictions(
    path: Path, names: Sequence[str], probs: np.ndarray, class_names: Sequence[str], predicted: Sequence[str]
) -> Path:
    """Write ``predictions.csv`` at ``path`` atomically (sorted by ``Filename``, stable)."""
    order = sorted(range(len(names)), key=lambda i: str(names[i]))

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as handle:
            out = csv.writer(handle, lineterminator="\n")
            out.writerow(["Filename", *class_names, "prediction"])
            for i in order:
                out.writerow([names[i], *(FLOAT_FORMAT % float(p) for p in probs[i]), predicted[i]])

    return atomic_write(path, write)


def write_skipped(path: Path, reasons: dict[str, str]) -> Path:
    """Write ``skipped.csv`` at ``path``: each skipped image's name and why, sorted by name."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as handle:
            out = csv.writer(handle, lineterminator="\n")
            out.writerow(["Filename", "reason"])
            out.writerows(sorted(reasons.items()))

    return atomic_write(path, write)


# --- frames.csv: the sampled frames of videos -------------------------------------------------

FRAMES_FILE = "frames.csv"
FRAMES_FLOAT_FORMAT = "%.6g"


def frame_rows(
    video: str, frame_indices: Sequence[int], times: Sequence[float], probs: np.ndarray, predicted: Sequence[str]
) -> list[list]:
    """One ``frames.csv`` row per sampled frame: ``video, frame_index, time_s`` (to 0.1 ms), a score
    per class, ``prediction``."""
    rounded = np.round(np.asarray(times, np.float64), 4)
    return [
        [video, int(index), FRAMES_FLOAT_FORMAT % float(t), *(FRAMES_FLOAT_FORMAT % float(p) for p in row), label]
        for index, t, row, label in zip(frame_indices, rounded, probs, predicted, strict=True)
    ]


def frames_header(class_names: Sequence[str], extra_columns: Sequence[str] = ()) -> list[str]:
    """The columns of ``frames.csv`` (a survey adds ``distance_m``, ``distance_source``)."""
    return ["video", "frame_index", "time_s", *class_names, "prediction", *extra_columns]


def write_frames(
    path: Path, class_names: Sequence[str], rows: Sequence[list], extra_columns: Sequence[str] = ()
) -> Path:
    """Write ``frames.csv`` at ``path`` whole, atomically (after each video, so an interruption keeps
    the videos done); rows carry ``extra_columns`` at their end."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as handle:
            out = csv.writer(handle, lineterminator="\n")
            out.writerow(frames_header(class_names, extra_columns))
            out.writerows(rows)

    return atomic_write(path, write)
