"""Classification head: dropout then linear."""

from __future__ import annotations

import torch
from torch import nn

from hybrid.errors import ConfigError


class GroupedLinear(nn.Module):
    """``groups`` independent maps of ``in_features / groups`` features to one logit each: logit
    ``i`` reads only the ``i``-th slice (query ``i``), as Query2Label's and ML-Decoder's heads."""

    def __init__(self, in_features: int, groups: int):
        super().__init__()
        if in_features % groups:
            raise ConfigError(f"{in_features} decoder features do not split into {groups} queries")
        self.groups = groups
        bound = (groups / in_features) ** 0.5  # nn.Linear's uniform range for the slice's fan-in
        self.weight = nn.Parameter(torch.empty(groups, in_features // groups).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(groups).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.view(x.shape[0], self.groups, -1) * self.weight).sum(dim=-1) + self.bias


class Classifier(nn.Module):
    """Dropout then a linear map to one logit per class; with ``groups == num_labels`` (one decoder
    query per label, ``model.num_queries``) a :class:`GroupedLinear`, each label from its own query."""

    def __init__(self, in_features: int, num_labels: int, dropout: float, groups: int = 1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        grouped = groups > 1 and groups == num_labels
        self.projection = GroupedLinear(in_features, groups) if grouped else nn.Linear(in_features, num_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.dropout(x))
