"""Training losses (``trainer.loss``), their options, and class weighting, in one place.

Single-label tasks take ``ce`` (softmax cross-entropy) or ``focal``; multi-label tasks ``bce``
(one sigmoid per class), ``focal`` (sigmoid focal loss) or ``asl`` (the asymmetric loss of Ridnik
et al., ICCV 2021, which MA-Q2L trains Sewer-ML with). ``auto`` is ``ce`` or ``bce``. Every loss
takes hard targets (class indices, 0/1 rows) or soft ones (probability rows, e.g. after mixup),
``trainer.label_smoothing`` and the class weights of ``trainer.class_weighting``: a weight per
class (``effective_number``) or a weight on each class's positives (``positive_ratio``, multi-label).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hybrid.data.labels import LabelSpec
from hybrid.errors import ConfigError

CLASS_WEIGHTINGS = ("none", "positive_ratio", "effective_number")
# trainer.loss -> the tasks it applies to
LOSS_TASKS = {
    "ce": ("binary", "multiclass"),
    "bce": ("multilabel",),
    "focal": ("binary", "multiclass", "multilabel"),
    "asl": ("multilabel",),
}


@dataclass(frozen=True)
class LossOptions:
    """A view of the ``trainer`` keys a loss reads (declared, with their defaults, by
    :class:`~hybrid.engine.schema.TrainerSchema`; ``trainer.asl.*`` flattened)."""

    name: str
    label_smoothing: float
    focal_gamma: float
    asl_gamma_pos: float
    asl_gamma_neg: float
    asl_clip: float

    @classmethod
    def of(cls, trainer) -> LossOptions:
        """From the typed ``trainer`` settings."""
        asl = trainer.asl
        return cls(
            str(trainer.loss),
            float(trainer.label_smoothing),
            float(trainer.focal_gamma),
            float(asl.gamma_pos),
            float(asl.gamma_neg),
            float(asl.clip),
        )


def check_class_weighting(weighting: str, task: str) -> str:
    """``trainer.class_weighting``: one of :data:`CLASS_WEIGHTINGS`; ``positive_ratio`` (a weight on
    each class's positives) exists for multi-label tasks only."""
    if weighting not in CLASS_WEIGHTINGS:
        raise ConfigError(f"trainer.class_weighting={weighting!r}; choose one of {list(CLASS_WEIGHTINGS)}")
    if weighting == "positive_ratio" and task != "multilabel":
        raise ConfigError("trainer.class_weighting=positive_ratio applies to data.task=multilabel only")
    return weighting


def resolve_loss(name: str, task: str) -> str:
    """``trainer.loss`` for ``data.task``: ``auto`` is ``ce`` (single-label) or ``bce`` (multi-label)."""
    if name == "auto":
        return "bce" if task == "multilabel" else "ce"
    if name not in LOSS_TASKS:
        raise ConfigError(f"trainer.loss={name!r}; choose one of {['auto', *LOSS_TASKS]}")
    if task not in LOSS_TASKS[name]:
        raise ConfigError(f"trainer.loss={name} does not apply to data.task={task}; it takes {list(LOSS_TASKS[name])}")
    return name


def check_loss_options(options: LossOptions, task: str) -> None:
    """The loss applies to the task, and its numbers are in range."""
    resolve_loss(options.name, task)
    if not 0 <= options.label_smoothing < 1:
        raise ConfigError(f"trainer.label_smoothing={options.label_smoothing}: must be in [0, 1)")
    for key, value in (("focal_gamma", options.focal_gamma), ("asl.gamma_pos", options.asl_gamma_pos),
                       ("asl.gamma_neg", options.asl_gamma_neg)):  # fmt: skip
        if value < 0:
            raise ConfigError(f"trainer.{key}={value}: must be >= 0")
    if not 0 <= options.asl_clip < 1:
        raise ConfigError(f"trainer.asl.clip={options.asl_clip}: must be in [0, 1)")


def class_counts(targets: np.ndarray, spec: LabelSpec) -> np.ndarray:
    """Positive examples per class in the training targets."""
    if spec.single_label:
        return np.bincount(targets, minlength=spec.num_labels).astype(np.float64)
    return targets.sum(axis=0).astype(np.float64)


def soft_targets(targets: torch.Tensor, logits: torch.Tensor, spec: LabelSpec, smoothing: float) -> torch.Tensor:
    """Targets as probabilities shaped like ``logits``: one-hot rows (single-label) or 0/1 per
    class, smoothed towards uniform (``1/C`` per class, single-label) or towards 1/2 (multi-label)."""
    if spec.single_label and targets.ndim == 1:
        targets = F.one_hot(targets.long(), logits.shape[1])
    targets = targets.float()
    if smoothing:
        uniform = 1.0 / logits.shape[1] if spec.single_label else 0.5
        targets = targets * (1 - smoothing) + uniform * smoothing
    return targets


class ClassificationLoss(nn.Module):
    """One of :data:`LOSS_TASKS`, mean over the batch (and, multi-label, over the classes).

    ``class_weight`` ``[C]`` scales each class's term; ``pos_weight`` ``[C]`` scales the positive
    part of each class's term (multi-label).
    """

    def __init__(self, name: str, spec: LabelSpec, options: LossOptions, class_weight=None, pos_weight=None):
        super().__init__()
        self.name, self.spec, self.options = name, spec, options
        self.register_buffer("class_weight", class_weight, persistent=False)
        self.register_buffer("pos_weight", pos_weight, persistent=False)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return LOSS_FUNCTIONS[self.name](self, logits.float(), targets)

    def _soft(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return soft_targets(targets, logits, self.spec, self.options.label_smoothing)

    def cross_entropy(self, logits, targets):
        """Softmax cross-entropy: torch's own, for class indices or probability rows, with its label
        smoothing and class weights."""
        target = targets.long() if targets.ndim == 1 else targets.float()
        return F.cross_entropy(logits, target, weight=self.class_weight, label_smoothing=self.options.label_smoothing)

    def _weighted_mean(self, per_class: torch.Tensor) -> torch.Tensor:
        """``[B, C]`` terms: class weights applied, mean over all elements (as BCE's ``weight``)."""
        if self.class_weight is not None:
            per_class = per_class * self.class_weight
        return per_class.mean()

    def focal(self, logits, targets):
        """Focal loss (Lin et al., ICCV 2017): each term scaled by ``(1 - p) ** gamma``, ``p`` the
        probability given to it; softmax terms single-label, sigmoid terms multi-label."""
        gamma, target = self.options.focal_gamma, self._soft(logits, targets)
        if self.spec.single_label:
            log_probs = logits.log_softmax(dim=1)
            terms = -target * (1 - log_probs.exp()) ** gamma * log_probs
            if self.class_weight is not None:
                terms = terms * self.class_weight
            return terms.sum(dim=1).mean()
        probs = logits.sigmoid()
        positive = target * (1 - probs) ** gamma * F.logsigmoid(logits)
        negative = (1 - target) * probs**gamma * F.logsigmoid(-logits)
        if self.pos_weight is not None:
            positive = positive * self.pos_weight
        return self._weighted_mean(-(positive + negative))

    def binary_cross_entropy(self, logits, targets):
        """Per-class sigmoid BCE (:class:`torch.nn.BCEWithLogitsLoss` with ``pos_weight`` / ``weight``)."""
        return F.binary_cross_entropy_with_logits(
            logits, self._soft(logits, targets), weight=self.class_weight, pos_weight=self.pos_weight, reduction="mean"
        )

    def asymmetric(self, logits, targets):
        """Asymmetric loss: positives ``(1 - p) ** gamma_pos * log p``; negatives with the shifted
        probability ``p_m = max(p - clip, 0)``: ``p_m ** gamma_neg * log(1 - p_m)``; mean over the
        elements (the paper sums; the mean keeps BCE's learning rates)."""
        opts, target = self.options, self._soft(logits, targets)
        probs = logits.sigmoid()
        shifted = (probs - opts.asl_clip).clamp(min=0) if opts.asl_clip else probs
        eps = 1e-8
        positive = target * (1 - probs) ** opts.asl_gamma_pos * probs.clamp(min=eps).log()
        negative = (1 - target) * shifted**opts.asl_gamma_neg * (1 - shifted).clamp(min=eps).log()
        if self.pos_weight is not None:
            positive = positive * self.pos_weight
        return self._weighted_mean(-(positive + negative))


LOSS_FUNCTIONS: dict[str, Callable] = {
    "ce": ClassificationLoss.cross_entropy,
    "bce": ClassificationLoss.binary_cross_entropy,
    "focal": ClassificationLoss.focal,
    "asl": ClassificationLoss.asymmetric,
}


def loss_function(spec: LabelSpec, trainer, train_targets: np.ndarray | None = None) -> nn.Module:
    """The training loss for ``spec``'s task from the typed ``trainer`` settings
    (:class:`~hybrid.engine.schema.TrainerSchema`): ``loss`` (``auto``: cross-entropy or BCE) and
    its options (:class:`LossOptions`), and ``class_weighting``, which needs ``train_targets``:

    - ``positive_ratio`` (multi-label) weighs each class's positives by ``(N - N_c) / N_c`` as the
      official Sewer-ML code does;
    - ``effective_number`` weighs class ``c`` by ``(1 - beta) / (1 - beta ** N_c)`` (Cui et al.,
      CVPR 2019; ``beta``: ``effective_number_beta``), normalized to mean 1.
    """
    options, weighting = LossOptions.of(trainer), str(trainer.class_weighting)
    check_class_weighting(weighting, spec.task)
    check_loss_options(options, spec.task)
    name = resolve_loss(options.name, spec.task)
    class_weight = pos_weight = None
    if weighting != "none":
        counts = np.maximum(class_counts(train_targets, spec), 1.0)
        if weighting == "positive_ratio":
            pos_weight = torch.tensor((len(train_targets) - counts) / counts, dtype=torch.float32)
        else:
            beta = float(trainer.effective_number_beta)
            weights = (1 - beta) / (1 - beta**counts)
            class_weight = torch.tensor(weights / weights.mean(), dtype=torch.float32)
    return ClassificationLoss(name, spec, options, class_weight, pos_weight)
