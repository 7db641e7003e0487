"""Score a model on a dataset and write what a person reads: predictions, metrics, confusion matrix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn
from torch.utils.data import DataLoader

from hybrid.data.labels import LabelSpec
from hybrid.engine.loop import Predictions, predict
from hybrid.engine.outputs import plot_confusion_matrix, write_predictions
from hybrid.engine.runtime import Runtime
from hybrid.metrics import compute_metrics, single_label_confusion


@dataclass
class Evaluation:
    """Predictions of one pass and, when labels are known, their metrics (unprefixed)."""

    predictions: Predictions
    names: list[str]
    metrics: dict

    def predicted_labels(self, spec: LabelSpec) -> list[str]:
        """Predicted class name per sample (argmax)."""
        return [spec.class_names[i] for i in self.predictions.probs.argmax(axis=1)]


def evaluate(
    model: nn.Module,
    loader: DataLoader,
    spec: LabelSpec,
    runtime: Runtime,
    labelled: bool = True,
    criterion: nn.Module | None = None,
    label: str = "evaluate",
) -> Evaluation:
    """Predict every sample of ``loader``; compute metrics when ``labelled``."""
    preds = predict(model, loader, spec, runtime, criterion if labelled else None, label)
    names = [loader.dataset.names[i] for i in preds.indices]
    metrics = {}
    if labelled:
        metrics = compute_metrics(preds.probs, preds.targets, spec)
        if criterion is not None:
            metrics["loss"] = preds.loss
    return Evaluation(preds, names, metrics)


def write_evaluation(run_dir: Path, evaluation: Evaluation, spec: LabelSpec, title: str) -> None:
    """``predictions.csv`` and, with labels, ``confusion_matrix.png`` in ``run_dir``."""
    preds = evaluation.predictions
    write_predictions(
        run_dir / "predictions.csv", evaluation.names, preds.probs, spec.class_names, evaluation.predicted_labels(spec)
    )
    if evaluation.metrics and spec.single_label:
        matrix = single_label_confusion(preds.probs, preds.targets, spec.num_labels)
        plot_confusion_matrix(run_dir / "confusion_matrix.png", np.asarray(matrix), spec.class_names, title)


def test_model(
    model: nn.Module, loader: DataLoader, spec: LabelSpec, runtime: Runtime, run_dir: Path, labelled: bool = True
) -> Evaluation:
    """The final evaluation of a run, shared by ``train.py`` and ``infer.py`` so their figures match:
    predictions of ``loader``, metrics when ``labelled``, and the files of :func:`write_evaluation`."""
    evaluation = evaluate(model, loader, spec, runtime, labelled, label="test")
    write_evaluation(run_dir, evaluation, spec, title=f"test ({len(evaluation.names)} images)")
    return evaluation
