"""Decoding an image file to pixels, with numpy and Pillow only: the one decoder that training (as
tensors, :func:`hybrid.data.transforms.read_image`) and torch-free serving (:mod:`hybrid.serve`)
share, so both see the same pixels."""

from __future__ import annotations

import numpy as np
from PIL import Image

# The files taken as images (any case), in datasets, input= folders and hybrid serve.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# PIL's JPEG draft mode decodes at 1/2, 1/4 or 1/8 scale in the DCT, so it only pays once the
# source is at least twice the target on both sides (it never goes below the requested size).
DRAFT_FACTOR = 2


def use_draft(source_size: tuple[int, int], target: int | None) -> bool:
    """Whether a ``(width, height)`` source is large enough for a reduced-scale JPEG decode."""
    return target is not None and min(source_size) >= DRAFT_FACTOR * target


def decode_pixels(path: str, in_channels: int, target: int | None = None) -> np.ndarray:
    """An image file as uint8 ``[H, W, 3]`` (RGB) or ``[H, W]`` (grayscale for 1 channel).

    With ``target`` (the side the image is resized to next), a JPEG at least twice that size is
    decoded in draft mode at a reduced scale still >= ``target``, which is several times cheaper.
    Raises ``OSError`` for unreadable or truncated files.
    """
    mode = "L" if in_channels == 1 else "RGB"
    with Image.open(path) as img:
        if img.format == "JPEG" and use_draft(img.size, target):
            img.draft(mode, (target, target))
        return np.asarray(img.convert(mode)).copy()
