"""Image decoding and the per-sample transforms, all on uint8 tensors.

Samples leave the loader as uint8 ``[C, H, W]`` at the model's input size: a quarter of the bytes of
float32 through the worker pipes, and the float conversion, normalization and colour jitter run once
per batch on the model's device (:mod:`hybrid.data.batch`), vectorized.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

# PIL's JPEG draft mode decodes at 1/2, 1/4 or 1/8 scale in the DCT, so it only pays once the
# source is at least twice the target on both sides (it never goes below the requested size).
DRAFT_FACTOR = 2


def use_draft(source_size: tuple[int, int], target: int | None) -> bool:
    """Whether a ``(width, height)`` source is large enough for a reduced-scale JPEG decode."""
    return target is not None and min(source_size) >= DRAFT_FACTOR * target


def read_image(path: str, in_channels: int, target: int | None = None) -> torch.Tensor:
    """Decode an image file to a ``[C, H, W]`` uint8 tensor (RGB, or grayscale for 1 channel).

    With ``target`` (the side the image is resized to next), a JPEG at least twice that size is
    decoded in draft mode at a reduced scale still >= ``target``, which is several times cheaper.
    Raises ``OSError`` for unreadable or truncated files.
    """
    mode = "L" if in_channels == 1 else "RGB"
    with Image.open(path) as img:
        if img.format == "JPEG" and use_draft(img.size, target):
            img.draft(mode, (target, target))
        pixels = np.asarray(img.convert(mode))
    tensor = torch.from_numpy(pixels.copy())
    return tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1)


class ResizeUint8:
    """Resize a uint8 image to ``size`` square (antialiased bilinear, torchvision's fast uint8
    path); already-sized images (e.g. from the prepared cache) pass through untouched."""

    method = "torchvision.v2.Resize(bilinear, antialias=True, uint8)"

    def __init__(self, size: int):
        self.size = int(size)
        self.resize = v2.Resize((self.size, self.size), antialias=True)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if tuple(image.shape[-2:]) == (self.size, self.size):
            return image
        return self.resize(image)


class RandomAffineUint8:
    """torchvision's ``RandomAffine`` (rotation and scale, nearest neighbour) on a uint8 ``[C, H, W]``
    tensor, run through PIL: PIL's C warp is ~20x cheaper than the tensor path (a float
    ``grid_sample``), which matters when a loader worker shares two cores with the model."""

    def __init__(self, degrees: float, scale: tuple[float, float]):
        self.affine = v2.RandomAffine(degrees=degrees, scale=tuple(scale))

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        pixels = image.permute(1, 2, 0).numpy()
        pil = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else np.ascontiguousarray(pixels))
        out = torch.from_numpy(np.array(self.affine(pil), copy=True))
        return out.unsqueeze(0) if out.ndim == 2 else out.permute(2, 0, 1)


def build_transform(
    img_size: int, in_channels: int, augment: Mapping | None = None, *, on_device: bool = False
) -> v2.Compose:
    """Resize to ``img_size`` square and, for training, apply the geometric augmentations; uint8 in
    and out (normalization and colour jitter happen on the batch, see :mod:`hybrid.data.batch`).
    ``on_device``: for images decoded on the GPU (:mod:`hybrid.data.decode`), the warp runs as a
    tensor op there instead of through PIL.

    Resizing comes first so the augmentations work on the (usually smaller) model-sized image.
    ``augment`` keys used here: ``rotation`` (degrees), ``scale`` ([min, max]), ``hflip``
    (probability), ``hue`` (kept per sample: it needs an HSV round trip); ``None`` for evaluation.
    """
    steps: list = [ResizeUint8(img_size)]
    if augment:
        affine = v2.RandomAffine if on_device else RandomAffineUint8
        steps.append(affine(degrees=augment["rotation"], scale=tuple(augment["scale"])))
        steps.append(v2.RandomHorizontalFlip(augment["hflip"]))
        if in_channels == 3 and augment["hue"]:
            steps.append(v2.ColorJitter(hue=augment["hue"]))
    return v2.Compose(steps)
