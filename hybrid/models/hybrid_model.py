"""The assembled model: patch encoder, CATS decoder, classifier."""

from __future__ import annotations

import torch
from torch import nn


class HybridModel(nn.Module):
    """Encoder -> decoder -> classifier: images ``[B, C, H, W]`` to logits ``[B, num_labels]``.

    Meets :class:`~hybrid.models.contract.ClassifierModel` and offers
    :class:`~hybrid.models.contract.AttentionMaps` (the CATS queries' weights over the patches).
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, classifier: nn.Module, num_labels: int):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.classifier = classifier
        self.num_labels = num_labels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.decoder(self.encoder(images)))

    def forward_with_attention(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the last decoder layer's attention weights ``[B, heads, queries, patches]``."""
        decoded, attention = self.decoder(self.encoder(images), return_attention=True)
        return self.classifier(decoded), attention

    def parameter_groups(self) -> dict[str, nn.Module | nn.Parameter]:
        """The encoder's and decoder's named parts (``encoder/cnn``, ``decoder/layers``, ...),
        each whole part (``encoder``, ``decoder``) and the ``classifier``."""
        groups: dict[str, nn.Module | nn.Parameter] = {}
        for name in ("encoder", "decoder"):
            part = getattr(self, name)
            groups.update({f"{name}/{group}": module for group, module in part.parameter_groups().items()})
            groups[name] = part
        groups["classifier"] = self.classifier
        return groups
