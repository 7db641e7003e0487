"""Classification metrics, Sewer-ML definitions included; flat dicts keyed ``name`` or
``name/<class>`` (callers add the ``split/`` prefix).

Single-label (binary, multiclass): accuracy, macro and per-class precision / recall / F1, AUROC;
with a negative class (``LabelSpec.negative_class``: binary's Normal, a folder named ``normal``, ...)
also F1-Normal / F1-Defect: the F1 of that class and of "any other class".
Multi-label: per-class precision / recall / F1 / F2 and average precision, macro and micro F1, mAP,
AUROC, F2-CIW (the benchmark's class-importance weighted F2) and F1-Normal, where an image is
predicted normal when no class score reaches the threshold and is truly normal when it has no label.
With the 17 Sewer-ML codes, also every number of the official evaluation script under
``sewerml/`` (:func:`sewerml_metrics`), computed as that script computes it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    f1_score,
    fbeta_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

from hybrid.data.labels import LabelSpec
from hybrid.data.sewerml import CIW_WEIGHTS, DEFECT_CODES
from hybrid.decisions import THRESHOLD, single_label_predictions
from hybrid.errors import ConfigError

# Candidate thresholds for trainer.tune_threshold.
THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.01), 2)

# The headline figures, in the order the Sewer-ML benchmark reports them: what logs, reports and
# the tuned-threshold block show. All depend on the decision threshold.
HEADLINE_METRICS = ("f2_ciw", "f1_normal", "f1_defect", "f1_macro", "f1_micro", "f2_macro", "accuracy")
# Figures that rank scores without a threshold: they cannot drive threshold tuning.
THRESHOLD_FREE = ("loss", "auroc", "map")
_COMMON_SCORES = ("f1_macro", "accuracy", "loss", "auroc")
_TASK_SCORES = {
    "binary": (*_COMMON_SCORES, "f1_normal", "f1_defect"),
    "multiclass": _COMMON_SCORES,
    "multilabel": (*_COMMON_SCORES, "f2_ciw", "f1_normal", "f1_defect", "f1_micro", "f2_macro", "map"),
}
# What trainer.monitor may be, per data.task (validation figures the task computes).
MONITORS = {task: tuple(f"val/{m}" for m in scores) for task, scores in _TASK_SCORES.items()}


def headline(metrics: dict) -> dict:
    """The :data:`HEADLINE_METRICS` present in ``metrics`` (unprefixed), in that order."""
    return {name: metrics[name] for name in HEADLINE_METRICS if name in metrics}


def check_monitor(monitor: str, task: str, label_columns) -> None:
    """``trainer.monitor`` must be a validation figure that ``data.task`` computes (F2-CIW only
    with Sewer-ML codes among the label columns)."""
    allowed = list(MONITORS[task])
    if monitor not in allowed:
        raise ConfigError(f"trainer.monitor={monitor!r} does not apply to data.task={task}; choose one of {allowed}")
    if monitor == "val/f2_ciw" and not set(label_columns or ()) & set(CIW_WEIGHTS):
        raise ConfigError("trainer.monitor=val/f2_ciw needs Sewer-ML codes in data.label_columns")


def check_threshold_tuning(task: str, monitor: str, tuning=True) -> None:
    """Threshold tuning needs a thresholded figure to tune for; ``per_class`` needs classes that
    decide on their own (multilabel). Whether a single-label task's classes are decided by a
    threshold is known once they are (:func:`check_threshold_classes`)."""
    if tuning not in THRESHOLD_TUNINGS:
        raise ConfigError(f"trainer.tune_threshold={tuning!r}; choose false, true or per_class")
    if tuning == "per_class" and task != "multilabel":
        raise ConfigError(f"trainer.tune_threshold=per_class needs data.task=multilabel, not {task}")
    if monitor.removeprefix("val/") in THRESHOLD_FREE:
        raise ConfigError(f"trainer.tune_threshold cannot tune for trainer.monitor={monitor}; monitor a score instead")


def check_threshold_classes(spec: LabelSpec, tuning) -> None:
    """With the classes known: a single-label task has a threshold to tune only with two classes,
    one of them negative (``binary``, or a two-class folder dataset such as defect/normal); more
    classes are decided by argmax."""
    if tuning and spec.single_label and spec.positive_index is None:
        raise ConfigError(
            f"trainer.tune_threshold needs a threshold that decides: classes {list(spec.class_names)} of "
            f"data.task={spec.task} are decided by argmax (two classes with a negative one, or multilabel, are not)"
        )


def f2_ciw(f2_per_class: dict[str, float]) -> float:
    """Sum of F2 times class-importance weight over the weight sum (Sewer-ML codes only)."""
    codes = [c for c in f2_per_class if c in CIW_WEIGHTS]
    weights = np.array([CIW_WEIGHTS[c] for c in codes])
    return float(np.sum(np.array([f2_per_class[c] for c in codes]) * weights) / np.sum(weights))


def normal_defect_f1(predicted_defect: np.ndarray, true_defect: np.ndarray) -> tuple[float, float]:
    """F1 of the implicit Normal class and of its complement (Defect), from per-image flags."""
    f1_normal = f1_score(~true_defect, ~predicted_defect, zero_division=0)
    f1_defect = f1_score(true_defect, predicted_defect, zero_division=0)
    return float(f1_normal), float(f1_defect)


def _ranking_scores(true: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class average precision and AUROC; NaN where a class lacks positives (or negatives)."""
    classes = true.shape[1]
    ap, auroc = np.full(classes, np.nan), np.full(classes, np.nan)
    for c in range(classes):
        positives = true[:, c].sum()
        if positives:
            ap[c] = average_precision_score(true[:, c], probs[:, c])
            if positives < len(true):
                auroc[c] = roc_auc_score(true[:, c], probs[:, c])
    return ap, auroc


