"""Patch encoder: one shared CNN turns every image patch into a feature vector."""

from __future__ import annotations

import torch
from torch import nn

from hybrid.errors import ConfigError
from hybrid.models.backbones import build_backbone


def patch_grid(img_size: int, patch_size: int, patch_stride: int | None = None) -> int:
    """Patches per image side for square images, or raise if the sizes do not tile."""
    stride = patch_stride or patch_size
    if patch_size > img_size or (img_size - patch_size) % stride:
        raise ConfigError(
            f"model.img_size={img_size} is not covered by patches of model.patch_size={patch_size}"
            f" with stride {stride}: (img_size - patch_size) must be a multiple of the stride"
        )
    return (img_size - patch_size) // stride + 1


class CnnFeatureExtractor(nn.Module):
    """Backbone front, then a 1x1 convolution down to ``out_dim`` channels, pooled to a vector."""

    def __init__(self, backbone: str, out_dim: int, pretrained: bool | str, in_channels: int):
        super().__init__()
        self.cnn, cnn_channels = build_backbone(backbone, pretrained, in_channels)
        self.projection = nn.Conv2d(cnn_channels, out_dim, kernel_size=1)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """``[N, C, p, p]`` patches -> ``[N, out_dim]`` features."""
        return self.pool(self.projection(self.cnn(patches)))


class PatchConvEncoder(nn.Module):
    """Cut an image into patches and encode each with a shared CNN.

    ``[B, C, H, W]`` -> ``[B, num_patches, featured_patch_dim]``, LayerNorm-ed per patch.
    """

    def __init__(
        self,
        img_size: int,
        patch_size: int,
        featured_patch_dim: int,
        backbone: str,
        pretrained: bool | str,
        in_channels: int,
        patch_stride: int | None,
    ):
        super().__init__()
        self.img_size = img_size
        self.patch_size = patch_size
        self.patch_stride = patch_stride or patch_size
        self.in_channels = in_channels
        self.grid_size = patch_grid(img_size, patch_size, patch_stride)
        self.num_patches = self.grid_size**2
        self.featured_patch_dim = featured_patch_dim
        self.shared_conv = CnnFeatureExtractor(backbone, featured_patch_dim, pretrained, in_channels)
        self.norm = nn.LayerNorm(featured_patch_dim)

    def patchify(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[B * num_patches, C, p, p]``, patches in row-major grid order."""
        b, c, h, w = images.shape
        if h != self.img_size or w != self.img_size:
            raise ValueError(f"expected {self.img_size}x{self.img_size} images, got {h}x{w}")
        p, s = self.patch_size, self.patch_stride
        patches = images.unfold(2, p, s).unfold(3, p, s)  # [B, C, gh, gw, p, p]
        patches = patches.permute(0, 2, 3, 1, 4, 5)
        return patches.reshape(b * self.num_patches, c, p, p)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        batch = images.shape[0]
        patches = self.patchify(images)
        if images.is_contiguous(memory_format=torch.channels_last):
            patches = patches.contiguous(memory_format=torch.channels_last)
        features = self.norm(self.shared_conv(patches))
        return features.view(batch, self.num_patches, self.featured_patch_dim)

    def parameter_groups(self) -> dict[str, nn.Module]:
        """Named parts for the parameter report."""
        return {
            "cnn": self.shared_conv.cnn,
            "projection": self.shared_conv.projection,
            "norm": self.norm,
        }
