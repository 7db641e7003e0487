"""Mixup and CutMix on a training batch (``data.mixup``, ``data.cutmix``), on its device.

With probability ``prob`` a batch is mixed with itself in reverse order: by CutMix (a box of the
partner pasted in, with probability ``switch_prob`` when both are on) or by mixup (a weighted sum),
the weight ``lam`` drawn from Beta(alpha, alpha). Targets mix with the same weight: single-label
class indices become probability rows that sum to 1; multi-label 0/1 rows are mixed per label.
CutMix's weight is the box's actual share of the image. Draws come from torch's global generator,
whose state every checkpoint keeps, so a resumed run mixes as the uninterrupted one would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hybrid.errors import ConfigError


@dataclass(frozen=True)
class MixSettings:
    """A view of the ``data`` keys that mix a batch (declared, with their defaults, by
    :class:`~hybrid.data.schema.DataSchema`): ``data.mixup.alpha``, ``data.cutmix.alpha`` (0: off),
    the probability a batch is mixed and, with both on, the probability of CutMix rather than mixup."""

    mixup_alpha: float
    cutmix_alpha: float
    prob: float
    switch_prob: float

    def __post_init__(self):
        for key, value in (("mixup.alpha", self.mixup_alpha), ("cutmix.alpha", self.cutmix_alpha)):
            if value < 0:
                raise ConfigError(f"data.{key}={value}: must be >= 0 (0 turns it off)")
        for key, value in (("mix_prob", self.prob), ("mix_switch_prob", self.switch_prob)):
            if not 0 <= value <= 1:
                raise ConfigError(f"data.{key}={value}: must be in [0, 1]")

    @property
    def enabled(self) -> bool:
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    @classmethod
    def of(cls, data) -> MixSettings:
        """From the typed ``data`` settings (``mixup`` / ``cutmix`` null: off)."""
        return cls(
            float(data.mixup.alpha) if data.mixup is not None else 0.0,
            float(data.cutmix.alpha) if data.cutmix is not None else 0.0,
            float(data.mix_prob),
            float(data.mix_switch_prob),
        )


def _beta(alpha: float) -> float:
    return float(torch.distributions.Beta(alpha, alpha).sample())


def cut_box(height: int, width: int, lam: float) -> tuple[int, int, int, int]:
    """A box covering about ``1 - lam`` of the image, centred at a random point, clipped to it:
    ``(top, bottom, left, right)``."""
    ratio = math.sqrt(1 - lam)
    cut_h, cut_w = round(height * ratio), round(width * ratio)
    cy, cx = int(torch.randint(height, ())), int(torch.randint(width, ()))
    top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
    left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
    return top, bottom, left, right


class BatchMixer:
    """Mixes ``(images, targets)`` of a training batch; ``num_classes`` turns single-label class
    indices into probability rows (``None``: multi-label 0/1 rows)."""

    def __init__(self, settings: MixSettings, num_classes: int | None):
        self.settings = settings
        self.num_classes = num_classes

    def __call__(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        settings = self.settings
        rows = F.one_hot(targets.long(), self.num_classes).float() if self.num_classes else targets.float()
        if len(images) < 2 or float(torch.rand(())) >= settings.prob:
            return images, rows
        use_cutmix = settings.cutmix_alpha > 0 and (
            settings.mixup_alpha <= 0 or float(torch.rand(())) < settings.switch_prob
        )
        partner = images.flip(0)
        if use_cutmix:
            lam = _beta(settings.cutmix_alpha)
            top, bottom, left, right = cut_box(images.shape[-2], images.shape[-1], lam)
            images = images.clone()
            images[..., top:bottom, left:right] = partner[..., top:bottom, left:right]
            lam = 1 - (bottom - top) * (right - left) / (images.shape[-2] * images.shape[-1])
        else:
            lam = _beta(settings.mixup_alpha)
            images = images * lam + partner * (1 - lam)
        return images, rows * lam + rows.flip(0) * (1 - lam)
