"""Score a model on a dataset and write what a person reads: predictions, metrics, plots."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from hybrid.data.labels import LabelSpec
from hybrid.decisions import decided_labels
from hybrid.engine.loop import Predictions, predict
from hybrid.engine.outputs import (
    format_class_table,
    format_figures,
    plot_confusion_matrix,
    plot_per_class,
)
from hybrid.engine.runtime import Runtime
from hybrid.errors import ConfigError
from hybrid.metrics import (
    THRESHOLD,
    compute_metrics,
    headline,
    sewerml_headline,
    single_label_confusion,
)
from hybrid.predictions import write_predictions
from hybrid.util.ranks import rank_zero_only

log = logging.getLogger(__name__)


def predicted_labels(probs: np.ndarray, spec: LabelSpec, threshold: float) -> list[str]:
    """Predicted class per image; multi-label: the codes that reach ``threshold`` (space-separated)
    or ``Normal`` when none does (:func:`hybrid.decisions.decided_labels`)."""
    return decided_labels(
        probs, spec.class_names, threshold, single_label=spec.single_label, positive=spec.positive_index
    )


@dataclass
class Evaluation:
    """Predictions of one pass and, when labels are known, their metrics (unprefixed)."""

    predictions: Predictions
    names: list[str]
    metrics: dict
    threshold: float = THRESHOLD


def validate(
    model: nn.Module,
    loader: Iterable[dict],
    spec: LabelSpec,
    runtime: Runtime,
    *,
    criterion: nn.Module | None = None,
    desc: str = "validate",
    progress: bool = False,
) -> Evaluation:
    """Predict every sample of a labelled ``loader``; metrics at the benchmark threshold (and the
    mean loss with ``criterion``)."""
    preds = predict(model, loader, spec, runtime, criterion=criterion, desc=desc, progress=progress)
    metrics = compute_metrics(preds.probs, preds.targets, spec)
    if criterion is not None:
        metrics["loss"] = preds.loss
    return Evaluation(preds, [loader.dataset.names[i] for i in preds.indices], metrics)


def add_tuned_metrics(evaluation: Evaluation, spec: LabelSpec, threshold: float | list[float]) -> None:
    """Report the headline figures at a tuned threshold (one, or one per class) under ``tuned/``,
    next to the 0.5 ones."""
    evaluation.threshold = threshold
    if not evaluation.metrics:
        return
    tuned = compute_metrics(evaluation.predictions.probs, evaluation.predictions.targets, spec, np.asarray(threshold))
    if np.ndim(threshold):  # per class: one key each, so metrics stay flat numbers
        evaluation.metrics.update(
            {f"tuned/threshold/{c}": float(t) for c, t in zip(spec.class_names, threshold, strict=True)}
        )
    else:
        evaluation.metrics["tuned/threshold"] = threshold
    evaluation.metrics.update({f"tuned/{k}": v for k, v in headline(tuned).items()})
    evaluation.metrics.update({f"tuned/sewerml/{k}": v for k, v in sewerml_headline(tuned).items()})


@rank_zero_only  # under DDP every rank holds the gathered predictions; one writes
def write_evaluation(run_dir: Path, evaluation: Evaluation, spec: LabelSpec, title: str) -> None:
    """``predictions.csv``; with labels also the per-class table (log), ``per_class.png`` and, for
    single-label tasks, ``confusion_matrix.png``."""
    preds = evaluation.predictions
    labels = predicted_labels(preds.probs, spec, np.asarray(evaluation.threshold))
    write_predictions(run_dir / "predictions.csv", evaluation.names, preds.probs, spec.class_names, labels)
    if not evaluation.metrics:
        return
    log.info("%s per class:\n%s", title, format_class_table(evaluation.metrics, spec.class_names))
    official = sewerml_headline(evaluation.metrics)
    if official:
        log.info("%s, as the official Sewer-ML script scores it: %s", title, format_figures(official))
    plot_per_class(run_dir / "per_class.png", evaluation.metrics, spec.class_names, title)
    if spec.single_label:
        matrix = single_label_confusion(preds.probs, preds.targets, spec, evaluation.threshold)
        plot_confusion_matrix(run_dir / "confusion_matrix.png", np.asarray(matrix), spec.class_names, title)


def replace_normal_scores(probs: np.ndarray, defect_scores: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """Two-stage "replace" combination: where the binary model's defect score is below
    ``threshold``, it replaces every class score of the multi-label model (so no class fires)."""
    combined = probs.copy()
    normal = defect_scores < threshold
    combined[normal] = defect_scores[normal, None]
    return combined


def multiply_scores(probs: np.ndarray, defect_scores: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """Two-stage "multiply" combination: every class score times the binary model's defect score,
    P(code) = P(defect) * P(code | defect), what a model trained on defective images estimates.
    ``threshold`` is unused (the product needs none); it keeps the strategies interchangeable."""
    del threshold
    return probs * defect_scores[:, None]


# two_stage.strategy: how the binary model's Defect score combines with the multi-label scores.
TWO_STAGE_STRATEGIES = {"replace": replace_normal_scores, "multiply": multiply_scores}


def two_stage_strategy(name: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The combination ``two_stage.strategy`` names (one of :data:`TWO_STAGE_STRATEGIES`)."""
    if name not in TWO_STAGE_STRATEGIES:
        raise ConfigError(f"two_stage.strategy={name!r}; choose one of {list(TWO_STAGE_STRATEGIES)}")
    return TWO_STAGE_STRATEGIES[name]


def final_evaluation(
    model: nn.Module,
    loader: Iterable[dict],
    spec: LabelSpec,
    runtime: Runtime,
    run_dir: Path,
    *,
    labelled: bool = True,
    tuned_threshold: float | list[float] | None = None,
    rescore: Callable[[Predictions], np.ndarray] | None = None,
    progress: bool = False,
) -> Evaluation:
    """The last evaluation of a run, shared by ``train.py`` and ``infer.py`` so their figures match:
    predictions of ``loader`` (optionally rescored, e.g. by a two-stage combination), metrics when
    ``labelled`` (plus ``tuned/`` ones with a tuned threshold), and the files of
    :func:`write_evaluation` (rank 0 only)."""
    preds = predict(model, loader, spec, runtime, desc="test", progress=progress)
    evaluation = Evaluation(preds, [loader.dataset.names[i] for i in preds.indices], {})
    if rescore is not None:
        preds.probs = rescore(preds)
    if labelled:
        evaluation.metrics = compute_metrics(preds.probs, preds.targets, spec)
    if tuned_threshold is not None:
        add_tuned_metrics(evaluation, spec, tuned_threshold)
    write_evaluation(run_dir, evaluation, spec, title=f"test ({len(evaluation.names)} images)")
    return evaluation
