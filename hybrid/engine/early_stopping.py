"""Early stopping (``trainer.early_stopping.patience``) as a hook: training ends once the monitored
metric has not improved for ``patience`` epochs."""

from __future__ import annotations

from hybrid.engine.hooks import HookBase
from hybrid.util.logs import RankedLogger

log = RankedLogger(__name__)


class EarlyStopping(HookBase):
    """Stops training after the epoch that is ``patience`` epochs past the best one (never after
    the last epoch, which ends training anyway)."""

    def __init__(self, patience: int):
        self.patience = patience

    def wants_to_stop(self, epoch: int) -> bool:
        trainer = self.trainer
        state = trainer.state
        if epoch - state.best_epoch < self.patience or epoch >= trainer.max_epochs:
            return False
        log.info(
            "early stopping after epoch %d: %s has not improved for %d epochs (best %.4f at epoch %d)",
            epoch, trainer.monitor, epoch - state.best_epoch, state.best_value, state.best_epoch,
        )  # fmt: skip
        return True
