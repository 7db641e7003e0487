"""Baselines the hybrid is compared against, built to the same contract so the same engine trains,
tests, serves, exports and benchmarks them.

- :class:`TimmClassifier`: a network from timm (``TIMM_ARCHITECTURES``), its head sized to the task
  and its first convolution to ``in_channels``; weights are random or come from a local file (timm
  never downloads here).
- :class:`Xie2019`: the CNN of Xie et al. (2019), "Automatic detection and classification of sewer
  defects via hierarchical deep learning", as the Sewer-ML benchmark (Haurum & Moeslund, CVPR 2021)
  describes and trains it: three convolution / ReLU / max-pool stages (64 filters of 11x11, then
  128 and 128 of 3x3 with stride 2), adaptive average pooling to 8x8, and a 1024-512 MLP with
  dropout 0.6.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from hybrid.errors import ConfigError, PretrainedWeightsError
from hybrid.models.backbones import check_in_channels


@dataclass(frozen=True)
class TimmSpec:
    """A timm network: its timm name, the multiple ``img_size`` must be of, and whether the
    network is built for a given input size (vision transformers size their position table)."""

    timm_name: str
    size_multiple: int
    sized_at_build: bool = False
    min_size: int = 32


# model.name -> timm network; size rules are the networks' total stride (or patch size for ViTs)
TIMM_ARCHITECTURES = {
    "resnet18": TimmSpec("resnet18", 1),
    "efficientnet_b0": TimmSpec("efficientnet_b0", 1),
    "mobilenetv3_small_100": TimmSpec("mobilenetv3_small_100", 1),
    "mobilenetv4_conv_small": TimmSpec("mobilenetv4_conv_small", 1),
    "deit_tiny": TimmSpec("deit_tiny_patch16_224", 16, sized_at_build=True),
    "mobilevit_xxs": TimmSpec("mobilevit_xxs", 32, min_size=64),
}


def check_timm_input(name: str, img_size: int, in_channels: int) -> None:
    """What a timm architecture accepts as ``model.img_size`` / ``model.in_channels``."""
    if name not in TIMM_ARCHITECTURES:
        raise ConfigError(f"model.architecture={name!r}; choose one of {sorted(TIMM_ARCHITECTURES)}")
    spec = TIMM_ARCHITECTURES[name]
    if int(img_size) < spec.min_size or int(img_size) % spec.size_multiple:
        raise ConfigError(
            f"model.img_size={img_size}: {name} needs at least {spec.min_size} px"
            + (f" in multiples of {spec.size_multiple}" if spec.size_multiple > 1 else "")
        )
    check_in_channels(in_channels)


def check_local_weights(pretrained) -> str | None:
    """``model.pretrained`` of a baseline: false, or the path of a local weights file."""
    if pretrained is None or pretrained is False:
        return None
    if pretrained is True:
        raise PretrainedWeightsError(
            "model.pretrained=true: baselines load weights from a local file only (nothing is downloaded); "
            "give its path: model.pretrained=/path/to/weights.safetensors"
        )
    path = Path(str(pretrained)).expanduser()
    if not path.is_file():
        raise PretrainedWeightsError(f"model.pretrained={pretrained}: no such file; place the weights there")
    return str(path)


class TimmClassifier(nn.Module):
    """A timm network as a :class:`~hybrid.models.contract.ClassifierModel`: images
    ``[B, in_channels, img_size, img_size]`` to logits ``[B, num_labels]``."""

    def __init__(
        self,
        architecture: str,
        num_labels: int,
        img_size: int,
        in_channels: int,
        pretrained: bool | str,
        drop_rate: float,
        drop_path_rate: float,
    ):
        super().__init__()
        import timm

        check_timm_input(architecture, img_size, in_channels)
        spec = TIMM_ARCHITECTURES[architecture]
        weights = check_local_weights(pretrained)
        options = {"img_size": int(img_size)} if spec.sized_at_build else {}
        if weights:  # timm reads the file, adapts the first conv to in_channels and drops a foreign head
            options.update(pretrained=True, pretrained_cfg_overlay={"file": weights})
        self.net = timm.create_model(
            spec.timm_name, num_classes=num_labels, in_chans=int(in_channels), drop_rate=drop_rate,
            drop_path_rate=drop_path_rate, **options,
        )  # fmt: skip
        self.num_labels = num_labels

    def forward(self, images):
        return self.net(images)

    def parameter_groups(self) -> dict[str, nn.Module | nn.Parameter]:
        """The whole network and its classification head."""
        return {"network": self.net, "classifier": self.net.get_classifier()}


class Xie2019(nn.Module):
    """The Sewer-ML benchmark's CNN of Xie et al. (2019) (see the module doc)."""

    def __init__(self, num_labels: int, in_channels: int, dropout: float):
        super().__init__()

        def stage(inputs: int, outputs: int, kernel: int, stride: int) -> list[nn.Module]:
            conv = nn.Conv2d(inputs, outputs, kernel, stride=stride, padding=kernel // 2)
            return [conv, nn.ReLU(inplace=True), nn.MaxPool2d(2, 2)]

        self.features = nn.Sequential(
            *stage(in_channels, 64, 11, 1), *stage(64, 128, 3, 2), *stage(128, 128, 3, 2), nn.AdaptiveAvgPool2d(8)
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(128 * 8 * 8, 1024),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(1024, 512),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(512, num_labels),
        )
        self.num_labels = num_labels

    def forward(self, images):
        return self.classifier(self.features(images))

    def parameter_groups(self) -> dict[str, nn.Module | nn.Parameter]:
        """The convolutional features and the MLP classifier."""
        return {"features": self.features, "classifier": self.classifier}
