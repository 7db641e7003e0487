"""Batch preparation on the model's device: uint8 images to normalized float, colour jitter.

The DataLoader hands over uint8 batches at the model's input size; the work that is the same for
every pixel (scaling to [0, 1], normalizing with the data config's mean / std, colour jitter) runs
here once per batch, vectorized on the device, instead of per sample in the loader workers.
:class:`hybrid.data.device_loader.DeviceLoader` applies it to every batch, so the engine only ever
sees batches ready for the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # the data layer's typed settings (annotations only)
    from hybrid.data.schema import DataSchema

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
    def from_config(cls, data: DataSchema) -> BatchPreparer:
        """The preparer ``data`` describes (its mean, std, channels and augment block's jitter)."""
        jitter = {key: getattr(data.augment, key) for key in JITTER_KEYS} if data.augment else None
        return cls(data.mean, data.std, data.in_channels, jitter)

    def __call__(
        self, images: torch.Tensor, device: torch.device, *, channels_last: bool = False, train: bool = False
    ) -> torch.Tensor:
        """The batch on ``device``, float32, normalized, jittered when ``train``, in the requested
        memory format."""
        images = images.to(device, non_blocking=True)
        if channels_last and images.ndim == 4:
            images = images.contiguous(memory_format=torch.channels_last)  # cheapest on uint8
        if images.dtype != torch.uint8:
            return images
        if train and self.jitter:
            return self.jitter_and_normalize(images)
        return self.normalize(images.float())  # float() keeps the memory format

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """``(pixels / 255 - mean) / std`` for float pixels in [0, 255], in place."""
        device = pixels.device
        return pixels.mul_(self.scale.to(device)).add_(self.shift.to(device))

    def colour_matrices(self, mean_colour: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per image, the matrix ``A`` ``[B, C, C]`` and offset ``d`` ``[B, C]`` with
        ``jitter(x) = A x + d`` for pixel colours ``x`` in [0, 255].

        Brightness, contrast and saturation (in that order) are each linear in the colour, so their
        composition is one affine map; contrast's offset needs each image's mean colour
        (``mean_colour``, ``[B, C]``). Factors are drawn from ``U[max(0, 1 - s), 1 + s]`` per image.
        """
        count, channels = mean_colour.shape
        device = mean_colour.device
        identity = torch.eye(channels, device=device)
        matrix, offset = identity.expand(count, channels, channels).clone(), torch.zeros(count, channels, device=device)
        luma = torch.tensor(LUMA, device=device) if channels == 3 else torch.ones(1, device=device)
        for key in JITTER_KEYS:
            if key not in self.jitter:
                continue
            strength = self.jitter[key]
            factor = torch.empty(count, 1, 1).uniform_(max(0.0, 1 - strength), 1 + strength).to(device)
            if key == "brightness":  # x -> f x
                matrix, offset = factor * matrix, factor[:, :, 0] * offset
            elif key == "contrast":  # x -> f x + (1 - f) (mean gray level so far)
                gray = ((matrix @ mean_colour.unsqueeze(2)).squeeze(2) + offset) @ luma
                matrix = factor * matrix
                offset = factor[:, :, 0] * offset + (1 - factor[:, :, 0]) * gray.unsqueeze(1)
            else:  # saturation: x -> f x + (1 - f) gray(x)
                towards_gray = factor * identity + (1 - factor) * luma.view(1, 1, -1)
                matrix, offset = towards_gray @ matrix, (towards_gray @ offset.unsqueeze(2)).squeeze(2)
        return matrix, offset

    def jitter_and_normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """Colour jitter then normalization of uint8 ``[B, C, H, W]`` as one affine map per image,
        clamped to the valid colour range: one pass over the pixels instead of one per step, in the
        batch's own memory format."""
        count, channels, height, width = pixels.shape
        colours = pixels.float()
        matrix, offset = self.colour_matrices(colours.mean(dim=(2, 3)))
        scale, shift = self.scale.to(pixels.device).view(1, -1), self.shift.to(pixels.device).view(1, -1)
        # y = scale (A x + d) + shift; 0 and 255 land on these bounds per channel
        matrix, offset = scale.unsqueeze(2) * matrix, scale * offset + shift
        low, high = shift, 255 * scale + shift
        if channels > 1 and colours.is_contiguous(memory_format=torch.channels_last):
            flat = colours.permute(0, 2, 3, 1).reshape(count, height * width, channels)  # a view
            out = torch.baddbmm(offset.unsqueeze(1), flat, matrix.transpose(1, 2))
            out = torch.clamp(out, min=low.unsqueeze(1), max=high.unsqueeze(1), out=out)
            return out.view(count, height, width, channels).permute(0, 3, 1, 2)
        flat = colours.reshape(count, channels, height * width)
        out = torch.baddbmm(offset.unsqueeze(2), matrix, flat)
        out = torch.clamp(out, min=low.unsqueeze(2), max=high.unsqueeze(2), out=out)
        return out.view(count, channels, height, width)
