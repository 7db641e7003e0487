"""Registry of CNN fronts that turn one image patch into a feature map.

Each entry cuts the front off a torchvision classification network. New backbones are added by
registering a builder; nothing else in the package needs to change.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torchvision import models as tvm

from hybrid.errors import ConfigError, PretrainedWeightsError


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone front.

    Attributes:
        arch: torchvision constructor name (``resnet18``, ``mobilenet_v3_small``, ...).
        weights: the torchvision weights enum used for ``pretrained=true``.
        cut: turns the full torchvision network into the front we keep.
        first_conv: path of the first convolution inside the front, for ``in_channels=1``.
    """

    arch: str
    weights: tvm.WeightsEnum
    cut: Callable[[nn.Module], nn.Sequential]
    first_conv: str


def _resnet_until(layer: int) -> Callable[[nn.Module], nn.Sequential]:
    def cut(net: nn.Module) -> nn.Sequential:
        parts = [net.conv1, net.bn1, net.relu, net.maxpool]
        parts += [getattr(net, f"layer{i}") for i in range(1, layer + 1)]
        return nn.Sequential(*parts)

    return cut


def _features_through(block: int) -> Callable[[nn.Module], nn.Sequential]:
    def cut(net: nn.Module) -> nn.Sequential:
        return nn.Sequential(*list(net.features.children())[: block + 1])

    return cut


BACKBONES: dict[str, BackboneSpec] = {
    "resnet18_layer1": BackboneSpec("resnet18", tvm.ResNet18_Weights.DEFAULT, _resnet_until(1), "0"),
    "resnet18_layer2": BackboneSpec("resnet18", tvm.ResNet18_Weights.DEFAULT, _resnet_until(2), "0"),
}
for _block in (1, 3, 4):
    BACKBONES[f"mobilenet_v3_small_feat{_block}"] = BackboneSpec(
        "mobilenet_v3_small",
        tvm.MobileNet_V3_Small_Weights.DEFAULT,
        _features_through(_block),
        "0.0",
    )
for _block in (2, 3):
    BACKBONES[f"efficientnet_b0_feat{_block}"] = BackboneSpec(
        "efficientnet_b0",
        tvm.EfficientNet_B0_Weights.DEFAULT,
        _features_through(_block),
        "0.0",
    )


def available_backbones() -> list[str]:
    """Names accepted by ``model.backbone``."""
    return sorted(BACKBONES)


def cached_weights_file(weights: tvm.WeightsEnum) -> Path:
    """Where torch looks for downloaded torchvision weights (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def check_in_channels(in_channels: int) -> None:
    """Every model reads 3 (RGB) or 1 (grayscale) channels."""
    if int(in_channels) not in (1, 3):
        raise ConfigError(f"model.in_channels must be 1 or 3, got {in_channels}")


def check_backbone(name: str, in_channels: int) -> BackboneSpec:
    """A registered backbone, fed 3 (RGB) or 1 (grayscale) channels."""
    if name not in BACKBONES:
        raise ConfigError(f"model.backbone={name!r} is unknown; choose one of {available_backbones()}")
    check_in_channels(in_channels)
    return BACKBONES[name]


def pretrained_weights_file(name: str, pretrained: bool | str | None) -> Path | None:
    """The local file ``model.pretrained`` points at for backbone ``name`` (``None``: no weights), or
    raise :class:`PretrainedWeightsError` saying which file to place where (nothing is downloaded)."""
    if pretrained is False or pretrained is None:
        return None
    spec = BACKBONES[name]
    if pretrained is True:
        path = cached_weights_file(spec.weights)
        if not path.is_file():
            raise PretrainedWeightsError(
                f"model.pretrained=true needs {path.name} for {spec.arch}, which cannot be "
                f"downloaded here: place it at {path} (from {spec.weights.url}) or set "
                "model.pretrained=/path/to/weights.pth"
            )
        return path
    path = Path(str(pretrained)).expanduser()
    if not path.is_file():
        raise PretrainedWeightsError(f"model.pretrained={pretrained}: no such weights file")
    return path


def _average_first_conv_to_gray(front: nn.Sequential, conv_path: str) -> None:
    """Replace the RGB first convolution by a 1-channel one whose kernel is the RGB mean."""
    parent_path, _, name = conv_path.rpartition(".")
    parent = front.get_submodule(parent_path) if parent_path else front
    old: nn.Conv2d = getattr(parent, name)
    new = nn.Conv2d(
        1,
        old.out_channels,
        old.kernel_size,
        old.stride,
        old.padding,
        old.dilation,
        old.groups,
        old.bias is not None,
    )
    with torch.no_grad():
        new.weight.copy_(old.weight.mean(dim=1, keepdim=True))
        if old.bias is not None:
            new.bias.copy_(old.bias)
    setattr(parent, name, new)


def build_backbone(name: str, pretrained: bool | str = False, in_channels: int = 3) -> tuple[nn.Sequential, int]:
    """Build a registered CNN front.

    Args:
        name: a key of :data:`BACKBONES`.
        pretrained: ``False``, ``True`` (torchvision weights from the local torch cache) or a path
            to a state dict of the full torchvision network.
        in_channels: 3, or 1 to average the first convolution over RGB.

    Returns:
        The front and the number of channels it outputs.
    """
    spec = check_backbone(name, in_channels)
    net = getattr(tvm, spec.arch)(weights=None)
    weights_file = pretrained_weights_file(name, pretrained)
    if weights_file is not None:
        state = torch.load(weights_file, map_location="cpu", weights_only=True)
        missing, _ = net.load_state_dict(state, strict=False)
        if missing:
            raise PretrainedWeightsError(
                f"model.pretrained={pretrained}: not a {spec.arch} state dict "
                f"({len(missing)} missing keys, e.g. {missing[0]})"
            )
    front = spec.cut(net)
    if in_channels == 1:
        _average_first_conv_to_gray(front, spec.first_conv)
    with torch.no_grad():
        out_channels = front.eval()(torch.zeros(1, in_channels, 64, 64)).shape[1]
    front.train()
    return front, out_channels
