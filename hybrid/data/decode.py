"""Decoding and augmenting on the model's device (``data.decode=cuda``): the loader workers only
read files (JPEG bytes, or the raw pixels of an ``npy`` prepared cache), and the batch is decoded
by ``torchvision.io.decode_jpeg`` (nvJPEG on CUDA), resized and augmented on the GPU.

Other formats (PNG sources, ``png`` cache entries) are decoded by the workers as with
``data.decode=cpu`` and augmented on the device with the rest. PIL's reduced-scale JPEG decoding
(draft mode, for sources at least twice the input size) has no GPU counterpart: such sources are
decoded in full, then resized. nvJPEG's IDCT and chroma upsampling are not libjpeg's, so pixels
differ slightly from the CPU path (docs/gpu.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch
from torchvision.io import ImageReadMode, decode_jpeg

from hybrid.errors import ConfigError

DECODES = ("cpu", "cuda")
JPEG_MAGIC = b"\xff\xd8\xff"


def check_decode(decode: str, device: torch.device) -> str:
    """``data.decode``: ``cpu`` (loader workers) or ``cuda`` (on the training device, which must be a GPU)."""
    if decode not in DECODES:
        raise ConfigError(f"data.decode={decode!r}; choose one of {list(DECODES)}")
    if decode == "cuda" and device.type != "cuda":
        raise ConfigError(f"data.decode=cuda decodes on the GPU, but the model runs on {device.type}; use cpu")
    return decode


def jpeg_tensor(data: bytearray) -> torch.Tensor | None:
    """``data`` as a uint8 tensor sharing its buffer if it is a JPEG, else ``None``."""
    return torch.frombuffer(data, dtype=torch.uint8) if data.startswith(JPEG_MAGIC) else None


def read_jpeg_bytes(path: str) -> torch.Tensor | None:
    """The bytes of ``path`` as a uint8 tensor if it is a JPEG file, else ``None``."""
    with open(path, "rb") as handle:
        data = bytearray(os.fstat(handle.fileno()).st_size)  # read straight into the tensor's buffer
        del data[handle.readinto(data) :]
    return jpeg_tensor(data)


Transform = Callable[[torch.Tensor], torch.Tensor]


class DeviceDecoder:
    """Turns a batch's items into one uint8 ``[B, C, S, S]`` tensor on ``device``: JPEG bytes are
    decoded there in one call and resized (``resize``, per image: sources differ in size); images
    the workers decoded are moved; then ``augment`` (training: :class:`~hybrid.data.transforms.BatchAugment`)
    runs on the whole batch."""

    def __init__(self, resize: Transform, augment: Transform | None, in_channels: int, device: torch.device):
        self.resize = resize
        self.augment = augment
        self.mode = ImageReadMode.GRAY if int(in_channels) == 1 else ImageReadMode.RGB
        self.device = torch.device(device)

    def decode(self, encoded: Sequence[torch.Tensor]) -> list[torch.Tensor | None]:
        """Decode every JPEG of ``encoded`` on the device; ``None`` for one that fails to decode."""
        try:
            return list(decode_jpeg(list(encoded), mode=self.mode, device=self.device))
        except RuntimeError:  # one bad file fails the batch call: find it
            return [self._decode_one(data) for data in encoded]

    def _decode_one(self, data: torch.Tensor) -> torch.Tensor | None:
        try:
            return decode_jpeg(data, mode=self.mode, device=self.device)
        except RuntimeError:
            return None

    def finish(self, images: torch.Tensor) -> torch.Tensor:
        """A stacked uint8 batch moved to the device and augmented (in training)."""
        images = images.to(self.device, non_blocking=True)
        return self.augment(images) if self.augment is not None else images

    def __call__(
        self, encoded: Sequence[torch.Tensor | None], decoded: Sequence[torch.Tensor | None]
    ) -> tuple[torch.Tensor | None, list[int]]:
        """The batch's images in item order, and the positions of items that could not be decoded
        (left out of the tensor; ``None`` when none is left)."""
        positions = [i for i, data in enumerate(encoded) if data is not None]
        images: list[torch.Tensor | None] = [
            None if item is None else item.to(self.device, non_blocking=True) for item in decoded
        ]
        for position, image in zip(positions, self.decode([encoded[i] for i in positions]), strict=True):
            images[position] = None if image is None else self.resize(image)
        bad = [i for i, image in enumerate(images) if image is None]
        good = [image for image in images if image is not None]
        return (self.finish(torch.stack(good)) if good else None), bad
