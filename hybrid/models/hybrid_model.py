"""The assembled model: patch encoder, CATS decoder, classifier."""

from __future__ import annotations

import torch
from torch import nn


class HybridModel(nn.Module):
    """Encoder -> decoder -> classifier: images ``[B, C, H, W]`` to logits ``[B, num_labels]``."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, classifier: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.classifier = classifier

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.decoder(self.encoder(images)))

    def forward_with_attention(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the last decoder layer's attention weights ``[B, heads, queries, patches]``."""
        decoded, attention = self.decoder(self.encoder(images), return_attention=True)
        return self.classifier(decoded), attention
