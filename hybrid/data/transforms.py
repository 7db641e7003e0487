"""Image decoding and the train / evaluation transforms (torchvision v2, on uint8 tensors)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2


def read_image(path: str, in_channels: int) -> torch.Tensor:
    """Decode an image file to a ``[C, H, W]`` uint8 tensor (RGB, or grayscale for 1 channel).

    Raises ``OSError`` for unreadable or truncated files.
    """
    with Image.open(path) as img:
        pixels = np.asarray(img.convert("L" if in_channels == 1 else "RGB"))
    tensor = torch.from_numpy(pixels.copy())
    return tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1)


def _channel_stats(values: Sequence[float], in_channels: int) -> list[float]:
    values = list(values)
    return [sum(values) / len(values)] if in_channels == 1 else values


def build_transform(
    img_size: int,
    in_channels: int,
    mean: Sequence[float],
    std: Sequence[float],
    augment: Mapping | None = None,
) -> v2.Compose:
    """Resize to ``img_size`` square, optionally augment, then scale to float and normalize.

    Resizing comes first so the augmentations work on the (usually smaller) model-sized image.
    ``augment`` keys: ``rotation`` (degrees), ``scale`` ([min, max]), ``hflip`` (probability),
    ``brightness``, ``contrast``, ``saturation``, ``hue``; ``None`` for evaluation.
    """
    steps: list = [v2.Resize((img_size, img_size), antialias=True)]
    if augment:
        steps.append(v2.RandomAffine(degrees=augment["rotation"], scale=tuple(augment["scale"])))
        steps.append(v2.RandomHorizontalFlip(augment["hflip"]))
        jitter = {k: augment[k] for k in ("brightness", "contrast", "saturation", "hue")}
        if in_channels == 1:
            jitter["saturation"] = jitter["hue"] = 0
        if any(jitter.values()):
            steps.append(v2.ColorJitter(**jitter))
    steps += [
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(_channel_stats(mean, in_channels), _channel_stats(std, in_channels)),
    ]
    return v2.Compose(steps)
