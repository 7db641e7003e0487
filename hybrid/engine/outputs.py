"""Files a run leaves in its run dir: metrics.json, history.csv, predictions.csv, plots."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd


def write_json(path: Path, data: Mapping) -> None:
    """Write ``data`` as indented JSON, replacing the file atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(dict(data), indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def write_history(path: Path, rows: Sequence[Mapping]) -> None:
    """One row per epoch; columns are the union of the rows' keys, ``epoch`` first."""
    frame = pd.DataFrame(list(rows))
    columns = ["epoch"] + [c for c in frame.columns if c != "epoch"]
    frame[columns].to_csv(path, index=False)


def write_predictions(
    path: Path, names: Sequence[str], probs: np.ndarray, class_names: Sequence[str], predicted: Sequence[str]
) -> pd.DataFrame:
    """``Filename``, one probability column per class, ``prediction``; sorted by ``Filename``."""
    frame = pd.DataFrame(probs, columns=list(class_names))
    frame.insert(0, "Filename", list(names))
    frame["prediction"] = list(predicted)
    frame = frame.sort_values("Filename", kind="stable").reset_index(drop=True)
    frame.to_csv(path, index=False, float_format="%.6f")
    return frame


def plot_confusion_matrix(path: Path, matrix: np.ndarray, class_names: Sequence[str], title: str) -> Path:
    """Save a confusion matrix (counts, rows true, columns predicted) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = max(3.5, 0.5 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    ax.imshow(matrix, cmap="Blues")
    ticks = range(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = matrix.max() / 2 if matrix.size else 0
    for i in ticks:
        for j in ticks:
            ax.text(
                j,
                i,
                int(matrix[i, j]),
                ha="center",
                va="center",
                color="white" if matrix[i, j] > threshold else "black",
            )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
