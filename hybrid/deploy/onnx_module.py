"""The training stack's view of an exported model: :class:`OnnxClassifier` wraps a runtime session
(:mod:`hybrid.serve.runtimes`) as a ``torch.nn.Module`` meeting
:class:`~hybrid.models.contract.ClassifierModel`, so the engine's prediction loop serves it like
any model.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hybrid.errors import DataError
from hybrid.serve.model import Model


class OnnxClassifier(nn.Module):
    """An exported model served by a runtime (a :class:`~hybrid.serve.model.Model`), as a module:
    normalized float ``images`` of the card's shape in, ``logits`` out (on the images' device)."""

    def __init__(self, served: Model):
        super().__init__()
        self.served = served
        self.session = served.session
        self.card = card = served.card
        self.source = served.path
        self.num_labels = len(card.class_names)
        self.input_shape = (card.in_channels, card.img_size, card.img_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if tuple(images.shape[1:]) != self.input_shape:
            raise DataError(
                f"ckpt_path={self.source} takes images of {'x'.join(map(str, self.input_shape))}, "
                f"got {'x'.join(map(str, images.shape[1:]))}"
            )
        batch = np.ascontiguousarray(images.detach().to("cpu", torch.float32).numpy())
        return torch.from_numpy(self.session(batch)).to(images.device)

    def parameter_groups(self) -> dict[str, nn.Module | nn.Parameter]:
        """None: the weights live in the runtime (the card records the source model's count)."""
        return {}
