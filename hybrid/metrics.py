"""Classification metrics, flat and keyed ``name`` or ``name/<class>`` (callers add ``split/``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from hybrid.data.labels import LabelSpec


def single_label_metrics(probs: np.ndarray, targets: np.ndarray, class_names: Sequence[str]) -> dict[str, float]:
    """Accuracy, macro and per-class precision / recall / F1 of argmax predictions.

    For two classes (Sewer-ML binary) ``f1_normal`` and ``f1_defect`` are the F1 of classes 0 and 1.
    """
    labels = list(range(len(class_names)))
    preds = probs.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(targets, preds, labels=labels, zero_division=0)
    out: dict[str, float] = {
        "num_samples": len(targets),
        "accuracy": float((preds == targets).mean()) if len(targets) else 0.0,
        "precision_macro": float(precision.mean()),
        "recall_macro": float(recall.mean()),
        "f1_macro": float(f1.mean()),
    }
    if len(class_names) == 2:
        out["f1_normal"], out["f1_defect"] = float(f1[0]), float(f1[1])
    for i, name in enumerate(class_names):
        out[f"precision/{name}"] = float(precision[i])
        out[f"recall/{name}"] = float(recall[i])
        out[f"f1/{name}"] = float(f1[i])
        out[f"support/{name}"] = int(support[i])
    return out


def compute_metrics(probs: np.ndarray, targets: np.ndarray, spec: LabelSpec) -> dict[str, float]:
    """Metrics of ``probs`` ``[N, C]`` against ``targets`` for the task of ``spec``."""
    if not spec.single_label:
        raise NotImplementedError("multi-label metrics arrive with the Sewer-ML benchmark task")
    return single_label_metrics(probs, targets, spec.class_names)


def monitor_mode(metric: str) -> str:
    """``min`` for losses, ``max`` for every score."""
    return "min" if metric.rsplit("/", 1)[-1].endswith("loss") else "max"


def single_label_confusion(probs: np.ndarray, targets: np.ndarray, num_classes: int) -> np.ndarray:
    """Confusion counts, rows true class, columns predicted class."""
    return confusion_matrix(targets, probs.argmax(axis=1), labels=list(range(num_classes)))


def prefixed(metrics: dict, split: str) -> dict:
    """``{"f1_macro": x}`` -> ``{"val/f1_macro": x}``."""
    return {f"{split}/{k}": v for k, v in metrics.items()}
