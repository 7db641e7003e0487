"""Weight EMA (``trainer.ema``): an exponential moving average of the weights, validated and
checkpointed beside them (:class:`EmaHook`, the engine's hook).

torch's :class:`~torch.optim.swa_utils.AveragedModel` keeps the average (buffers, such as
batch-norm statistics, averaged too); the decay warms up as ``min(decay, (1 + n) / (10 + n))``
after ``n`` updates, as timm's EMA does, so early averages are not dominated by the random start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from hybrid.engine.evaluation import validate
from hybrid.engine.hooks import HookBase
from hybrid.errors import ConfigError
from hybrid.metrics import prefixed

if TYPE_CHECKING:  # the schema module checks trainer.ema with this one's rules
    from hybrid.engine.schema import EmaSchema

# trainer.ema.best: the weights the monitored metric and best.pt come from
EMA_BEST = ("ema", "raw")


def check_ema_best(best: str) -> str:
    """``trainer.ema.best``: one of :data:`EMA_BEST`."""
    if best not in EMA_BEST:
        raise ConfigError(f"trainer.ema.best={best!r}; choose one of {list(EMA_BEST)}")
    return best


def check_ema(decay) -> float | None:
    """``trainer.ema.decay``: null (off) or a number in (0, 1)."""
    if decay is None:
        return None
    if not 0 < float(decay) < 1:
        raise ConfigError(f"trainer.ema.decay={decay}: must be in (0, 1), e.g. 0.999, or null")
    return float(decay)


class WeightAverage:
    """The EMA of ``model``'s weights; :meth:`update` after every optimizer step."""

    def __init__(self, model: nn.Module, decay: float, *, warmup: bool = True):
        self.decay = check_ema(decay)
        self.warmup = warmup

        def average(averaged: torch.Tensor, current: torch.Tensor, updates: torch.Tensor) -> torch.Tensor:
            rate = self.rate(int(updates))
            return averaged * rate + current * (1 - rate)

        self.model = AveragedModel(model, avg_fn=average, use_buffers=True)
        self.source = model

    def rate(self, updates: int) -> float:
        """The decay of the update after ``updates`` earlier ones."""
        return min(self.decay, (1 + updates) / (10 + updates)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the current weights."""
        self.model.update_parameters(self.source)

    @property
    def module(self) -> nn.Module:
        """The averaged network (a copy of the model's architecture), for evaluation and saving."""
        return self.model.module

    def state_dict(self) -> dict:
        """The averaged weights and the update count: all a resumed run needs."""
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        self.model.load_state_dict(state)


class EmaHook(HookBase):
    """``trainer.ema`` as a hook: the weight average (:class:`WeightAverage`) is made when fitting
    starts, follows every optimizer step, is validated beside the weights (``val/ema/*`` in each
    row) and kept in the checkpoints (``CheckpointRecord.ema``); with ``trainer.ema.best=ema`` its
    figure picks the best epoch and ``best.pt`` serves its weights."""

    checkpoint_key = "ema"

    def __init__(self, settings: EmaSchema):
        self.settings = settings
        self.average: WeightAverage | None = None

    def before_fit(self) -> None:
        trainer = self.trainer
        self.average = WeightAverage(trainer.model, self.settings.decay, warmup=bool(self.settings.warmup))
        averaged_monitor = trainer.monitor.replace("val/", "val/ema/", 1)
        self.log_keys = (averaged_monitor,)
        if self.settings.best == "ema":
            trainer.monitor_key = averaged_monitor
            trainer.best_weights = self.average.module.state_dict

    def after_step(self) -> None:
        self.average.update()

    def after_validation(self, epoch: int, row: dict) -> None:
        trainer = self.trainer
        averaged = validate(
            self.average.module, trainer.val_loader, trainer.data.spec, trainer.runtime, criterion=trainer.criterion,
            desc=f"epoch {epoch} val (EMA)", progress=trainer.progress,
        )  # fmt: skip
        row.update(prefixed(averaged.metrics, "val/ema"))

    def state_dict(self) -> dict:
        return self.average.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.average.load_state_dict(state)
