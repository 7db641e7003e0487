"""Hooks through which layers above the engine (trackers, reports) follow training without the
engine knowing them, as Lightning's callbacks do."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from torch import nn


class Callback:
    """What the :class:`~hybrid.engine.trainer.Trainer` tells whoever listens. Every hook is a no-op here."""

    def on_epoch_end(
        self, epoch: int, row: Mapping, best_value: float | None, model: nn.Module, val_loader: Iterable[dict]
    ) -> None:
        """After validation and checkpointing of ``epoch``: its ``history.csv`` row (``train/*``,
        ``val/*``, ``lr``), the best monitored value so far, the model and the validation loader."""
