"""One training epoch and one prediction pass; everything else composes these."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from hybrid.data.labels import LabelSpec
from hybrid.engine.hooks import HookBase
from hybrid.engine.runtime import Runtime, autocast
from hybrid.errors import ConfigError, HybridError
from hybrid.util import ranks
from hybrid.util.progress import Progress
from hybrid.util.progress import progress as counted


def ready_images(batch: dict) -> torch.Tensor:
    """The batch's images, which the data side must hand over ready (normalized float on the device)."""
    images = batch["image"]
    if images.dtype == torch.uint8:
        raise ConfigError(
            "uint8 images reached the engine: batches must arrive normalized with the data config's mean/std "
            "(iterate a hybrid.data DeviceLoader, e.g. DataModule.loader or make_loader)"
        )
    return images


def to_probabilities(logits: torch.Tensor, spec: LabelSpec) -> torch.Tensor:
    """Class scores in [0, 1]: softmax (single-label) or sigmoid (multi-label)."""
    logits = logits.float()
    return logits.softmax(dim=1) if spec.single_label else logits.sigmoid()


class NonFiniteLossError(HybridError):
    """The training loss became NaN or infinite (the last good checkpoint is kept)."""


@dataclass(frozen=True)
class StepSettings:
    """How each optimizer step of an epoch is taken: ``accumulate`` batches whose gradients add up
    before it (the last step of the epoch takes what is left), gradients clipped to ``grad_clip``
    (their norm; ``None``: not clipped), the loss scaled by ``scaler`` for float16 (``None``: a
    pass-through), and ``mix`` (mixup / CutMix) blending each batch and its targets."""

    accumulate: int = 1
    grad_clip: float | None = None
    scaler: torch.amp.GradScaler | None = None
    mix: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None


@dataclass
class EpochProgress:
    """How far one process got in an epoch: batches trained on, and the running sums of its loss and
    images, so an epoch interrupted part-way reports the same figures when resumed."""

    steps: int = 0
    loss_sum: float = 0.0
    images: int = 0


@dataclass
class EpochResult:
    """What one training epoch measured: the loss over the whole epoch, the images (all processes)
    and seconds of this call (the part after an interruption, for a resumed epoch)."""

    loss: float
    images: int
    seconds: float
    skipped: list[str] = field(default_factory=list)
    steps: int = 0
    interrupted: bool = False
    progress: EpochProgress | None = None  # this process's running sums (where an interruption stopped)

    @property
    def images_per_s(self) -> float:
        """Training throughput (all processes), data loading included."""
        return self.images / self.seconds if self.seconds else 0.0


def train_one_epoch(
    model: nn.Module,
    loader: Iterable[dict],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    criterion: nn.Module,
    runtime: Runtime,
    *,
    step: StepSettings | None = None,
    hooks: Sequence[HookBase] = (),
    desc: str = "train",
    progress: bool = False,
    start: EpochProgress | None = None,
) -> EpochResult:
    """Train over ``loader`` (ready batches, see :mod:`hybrid.data.device_loader`) once, stepping
    the scheduler at every optimizer step.

    ``step`` (:class:`StepSettings`) says how each optimizer step is taken. After every optimizer
    step each of ``hooks`` hears of it (:meth:`~hybrid.engine.hooks.HookBase.after_step`: the weight
    average follows) and is asked whether to stop (a SIGTERM / SIGINT arrived); when one says yes on
    any process, the epoch ends early with ``interrupted=True``. A NaN or infinite loss on any
    process raises :class:`NonFiniteLossError` before the weights are touched. ``start`` continues
    an epoch an interruption stopped (the loader then holds only its remaining batches). ``steps``
    counts batches; an interruption only ever lands on an optimizer step.
    """
    model.train()
    device = runtime.device
    step = step or StepSettings()
    scaler = step.scaler or torch.amp.GradScaler(device.type, enabled=False)
    accumulate, mix = step.accumulate, step.mix
    start = start or EpochProgress()
    total_loss, seen, steps, skipped, interrupted = start.loss_sum, start.images, start.steps, [], False
    started = time.perf_counter()
    bar = Progress(len(loader) if hasattr(loader, "__len__") else None, desc, enabled=progress, unit="batch")
    total_batches = start.steps + (len(loader) if hasattr(loader, "__len__") else 0)
    optimizer.zero_grad(set_to_none=True)
    for batch in loader:
        bar.update()
        skipped += batch["skipped"]
        steps += 1
        last_of_epoch = steps == total_batches
        if "image" not in batch:
            continue
        images = ready_images(batch)
        targets = batch["target"].to(device, non_blocking=True)  # a no-op for a DeviceLoader's batches
        if mix is not None:
            images, targets = mix(images, targets)
        steps_now = steps % accumulate == 0 or last_of_epoch
        # Under DDP the gradients of the batches before an optimizer step stay local (no_sync): one
        # all-reduce per step, of their sum, instead of one per batch.
        with contextlib.nullcontext() if steps_now or not hasattr(model, "no_sync") else model.no_sync():
            with autocast(device, runtime.precision):
                loss = criterion(model(images), targets)
            # Every process takes the same branch, or the others would wait forever in backward's all-reduce.
            if ranks.any_rank(not math.isfinite(loss.item())):
                raise NonFiniteLossError(f"training loss became {loss.item()} at step {steps} ({desc})")
            scaler.scale(loss / accumulate).backward()
        total_loss += loss.item() * len(images)
        seen += len(images)
        bar.set_postfix(loss=f"{total_loss / seen:.4f}")
        if not steps_now:
            continue  # gradients keep adding up until the next optimizer step
        if step.grad_clip:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), step.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        for hook in hooks:
            hook.after_step()
        if hooks and ranks.any_rank(any(hook.stop_requested() for hook in hooks)):
            interrupted = True
            break
    bar.close()
    seconds = time.perf_counter() - started
    local = EpochProgress(steps, total_loss, seen)
    total_loss, seen, trained = ranks.all_reduce_sum([total_loss, seen, seen - start.images])
    return EpochResult(total_loss / max(seen, 1), int(trained), seconds, skipped, steps, interrupted, local)


