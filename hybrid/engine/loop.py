"""One training epoch and one prediction pass; everything else composes these."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from hybrid.data.labels import LabelSpec
from hybrid.engine.runtime import Runtime, autocast
from hybrid.errors import ConfigError, HybridError

CLASS_WEIGHTINGS = ("none", "positive_ratio", "effective_number")


def class_counts(targets: np.ndarray, spec: LabelSpec) -> np.ndarray:
    """Positive examples per class in the training targets."""
    if spec.single_label:
        return np.bincount(targets, minlength=spec.num_labels).astype(np.float64)
    return targets.sum(axis=0).astype(np.float64)


def loss_function(
    spec: LabelSpec, weighting: str = "none", train_targets: np.ndarray | None = None, beta: float = 0.999
) -> nn.Module:
    """Cross-entropy over the softmax (single-label) or per-class BCE on sigmoids (multi-label).

    ``weighting``: ``positive_ratio`` (multi-label) sets BCE's ``pos_weight`` to ``(N - N_c) / N_c``
    as the official Sewer-ML code does; ``effective_number`` weights class ``c`` by
    ``(1 - beta) / (1 - beta ** N_c)`` (Cui et al., CVPR 2019), normalized to mean 1.
    """
    if weighting not in CLASS_WEIGHTINGS:
        raise ConfigError(f"trainer.class_weighting={weighting!r}; choose one of {list(CLASS_WEIGHTINGS)}")
    if weighting == "none":
        return nn.CrossEntropyLoss() if spec.single_label else nn.BCEWithLogitsLoss()
    counts = np.maximum(class_counts(train_targets, spec), 1.0)
    if weighting == "positive_ratio":
        if spec.single_label:
            raise ConfigError("trainer.class_weighting=positive_ratio applies to data.task=multilabel only")
        pos_weight = (len(train_targets) - counts) / counts
        return nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight, dtype=torch.float32))
    weights = (1 - beta) / (1 - beta**counts)
    weights = torch.tensor(weights / weights.mean(), dtype=torch.float32)
    return nn.CrossEntropyLoss(weight=weights) if spec.single_label else nn.BCEWithLogitsLoss(weight=weights)


def to_probabilities(logits: torch.Tensor, spec: LabelSpec) -> torch.Tensor:
    """Class scores in [0, 1]: softmax (single-label) or sigmoid (multi-label)."""
    logits = logits.float()
    return logits.softmax(dim=1) if spec.single_label else logits.sigmoid()


class NonFiniteLossError(HybridError):
    """The training loss became NaN or infinite (the last good checkpoint is kept)."""


@dataclass
class EpochResult:
    """What one training epoch measured."""

    loss: float
    images: int
    seconds: float
    skipped: list[str] = field(default_factory=list)

    @property
    def images_per_s(self) -> float:
        """Training throughput, data loading included."""
        return self.images / self.seconds if self.seconds else 0.0


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    criterion: nn.Module,
    runtime: Runtime,
    grad_clip: float | None = None,
    label: str = "train",
) -> EpochResult:
    """Train over ``loader`` once, stepping the scheduler every batch."""
    model.train()
    device = runtime.device
    total_loss, seen, skipped = 0.0, 0, []
    start = time.perf_counter()
    bar = tqdm(loader, desc=label, leave=False, disable=None if runtime.progress else True, unit="batch")
    for batch in bar:
        skipped += batch["skipped"]
        if "image" not in batch:
            continue
        images = runtime.prepare_batch(batch["image"], train=True)
        targets = batch["target"].to(device, non_blocking=True)
        with autocast(device, runtime.precision):
            loss = criterion(model(images), targets)
        if not math.isfinite(loss.item()):
            raise NonFiniteLossError(f"training loss became {loss.item()} after {seen} images")
        optimizer.zero_grad(set_to_none=True)
        runtime.scaler.scale(loss).backward()  # the scaler is a pass-through unless float16
        if grad_clip:
            runtime.scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        runtime.scaler.step(optimizer)
        runtime.scaler.update()
        scheduler.step()
        total_loss += loss.item() * len(images)
        seen += len(images)
        bar.set_postfix(loss=f"{total_loss / seen:.4f}")
    return EpochResult(total_loss / max(seen, 1), seen, time.perf_counter() - start, skipped)


@dataclass
class Predictions:
    """Scores of every readable sample of a loader, in dataset order."""

    probs: np.ndarray
    targets: np.ndarray
    indices: np.ndarray
    loss: float
    forward_seconds: float
    skipped: list[str] = field(default_factory=list)

    @property
    def latency_ms(self) -> float:
        """Mean model forward time per image (data loading excluded)."""
        return 1000 * self.forward_seconds / max(len(self.indices), 1)


@torch.no_grad()
def predict(
    model: nn.Module,
    loader: DataLoader,
    spec: LabelSpec,
    runtime: Runtime,
    criterion: Callable | None = None,
    label: str = "predict",
) -> Predictions:
    """Run the model over ``loader`` in eval mode; with ``criterion`` the mean loss too."""
    model.eval()
    device = runtime.device
    probs, targets, indices, skipped = [], [], [], []
    total_loss, forward_seconds = 0.0, 0.0
    for batch in tqdm(loader, desc=label, leave=False, disable=None if runtime.progress else True, unit="batch"):
        skipped += batch["skipped"]
        if "image" not in batch:
            continue
        images = runtime.prepare_batch(batch["image"])
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        with autocast(device, runtime.precision):
            logits = model(images)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        forward_seconds += time.perf_counter() - start
        if criterion is not None:
            total_loss += criterion(logits.float(), batch["target"].to(device)).item() * len(images)
        probs.append(to_probabilities(logits, spec).cpu())
        targets.append(batch["target"])
        indices.append(batch["index"])
    if not probs:
        empty = np.zeros((0, spec.num_labels), np.float32)
        return Predictions(empty, np.zeros(0, np.int64), np.zeros(0, np.int64), 0.0, 0.0, skipped)
    count = sum(len(i) for i in indices)
    return Predictions(
        torch.cat(probs).numpy(),
        torch.cat(targets).numpy(),
        torch.cat(indices).numpy(),
        total_loss / count,
        forward_seconds,
        skipped,
    )
