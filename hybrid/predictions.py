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
