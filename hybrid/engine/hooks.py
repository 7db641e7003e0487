"""The engine's hooks: every concern of training that is not the loop itself (checkpoints, the weight
average, early stopping, stop signals, trackers) is a :class:`HookBase` that :class:`~hybrid.engine
.trainer.Trainer` tells of each stage of :meth:`~hybrid.engine.trainer.Trainer.fit`, as
detectron2's hooks are told. Hooks run in their list's order at every stage; layers above the engine
(a tracker) add their own without the engine knowing them.

Stages: :meth:`~HookBase.before_fit` (optimizer and schedule built, before a checkpoint's state is
restored), :meth:`~HookBase.after_step` (each optimizer step; :meth:`~HookBase.stop_requested` is
asked then), :meth:`~HookBase.after_validation` (the epoch's row, before it is recorded),
:meth:`~HookBase.after_record` (the epoch's checkpoint record), :meth:`~HookBase.after_epoch`
(the row recorded, the checkpoints written; :meth:`~HookBase.wants_to_stop` is asked then),
:meth:`~HookBase.after_interrupt` (a stop signal ended the epoch), :meth:`~HookBase.after_fit`
(always, even when training raised); and :meth:`~HookBase.state_dict`, what a checkpoint keeps of
a hook (in its record's ``checkpoint_key`` field).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hybrid.engine.checkpoint import CheckpointRecord
    from hybrid.engine.trainer import Trainer


class HookBase:
    """One concern of training; every stage is a no-op here. ``trainer`` is set when the
    :class:`~hybrid.engine.trainer.Trainer` takes the hook."""

    trainer: Trainer
    checkpoint_key: str | None = None  # the CheckpointRecord field holding state_dict(); None: none
    log_keys: tuple[str, ...] = ()  # figures of the row this hook adds to the epoch's log line

    def before_fit(self) -> None:
        """Once, when the optimizer and schedule exist, before a resumed run's state is restored."""

    def after_step(self) -> None:
        """After every optimizer step."""

    def stop_requested(self) -> bool:
        """Asked after every optimizer step: whether the epoch must end now (a stop signal)."""
        return False

    def after_validation(self, epoch: int, row: dict) -> None:
        """After ``epoch``'s validation: ``row`` (``train/*``, ``val/*``, ``lr``) may gain figures
        (the weight average's own ``val/ema/*``) before the best epoch is decided on it."""

    def after_record(self, record: CheckpointRecord, *, improved: bool) -> None:
        """``record`` holds everything of the epoch just validated (still under the evaluation
        weights); ``improved``: the monitored value is the best so far. The checkpoint hook writes it."""

    def after_interrupt(self, record: CheckpointRecord, *, epoch: int, step: int) -> None:
        """A stop signal ended ``epoch`` after ``step`` batches; ``record`` holds everything so far."""

    def after_epoch(self, epoch: int, row: dict, *, improved: bool) -> None:
        """After ``epoch``'s row is recorded (``history.csv``) and the checkpoints are written;
        ``improved``: the monitored value is the best so far."""

    def wants_to_stop(self, epoch: int) -> bool:
        """Asked after every epoch: whether training should end before ``trainer.max_epochs``."""
        return False

    def after_fit(self) -> None:
        """Once, when fitting ends, however it ends."""

    def state_dict(self) -> dict | None:
        """What a checkpoint keeps of this hook (``None``: nothing)."""
        return None

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` from a resumed run's checkpoint."""
