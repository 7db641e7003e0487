"""What a tracker shows besides numbers: attention overlays, sample predictions, PR curves.

Pure rendering on numpy / PIL, so it is tested without W&B; :func:`report_evaluation` hands the
results to whichever tracker is configured.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.metrics import precision_recall_curve
from torch import nn

from hybrid.data.device_loader import DeviceLoader
from hybrid.data.labels import LabelSpec
from hybrid.data.transforms import read_image
from hybrid.decisions import single_label_predictions
from hybrid.engine.evaluation import predicted_labels
from hybrid.engine.loop import to_probabilities
from hybrid.engine.runtime import Runtime, autocast
from hybrid.metrics import THRESHOLD
from hybrid.models.contract import supports_attention
from hybrid.tracking.base import Tracker

OVERLAY_ALPHA = 0.5  # heat map weight over the frame: the pipe must stay recognizable underneath
OVERLAY_COLORMAP = "inferno"


def label_text(target: np.ndarray, spec: LabelSpec) -> str:
    """A target as text: the class name, or the space-separated codes (``Normal`` when none)."""
    if spec.single_label:
        return spec.class_names[int(target)]
    return " ".join(np.array(spec.class_names)[np.asarray(target) > 0]) or "Normal"


def sample_errors(probs: np.ndarray, targets: np.ndarray, *, single_label: bool) -> np.ndarray:
    """How wrong each prediction is: 1 - p(true class), or the mean absolute error over codes."""
    if single_label:
        return 1.0 - probs[np.arange(len(probs)), targets]
    return np.abs(probs - targets).mean(axis=1)


def select_samples(errors: np.ndarray, count: int) -> np.ndarray:
    """Rows for a sample table: the worst half of ``count`` first, then evenly spread others."""
    count = min(count, len(errors))
    order = np.argsort(-errors, kind="stable")
    worst = order[: count // 2]
    rest = np.setdiff1d(np.arange(len(errors)), worst)
    spread = rest[np.linspace(0, len(rest) - 1, count - len(worst)).round().astype(int)] if len(rest) else rest
    return np.concatenate([worst, spread]).astype(int)


def thumbnail(path: str, side: int) -> Image.Image:
    """The frame as an RGB square of ``side`` pixels, as the model sees its geometry."""
    pixels = read_image(path, 3).permute(1, 2, 0).numpy()
    return Image.fromarray(pixels).resize((side, side), Image.BILINEAR)


def overlay(image: Image.Image, heat: np.ndarray) -> Image.Image:
    """``heat`` (a patch grid of weights) drawn over ``image``, one colour block per patch."""
    import matplotlib

    span = heat.max() - heat.min()
    scaled = (heat - heat.min()) / span if span > 0 else np.zeros_like(heat)
    colours = matplotlib.colormaps[OVERLAY_COLORMAP](scaled)[..., :3]
    blocks = Image.fromarray((colours * 255).astype(np.uint8)).resize(image.size, Image.NEAREST)
    return Image.blend(image.convert("RGB"), blocks, OVERLAY_ALPHA)


@torch.no_grad()
def attention_overlays(
    model: nn.Module, loader: DeviceLoader, indices: Sequence[int], spec: LabelSpec, runtime: Runtime, side: int
) -> list[tuple[Image.Image, str]]:
    """The queries' attention over the patch grid (last layer, mean over heads and queries) drawn
    over the images of ``loader``'s dataset rows ``indices``, captioned with truth and prediction.
    Empty for a model without attention maps (see :mod:`hybrid.models.contract`)."""
    if not supports_attention(model):
        return []
    core = getattr(model, "module", model)  # unwrap DistributedDataParallel
    batch = loader.batch_of(indices)
    if "image" not in batch:
        return []
    was_training = core.training
    core.eval()
    with autocast(runtime.device, runtime.precision):
        logits, attention = core.forward_with_attention(batch["image"])
    core.train(was_training)
    probs = to_probabilities(logits, spec).cpu().numpy()
    weights = attention.float().mean(dim=(1, 2)).cpu().numpy()  # [B, patches]
    grid = round(weights.shape[1] ** 0.5)
    dataset = loader.dataset
    results = []
    guesses = predicted_labels(probs, spec, THRESHOLD)
    for i, heat, guess in zip(batch["index"].tolist(), weights, guesses, strict=True):
        picture = overlay(thumbnail(dataset.paths[i], side), heat.reshape(grid, grid))
        caption = f"{dataset.names[i]}: true {label_text(dataset.targets[i], spec)}, "
        caption += f"predicted {guess}"
        results.append((picture, caption))
    return results


def precision_recall_points(
    probs: np.ndarray, targets: np.ndarray, class_names: Sequence[str], *, single_label: bool, max_points: int
) -> list[list]:
    """Rows ``[class, recall, precision]`` of each class's one-vs-rest PR curve, at most
    ``max_points`` per class; classes without positives are left out."""
    rows = []
    for c, name in enumerate(class_names):
        truth = (targets == c) if single_label else targets[:, c] > 0
        if not truth.any():
            continue
        precision, recall, _ = precision_recall_curve(truth, probs[:, c])
        keep = np.unique(np.linspace(0, len(recall) - 1, min(max_points, len(recall))).round().astype(int))
        rows += [[name, float(recall[k]), float(precision[k])] for k in keep]
    return rows


def confusion_counts_inputs(
    probs: np.ndarray, targets: np.ndarray, spec: LabelSpec, *, threshold: float
) -> tuple[list[int], list[int], list[str]]:
    """True and predicted class per image for a confusion matrix. Multi-label tasks get the
    benchmark's implicit Normal/Defect split (normal: no code reaches ``threshold``)."""
    if spec.single_label:
        predicted = single_label_predictions(probs, threshold, spec.positive_index)
        return [int(t) for t in targets], [int(p) for p in predicted], list(spec.class_names)
    true = (targets > 0).any(axis=1).astype(int)
    predicted = (probs >= threshold).any(axis=1).astype(int)
    return true.tolist(), predicted.tolist(), ["Normal", "Defect"]


