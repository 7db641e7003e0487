"""Image decoding and the per-sample transforms, all on uint8 tensors.

Samples leave the loader as uint8 ``[C, H, W]`` at the model's input size: a quarter of the bytes of
float32 through the worker pipes, and the float conversion, normalization and colour jitter run once
per batch on the model's device (:mod:`hybrid.data.batch`), vectorized.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import v2

from hybrid.util.images import decode_pixels

if TYPE_CHECKING:  # the data layer's typed settings (annotations only)
    from hybrid.data.schema import AugmentSchema


def read_image(path: str, in_channels: int, target: int | None = None) -> torch.Tensor:
    """Decode an image file to a ``[C, H, W]`` uint8 tensor (RGB, or grayscale for 1 channel), with
    the reduced-scale JPEG decode of :func:`hybrid.util.images.decode_pixels` for a ``target`` side.
    Raises ``OSError`` for unreadable or truncated files.
    """
    tensor = torch.from_numpy(decode_pixels(path, in_channels, target))
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


def build_transform(img_size: int, in_channels: int, augment: AugmentSchema | None = None) -> v2.Compose:
    """Resize to ``img_size`` square and, for training, apply the geometric augmentations; uint8 in
    and out (normalization and colour jitter happen on the batch, see :mod:`hybrid.data.batch`).

    Resizing comes first so the augmentations work on the (usually smaller) model-sized image.
    ``augment`` keys used here: ``rotation`` (degrees), ``scale`` ([min, max]), ``hflip``
    (probability), ``hue`` (kept per sample: it needs an HSV round trip); ``None`` for evaluation.
    """
    steps: list = [ResizeUint8(img_size)]
    if augment:
        steps.append(RandomAffineUint8(augment.rotation, augment.scale))
        steps.append(v2.RandomHorizontalFlip(augment.hflip))
        if in_channels == 3 and augment.hue:
            steps.append(v2.ColorJitter(hue=augment.hue))
    return v2.Compose(steps)


class BatchAugment:
    """The training augmentations of :func:`build_transform` on a whole uint8 batch ``[B, C, S, S]``
    at once, on its device (``data.decode=cuda``): per image a rotation in ``[-rotation, rotation]``
    degrees and a scale in ``scale`` about the centre (nearest neighbour, zero fill, as
    ``RandomAffine``), a horizontal flip with probability ``hflip``, and ``hue`` per image. One
    ``grid_sample`` call replaces a PIL warp per image in the loader workers."""

    def __init__(self, rotation: float, scale: tuple[float, float], hflip: float, hue: float = 0.0):
        self.rotation = math.radians(float(rotation))
        self.scale = (float(scale[0]), float(scale[1]))
        self.hflip = float(hflip)
        self.hue = v2.ColorJitter(hue=hue) if hue else None

    @classmethod
    def from_config(cls, augment: AugmentSchema, in_channels: int) -> BatchAugment:
        """The augmentation a ``data.augment`` block describes (hue only for RGB)."""
        hue = augment.hue if in_channels == 3 else 0.0
        return cls(augment.rotation, augment.scale, augment.hflip, hue)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        count, device = images.shape[0], images.device
        angle = torch.empty(count).uniform_(-self.rotation, self.rotation)
        scale = torch.empty(count).uniform_(*self.scale)
        flip = torch.rand(count) < self.hflip
        # affine_grid maps output to input coordinates: the inverse of rotate-then-scale.
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.zeros(count, 2, 3)
        theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
        theta[:, :, 0] *= torch.where(flip, -1.0, 1.0).unsqueeze(1)  # out(x, y) = warped(-x, y): the flip
        grid = F.affine_grid(theta.to(device), list(images.shape), align_corners=False)
        warped = F.grid_sample(images.float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
        out = warped.to(torch.uint8)
        if self.hue is not None:
            out = torch.stack([self.hue(image) for image in out])
        return out
