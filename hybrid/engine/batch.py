"""Batch preparation on the training device: uint8 images to normalized float, colour jitter.

The loader hands over uint8 batches at the model's input size; the work that is the same for every
pixel (scaling to [0, 1], normalizing with the data config's mean / std, colour jitter) runs here
once per batch, vectorized on the device, instead of per sample in the loader workers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

# ITU-R 601 luma, as torchvision's rgb_to_grayscale uses.
LUMA = (0.2989, 0.587, 0.114)
JITTER_KEYS = ("brightness", "contrast", "saturation")


def channel_stats(values: Sequence[float], in_channels: int) -> list[float]:
    """The per-channel statistic for ``in_channels`` (grayscale: the mean of the RGB values)."""
    values = [float(v) for v in values]
    return [sum(values) / len(values)] if in_channels == 1 else values


class BatchPreparer:
    """Moves a batch to the device and turns uint8 ``[B, C, H, W]`` into normalized float.

    ``jitter`` (training only): ``brightness`` / ``contrast`` / ``saturation`` strengths ``s``; each
    image draws its factor from ``U[max(0, 1 - s), 1 + s]``, as torchvision's ColorJitter does.
    Float batches (already normalized by a custom dataset) are only moved.
    """

    def __init__(
        self, mean: Sequence[float], std: Sequence[float], in_channels: int = 3, jitter: Mapping | None = None
    ):
        mean_t = torch.tensor(channel_stats(mean, in_channels)).view(1, -1, 1, 1)
        std_t = torch.tensor(channel_stats(std, in_channels)).view(1, -1, 1, 1)
        # x / 255 then (x - mean) / std folded into one multiply-add.
        self.scale = 1.0 / (255.0 * std_t)
        self.shift = -mean_t / std_t
        self.in_channels = in_channels
        jitter = dict(jitter or {})
        if in_channels == 1:
            jitter.pop("saturation", None)
        self.jitter = {k: float(jitter[k]) for k in JITTER_KEYS if jitter.get(k)}

    @classmethod
    def from_config(cls, data_cfg: Mapping) -> BatchPreparer:
        """The preparer a ``data`` config describes (its mean, std, channels and augment block)."""
        augment = data_cfg.get("augment") or {}
        return cls(data_cfg["mean"], data_cfg["std"], int(data_cfg["in_channels"]), augment)

    def __call__(
        self, images: torch.Tensor, device: torch.device, channels_last: bool = False, train: bool = False
    ) -> torch.Tensor:
        """The batch on ``device``, float32, normalized, jittered when ``train``, in the requested
        memory format."""
        images = images.to(device, non_blocking=True)
        if channels_last and images.ndim == 4:
            images = images.contiguous(memory_format=torch.channels_last)  # cheapest on uint8
        if images.dtype != torch.uint8:
            return images
        if train and self.jitter:
            return self.normalize(self.color_jitter(images.float().div_(255)) * 255)
        return self.normalize(images.float())

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """``(pixels / 255 - mean) / std`` for float pixels in [0, 255], in place."""
        device = pixels.device
        return pixels.mul_(self.scale.to(device)).add_(self.shift.to(device))

    def color_jitter(self, images: torch.Tensor) -> torch.Tensor:
        """Random brightness, contrast and saturation per image, on float images in [0, 1]."""
        for key in JITTER_KEYS:
            if key in self.jitter:
                strength = self.jitter[key]
                factor = torch.empty(len(images), 1, 1, 1).uniform_(max(0.0, 1 - strength), 1 + strength)
                images = _blend(images, _reference(images, key), factor.to(images.device))
        return images


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """Luma of float RGB images ``[B, 3, H, W]`` as ``[B, 1, H, W]`` (grayscale input is returned)."""
    if images.shape[1] == 1:
        return images
    weights = torch.tensor(LUMA, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


def _reference(images: torch.Tensor, key: str) -> torch.Tensor:
    """What each jitter blends towards: black, the mean gray level, or the grayscale image."""
    if key == "brightness":
        return torch.zeros((), device=images.device, dtype=images.dtype)
    gray = grayscale(images)
    return gray.mean(dim=(1, 2, 3), keepdim=True) if key == "contrast" else gray


def _blend(images: torch.Tensor, reference: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (factor * images + (1 - factor) * reference).clamp_(0, 1)
