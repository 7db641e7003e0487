"""The tracker as a training hook: each epoch's row and, now and then, attention overlays."""

from __future__ import annotations

import numpy as np
from torch import nn

from hybrid.data.device_loader import DeviceLoader
from hybrid.data.labels import LabelSpec
from hybrid.engine.hooks import HookBase
from hybrid.engine.runtime import Runtime
from hybrid.tracking.base import Tracker
from hybrid.tracking.media import attention_overlays


class TrackerHook(HookBase):
    """Sends every epoch's metrics (and the best monitored value) to ``tracker``, and every
    ``attention_every_n_epochs`` the attention of the model over a fixed handful of validation
    images, when the tracker wants media."""

    def __init__(self, tracker: Tracker, spec: LabelSpec, runtime: Runtime, monitor: str):
        self.tracker = tracker
        self.spec = spec
        self.runtime = runtime
        self.monitor = monitor

    def after_epoch(self, epoch: int, row: dict, *, improved: bool) -> None:
        trainer = self.trainer
        self._log_attention(epoch, trainer.model, trainer.val_loader)
        self.tracker.log_metrics({**row, f"{self.monitor}_best": trainer.state.best_value}, step=epoch)

    def _log_attention(self, epoch: int, model: nn.Module, val_loader: DeviceLoader) -> None:
        every, count = self.tracker.attention_every_n_epochs, self.tracker.attention_images
        if not self.tracker.wants_media or every <= 0 or count <= 0 or epoch % every:
            return
        indices = np.unique(np.linspace(0, len(val_loader.dataset) - 1, count).round().astype(int))
        overlays = attention_overlays(model, val_loader, indices, self.spec, self.runtime, self.tracker.max_image_side)
        self.tracker.log_images("val/attention", overlays, step=epoch)