def _nanmean(values: np.ndarray) -> float | None:
    return float(np.nanmean(values)) if np.isfinite(values).any() else None


# The official script's figures, in the order it reports them (docs/sewerml.md, "Metric names").
SEWERML_METRICS = ("F2", "F1_Normal", "MF1", "mF1", "OP", "OR", "OF1", "CP", "CR", "CF1", "EMAcc", "mAP")
SEWERML_PREFIX = "sewerml/"


def sewerml_average_precision(scores: np.ndarray, truth: np.ndarray) -> float:
    """The official script's AP: the mean precision at the rank of each positive, images ranked by
    descending score exactly as it ranks them (ties included); 0 for a code without positives."""
    order = np.argsort(scores, axis=0)[::-1]  # the official ranking, so ties fall the same way
    hits = truth[order].astype(bool)
    if not hits.any():
        return 0.0
    precision_at_hit = np.cumsum(hits)[hits] / (np.flatnonzero(hits) + 1)
    return float(np.cumsum(precision_at_hit)[-1] / len(precision_at_hit))  # summed in rank order, as it sums


def _ratio(numerator, denominator):
    """``numerator / denominator`` with NumPy's 0/0 = NaN (the official script's undefined values)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.true_divide(numerator, denominator)


def sewerml_metrics(probs: np.ndarray, true: np.ndarray, codes: Sequence[str], threshold: float) -> dict[str, float]:
    """Every number of the official Sewer-ML evaluation (``metrics.py`` of the benchmark), keyed
    ``sewerml/<official name>``, computed as it computes it:

    - counts per code plus the implicit Normal class as an 18th (predicted normal: no code reaches
      ``threshold``); a class never predicted counts as one prediction (``Np = 1``), in every
      figure that uses ``Np``, the micro ones included;
    - ``MF1`` / ``mF1``: macro / micro F1 over those 18 classes (an undefined class F1 counts 0);
    - ``OP`` / ``OR`` / ``OF1``: overall precision, recall, F1 from the summed counts; ``CP`` /
      ``CR``: the mean of the 18 per-class ratios, ``CF1`` their harmonic mean;
    - ``F2``: F2-CIW; ``F1_Normal``: F1 of the Normal class; ``EMAcc``: images whose 17 codes are
      all right; ``mAP``: mean of the 17 APs, a code without positives counting 0.

    Where the official script divides 0 by 0 (``CR`` and ``CF1`` when a code has no positives,
    ``OF1`` with no correct prediction) the number is undefined and left out, as NaN would be.
    """
    predicted, actual = probs >= threshold, true.astype(bool)
    weights = np.array([CIW_WEIGHTS[c] for c in codes])
    # per class and Normal: correct (TP), predicted (TP + FP), ground truth (TP + FN)
    predicted_all = np.column_stack([predicted, ~predicted.any(axis=1)])
    actual_all = np.column_stack([actual, ~actual.any(axis=1)])
    n_correct = (predicted_all & actual_all).sum(axis=0).astype(float)
    n_predicted = np.maximum(predicted_all.sum(axis=0), 1).astype(float)
    n_truth = actual_all.sum(axis=0).astype(float)
    precision, recall = n_correct / n_predicted, _ratio(n_correct, n_truth)
    f1 = np.nan_to_num(_ratio(2 * precision * recall, precision + recall), nan=0.0)
    f2 = np.nan_to_num(_ratio(5 * precision * recall, 4 * precision + recall), nan=0.0)
    overall_precision, overall_recall = (
        _ratio(n_correct.sum(), n_predicted.sum()),
        _ratio(n_correct.sum(), n_truth.sum()),
    )
    class_precision, class_recall = precision.mean(), recall.mean()
    ap = np.array([sewerml_average_precision(probs[:, k], actual[:, k]) for k in range(len(codes))])
    values = {
        "F2": np.sum(f2[:-1] * weights) / np.sum(weights),
        "F1_Normal": f1[-1],
        "MF1": f1.mean(),
        "mF1": _ratio(2 * n_correct.sum(), n_predicted.sum() + n_truth.sum()),
        "OP": overall_precision,
        "OR": overall_recall,
        "OF1": _ratio(2 * overall_precision * overall_recall, overall_precision + overall_recall),
        "CP": class_precision,
        "CR": class_recall,
        "CF1": _ratio(2 * class_precision * class_recall, class_precision + class_recall),
        "EMAcc": float((predicted == actual).all(axis=1).mean()) if len(actual) else 0.0,
        "mAP": ap.mean(),
    }
    out = {SEWERML_PREFIX + name: float(values[name]) for name in SEWERML_METRICS if np.isfinite(values[name])}
    out.update({f"{SEWERML_PREFIX}AP/{code}": float(value) for code, value in zip(codes, ap, strict=True)})
    return out


def sewerml_headline(metrics: dict) -> dict:
    """The official figures present in ``metrics`` (keys without the ``sewerml/`` prefix), in order."""
    return {name: metrics[SEWERML_PREFIX + name] for name in SEWERML_METRICS if SEWERML_PREFIX + name in metrics}


def _per_class(out: dict, class_names: Sequence[str], **columns: np.ndarray) -> None:
    for metric, values in columns.items():
        for name, value in zip(class_names, values, strict=True):
            if np.isfinite(value):
                out[f"{metric}/{name}"] = int(value) if metric == "support" else float(value)


def multilabel_metrics(
    probs: np.ndarray, targets: np.ndarray, class_names: Sequence[str], threshold: float = THRESHOLD
) -> dict[str, float]:
    """Sewer-ML multi-label metrics of scores ``probs`` ``[N, C]`` against 0/1 ``targets``."""
    true = targets >= 0.5
    pred = probs >= threshold
    precision, recall, f1, support = precision_recall_fscore_support(true, pred, average=None, zero_division=0)
    f2 = fbeta_score(true, pred, beta=2, average=None, zero_division=0)
    ap, auroc = _ranking_scores(true, probs)
    f1_normal, f1_defect = normal_defect_f1(pred.any(axis=1), true.any(axis=1))
    out: dict[str, float] = {
        "num_samples": len(true),
        "accuracy": float((pred == true).all(axis=1).mean()) if len(true) else 0.0,
        "precision_macro": float(precision.mean()),
        "recall_macro": float(recall.mean()),
        "f1_macro": float(f1.mean()),
        # the codes these labels have (a code without a positive scores 0 in f1_macro whatever the model)
        "f1_macro_present": float(f1[support > 0].mean()) if (support > 0).any() else 0.0,
        "f1_micro": float(f1_score(true, pred, average="micro", zero_division=0)),
        "f2_macro": float(f2.mean()),
        "f1_normal": f1_normal,
        "f1_defect": f1_defect,
    }
    if any(name in CIW_WEIGHTS for name in class_names):
        out["f2_ciw"] = f2_ciw(dict(zip(class_names, f2, strict=True)))
    for key, value in (("map", _nanmean(ap)), ("auroc", _nanmean(auroc))):
        if value is not None:
            out[key] = value
    _per_class(out, class_names, precision=precision, recall=recall, f1=f1, f2=f2, ap=ap, support=support)
    if sorted(class_names) == sorted(DEFECT_CODES):  # the official script scores exactly the 17 codes
        out.update(sewerml_metrics(probs, true, class_names, threshold))
    return out


def single_label_metrics(
    probs: np.ndarray, targets: np.ndarray, spec: LabelSpec, threshold: float = THRESHOLD
) -> dict[str, float]:
    """Accuracy, macro and per-class precision / recall / F1, AUROC; with a negative class also
    F1-Normal (its F1) and F1-Defect (the F1 of "any other class"), whatever its index."""
    class_names = spec.class_names
    labels = list(range(len(class_names)))
    preds = single_label_predictions(probs, threshold, spec.positive_index)
    precision, recall, f1, support = precision_recall_fscore_support(targets, preds, labels=labels, zero_division=0)
    out: dict[str, float] = {
        "num_samples": len(targets),
        "accuracy": float((preds == targets).mean()) if len(targets) else 0.0,
        "precision_macro": float(precision.mean()),
        "recall_macro": float(recall.mean()),
        "f1_macro": float(f1.mean()),
    }
    negative = spec.negative_index
    if negative is not None:
        out["f1_normal"], out["f1_defect"] = normal_defect_f1(preds != negative, np.asarray(targets) != negative)
    one_hot = np.eye(len(class_names), dtype=bool)[targets] if len(targets) else np.zeros((0, len(labels)), bool)
    _, auroc = _ranking_scores(one_hot, probs)
    positive = spec.positive_index
    auroc_value = auroc[positive] if positive is not None else _nanmean(auroc)
    if auroc_value is not None and np.isfinite(auroc_value):
        out["auroc"] = float(auroc_value)
    _per_class(out, class_names, precision=precision, recall=recall, f1=f1, support=support)
    return out


def compute_metrics(
    probs: np.ndarray, targets: np.ndarray, spec: LabelSpec, threshold: float = THRESHOLD
) -> dict[str, float]:
    """Metrics of ``probs`` ``[N, C]`` against ``targets`` for the task of ``spec``."""
    if spec.single_label:
        return single_label_metrics(probs, targets, spec, threshold)
    return multilabel_metrics(probs, targets, spec.class_names, threshold)


def tune_threshold(probs: np.ndarray, targets: np.ndarray, spec: LabelSpec, metric: str) -> float:
    """The threshold on :data:`THRESHOLD_GRID` that maximizes ``metric`` (closest to 0.5 on ties).

    Only binary and multi-label predictions depend on a threshold.
    """
    best, best_value = THRESHOLD, compute_metrics(probs, targets, spec)[metric]
    for candidate in THRESHOLD_GRID:
        value = compute_metrics(probs, targets, spec, float(candidate))[metric]
        closer = abs(candidate - THRESHOLD) < abs(best - THRESHOLD)
        if value > best_value or (value == best_value and closer):
            best, best_value = float(candidate), value
    return best


# trainer.tune_threshold: false | true (one threshold for every class) | per_class (multilabel)
THRESHOLD_TUNINGS = (False, True, "per_class")


def tune_thresholds_per_class(probs: np.ndarray, targets: np.ndarray, spec: LabelSpec, metric: str) -> list[float]:
    """Per class, the threshold on :data:`THRESHOLD_GRID` that maximizes that class's F2 (when the
    monitored figure is F2-based: ``f2_ciw``, ``f2_macro``) or F1 (otherwise), closest to 0.5 on
    ties. Multi-label only: each class decides on its own."""
    beta = 2 if metric.startswith("f2") else 1
    truth = targets >= 0.5
    chosen = []
    for c in range(spec.num_labels):
        scores = [(fbeta_score(truth[:, c], probs[:, c] >= t, beta=beta, zero_division=0), t) for t in THRESHOLD_GRID]
        best = max(value for value, _ in scores)
        chosen.append(float(min((t for value, t in scores if value == best), key=lambda t: abs(t - THRESHOLD))))
    return chosen


def monitor_mode(metric: str) -> str:
    """``min`` for losses, ``max`` for every score."""
    return "min" if metric.rsplit("/", 1)[-1].endswith("loss") else "max"


def single_label_confusion(
    probs: np.ndarray, targets: np.ndarray, spec: LabelSpec, threshold: float = THRESHOLD
) -> np.ndarray:
    """Confusion counts, rows true class, columns predicted class."""
    predicted = single_label_predictions(probs, threshold, spec.positive_index)
    return confusion_matrix(targets, predicted, labels=list(range(spec.num_labels)))


def prefixed(metrics: dict, split: str) -> dict:
    """``{"f1_macro": x}`` -> ``{"val/f1_macro": x}``."""
    return {f"{split}/{k}": v for k, v in metrics.items()}