def report_evaluation(tracker: Tracker, split: str, evaluation, dataset, spec: LabelSpec, run_dir: Path) -> None:
    """Give ``tracker`` what a person inspects after a test: the confusion matrix, PR curves and
    plots of a labelled split, and a table of sample predictions with their images."""
    if not tracker.wants_media:
        return
    preds = evaluation.predictions
    labelled = bool(evaluation.metrics)
    if labelled and len(preds.probs):
        tracker.log_classification(
            split,
            preds.probs,
            preds.targets,
            spec,
            threshold=evaluation.threshold,
        )
    for plot in ("confusion_matrix", "per_class"):
        if (run_dir / f"{plot}.png").exists():
            tracker.log_image(f"{split}/{plot}_plot", run_dir / f"{plot}.png")
    if tracker.sample_predictions <= 0 or not len(preds.probs):
        return
    errors = (
        sample_errors(preds.probs, preds.targets, single_label=spec.single_label)
        if labelled
        else np.zeros(len(preds.probs))
    )
    selected = select_samples(errors, tracker.sample_predictions)
    guesses = predicted_labels(preds.probs[selected], spec, evaluation.threshold)
    rows = []
    for row, guess in zip(selected, guesses, strict=True):
        i = int(preds.indices[row])
        scores = preds.probs[row]
        truth = label_text(dataset.targets[i], spec) if labelled else ""
        image = thumbnail(dataset.paths[i], tracker.max_image_side)
        rows.append([image, dataset.names[i], truth, guess, truth == guess, *(float(s) for s in scores)])
    columns = ["image", "Filename", "label", "prediction", "correct", *spec.class_names]
    tracker.log_table(f"{split}/samples", columns, rows)
