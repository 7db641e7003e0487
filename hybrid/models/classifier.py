"""Classification head: dropout then linear."""

from __future__ import annotations

import torch
from torch import nn


class Classifier(nn.Module):
    """Dropout then a linear map to one logit per class."""

    def __init__(self, in_features: int, num_labels: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.projection = nn.Linear(in_features, num_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.dropout(x))