@dataclass
class Predictions:
    """Scores of every readable sample of a loader, in dataset order."""

    probs: np.ndarray
    targets: np.ndarray
    indices: np.ndarray
    loss: float
    forward_seconds: float
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0  # the whole pass, data loading included (this process)

    @property
    def latency_ms(self) -> float:
        """Mean model forward time per image (data loading excluded)."""
        return 1000 * self.forward_seconds / max(len(self.indices), 1)


@torch.no_grad()
def predict(
    model: nn.Module,
    loader: Iterable[dict],
    spec: LabelSpec,
    runtime: Runtime,
    *,
    criterion: Callable | None = None,
    desc: str = "predict",
    progress: bool = False,
) -> Predictions:
    """Run the model over ``loader`` (ready batches) in eval mode; with ``criterion`` the mean loss too.

    Any iterable of batches works; a loader that reads only this process's share (``sharded``,
    evaluation under DDP) has every process's predictions gathered, in dataset order.
    """
    model.eval()
    started = time.perf_counter()
    device = runtime.device
    probs, targets, indices, skipped = [], [], [], []
    total_loss, forward_seconds = 0.0, 0.0
    for batch in counted(loader, desc, enabled=progress, unit="batch"):
        skipped += batch["skipped"]
        if "image" not in batch:
            continue
        images = ready_images(batch)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        with autocast(device, runtime.precision):
            logits = model(images)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        forward_seconds += time.perf_counter() - start
        target = batch["target"]
        if criterion is not None:
            total_loss += criterion(logits.float(), target.to(device)).item() * len(images)
        probs.append(to_probabilities(logits, spec).cpu())
        targets.append(target.cpu())
        indices.append(batch["index"])
    if probs:
        local = (torch.cat(probs).numpy(), torch.cat(targets).numpy(), torch.cat(indices).numpy())
    else:
        local = (np.zeros((0, spec.num_labels), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64))
    if getattr(loader, "sharded", False):
        result = gather_predictions(local, total_loss, forward_seconds, skipped)
    else:
        count = len(local[2])
        result = Predictions(*local, total_loss / count if count else 0.0, forward_seconds, skipped)
    result.seconds = time.perf_counter() - started
    return result


def gather_predictions(local: tuple, total_loss: float, forward_seconds: float, skipped: list[str]) -> Predictions:
    """Every process's share of a sharded evaluation, on every process, in dataset order.

    Predictions are gathered rather than per-process metrics averaged, so F1 and friends are
    computed once over the whole split, each sample counted once.
    """
    parts = ranks.all_gather_objects((*local, total_loss, forward_seconds, skipped))
    filled = [p for p in parts if len(p[2])] or parts[:1]  # a rank may have no samples (split < world)
    probs, targets, indices = (np.concatenate([p[k] for p in filled]) for k in range(3))
    order = np.argsort(indices, kind="stable")
    count = len(indices)
    loss = sum(p[3] for p in parts) / count if count else 0.0
    names = sorted({name for p in parts for name in p[5]})
    return Predictions(probs[order], targets[order], indices[order], loss, max(p[4] for p in parts), names)
