"""Image files and video frames to a model's input, as the training stack's evaluation path makes it: the same
decoder (:func:`hybrid.util.images.decode_pixels`, reduced-scale JPEG decode included), an
antialiased bilinear resize to the card's square side (Pillow's, which torchvision's uint8 path
matches to within one grey level), and ``(x / 255 - mean) / std`` folded into one multiply-add."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from hybrid.util.images import decode_pixels


def fit(pixels: np.ndarray, size: int) -> np.ndarray:
    """Decoded pixels (uint8 ``[H, W, 3]`` or ``[H, W]``: an image file's or a video frame's) as the
    uint8 ``[C, size, size]`` a model takes: antialiased bilinear resize, channels first."""
    if pixels.shape[:2] != (size, size):
        pixels = np.asarray(Image.fromarray(pixels).resize((size, size), Image.Resampling.BILINEAR))
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def load_image(path: str, in_channels: int, size: int) -> np.ndarray:
    """An image file as uint8 ``[C, size, size]`` (raises ``OSError`` for an unreadable file)."""
    return fit(decode_pixels(str(path), in_channels, size), size)


def normalize(images: Sequence[np.ndarray] | np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """uint8 ``[B, C, H, W]`` (or a list of ``[C, H, W]``) as the float32 batch a model takes:
    ``x * scale + shift`` in float32, as the training stack's batches are normalized, written into
    one array (temporaries of a 480 px batch cost ten times the arithmetic)."""
    batch = np.stack(images) if not isinstance(images, np.ndarray) else images
    std_ = np.asarray(std, np.float32).reshape(1, -1, 1, 1)
    scale = np.float32(1.0) / (np.float32(255.0) * std_)
    shift = -np.asarray(mean, np.float32).reshape(1, -1, 1, 1) / std_
    out = np.empty(batch.shape, np.float32)
    np.multiply(batch, scale, out=out, dtype=np.float32)
    out += shift
    return out
