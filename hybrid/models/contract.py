"""What the engine, the trackers and (later) exporters may rely on in a model, stated once.

``build_model`` checks every model it builds against :class:`ClassifierModel`; attention maps are an
optional capability (:class:`AttentionMaps`) that callers ask for with :func:`supports_attention`
rather than assume. A baseline architecture or an exported model plugs in by meeting these.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn

from hybrid.errors import ConfigError


@runtime_checkable
class ClassifierModel(Protocol):
    """Images ``[B, in_channels, img_size, img_size]`` (normalized float) to logits ``[B, num_labels]``."""

    num_labels: int

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...

    def parameter_groups(self) -> dict[str, nn.Module | nn.Parameter]:
        """Named parts (``encoder/cnn``, ``classifier``, ...) for the parameter report."""
        ...


@runtime_checkable
class AttentionMaps(Protocol):
    """Models that can show where they looked: attention weights over a square patch grid."""

    def forward_with_attention(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``[B, num_labels]`` and attention ``[B, heads, queries, patches]``."""
        ...


@runtime_checkable
class PatchEncoder(Protocol):
    """An encoder the CATS decoder can read: ``[B, C, H, W]`` to ``[B, num_patches, features]``."""

    num_patches: int
    grid_size: int


@runtime_checkable
class FeatureDecoder(Protocol):
    """A decoder whose flat output of ``out_features`` feeds the classifier."""

    out_features: int


def check_contract(part: object, contract: type, role: str) -> None:
    """Raise :class:`ConfigError` when ``part`` (built from the ``model`` config) is no ``nn.Module``
    meeting ``contract``; ``role`` names it (``model``, ``model.encoder``)."""
    if not isinstance(part, nn.Module) or not isinstance(part, contract):
        raise ConfigError(
            f"{role}: {type(part).__name__} does not meet the {contract.__name__} contract of hybrid.models.contract"
        )


def supports_attention(model: nn.Module) -> bool:
    """Whether ``model`` (or the module a DDP wrapper holds) offers attention maps."""
    return isinstance(getattr(model, "module", model), AttentionMaps)
