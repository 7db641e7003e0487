"""The training loop: epochs, validation, history; every other concern (checkpoints, the weight
average, early stopping, stop signals, trackers) is a hook (:mod:`hybrid.engine.hooks`)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from hybrid.data.loaders import DataModule
from hybrid.engine import distributed
from hybrid.engine.checkpoint import CheckpointHook, CheckpointRecord, CheckpointSaver
from hybrid.engine.early_stopping import EarlyStopping
from hybrid.engine.ema import EmaHook
from hybrid.engine.evaluation import validate
from hybrid.engine.hooks import HookBase
from hybrid.engine.interrupt import InterruptHook
from hybrid.engine.loop import EpochProgress, NonFiniteLossError, StepSettings, train_one_epoch
from hybrid.engine.losses import loss_function
from hybrid.engine.optim import build_optimizer, build_scheduler, evaluation_weights, training_weights
from hybrid.engine.outputs import plot_history, write_history
from hybrid.engine.runtime import Runtime, rng_state, set_rng_state
from hybrid.engine.schema import TrainerSchema
from hybrid.errors import DataError, TrainingInterrupted
from hybrid.metrics import monitor_mode, prefixed
from hybrid.models.structure import module_shapes
from hybrid.util import ranks
from hybrid.util.logs import RankedLogger
from hybrid.util.ranks import rank_zero_only

log = RankedLogger(__name__)

# Figures of the one log line per epoch (the monitored one is added).
EPOCH_LOG_KEYS = ("train/loss", "val/loss", "val/accuracy", "val/f1_macro")


@dataclass
class FitResult:
    """Where training ended up."""

    best_value: float
    best_epoch: int
    history: list[dict]
    images_per_s: float
    skipped: set[str] = field(default_factory=set)  # every image left out, missing ones included
    missing: set[str] = field(default_factory=set)  # those of the training and validation CSVs not found

    @property
    def last_epoch(self) -> int:
        """The last epoch trained (0 if none)."""
        return int(self.history[-1]["epoch"]) if self.history else 0


@dataclass
class FitState:
    """The bookkeeping a resumed run continues from; ``progress``: how far an interruption got in
    epoch ``start``."""

    start: int = 1
    best_value: float | None = None
    best_epoch: int = 0
    history: list[dict] = field(default_factory=list)
    skipped: set[str] = field(default_factory=set)
    progress: EpochProgress | None = None


def default_hooks(settings: TrainerSchema, saver: CheckpointSaver, interrupt: InterruptHook) -> list[HookBase]:
    """The hooks every training has (checkpoints, stop signals) and those its settings ask for
    (``trainer.ema``, ``trainer.early_stopping``)."""
    hooks: list[HookBase] = []
    if settings.ema.decay is not None:
        hooks.append(EmaHook(settings.ema))
    hooks += [CheckpointHook(saver), interrupt]
    if settings.early_stopping.patience is not None:
        hooks.append(EarlyStopping(int(settings.early_stopping.patience)))
    return hooks


class Trainer:
    """Trains ``model`` on ``data`` as ``settings`` (the typed ``trainer`` group) say, keeping
    checkpoints in ``run_dir``; ``config``, the whole resolved config as plain values, is what they
    record (so ``infer.py ckpt_path=...`` needs nothing else).

    ``hooks`` (e.g. a tracker's) come after the default ones (:func:`default_hooks`);
    ``tracker_run_id`` is stored in the checkpoints so a resumed run continues its tracker run.
    While :meth:`fit` runs, the hooks read its state here: ``model``, ``optimizer``, ``val_loader``,
    ``criterion``, ``state`` (:class:`FitState`), ``monitor_key`` (the row's figure that picks the
    best epoch) and ``best_weights`` (what ``best.pt`` serves; ``None``: the model's).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        data: DataModule,
        runtime: Runtime,
        run_dir: Path,
        *,
        settings: TrainerSchema,
        config: dict,
        hooks: Sequence[HookBase] = (),
        tracker_run_id: str | None = None,
    ):
        self.config = config
        self.settings = settings
        self.model = model
        self.data = data
        self.runtime = runtime
        self.run_dir = run_dir
        self.saver = CheckpointSaver(run_dir)
        self.tracker_run_id = tracker_run_id
        self.monitor = str(settings.monitor)
        self.monitor_key = self.monitor
        self.best_weights = None
        self.mode = monitor_mode(self.monitor)
        self.max_epochs = int(settings.max_epochs)
        self.progress = bool(settings.progress_bar) and ranks.is_rank_zero()
        # float16's gradient scaler (checkpointed so a resumed run keeps its loss scale); a
        # pass-through otherwise.
        self.scaler = torch.amp.GradScaler(runtime.device.type, enabled=runtime.precision == "16")
        self.accumulate = int(settings.accumulate_grad_batches)
        self.interrupt = InterruptHook()
        self.hooks = [*default_hooks(settings, self.saver, self.interrupt), *hooks]
        for hook in self.hooks:
            hook.trainer = self
        self.state = FitState()

    def _improved(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        return value > best if self.mode == "max" else value < best

    def _wrap(self) -> torch.nn.Module:
        """The module the training steps run: the model itself, or under DDP the model wrapped in
        :class:`~torch.nn.parallel.DistributedDataParallel` (SyncBatchNorm on CUDA when
        ``trainer.sync_batchnorm``; on CPU/gloo DDP broadcasts rank 0's batch-norm buffers instead)."""
        if not ranks.is_initialized():
            return self.model
        device = self.runtime.device
        if device.type == "cuda" and self.settings.sync_batchnorm:
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
            log.info("SyncBatchNorm: batch-norm statistics over the global batch of %d processes", ranks.world_size())
        return torch.nn.parallel.DistributedDataParallel(
            self.model,
            device_ids=[device.index] if device.type == "cuda" else None,
            # DDP's default syncs buffers from rank 0 at every forward (torch 2.14 deprecates naming it).
            find_unused_parameters=bool(self.settings.find_unused_parameters),
        )

    def _record(self, epoch: int, rng: list) -> CheckpointRecord:
        """Everything a resumed run needs; ``epoch`` is the last *completed* epoch."""
        state = self.state
        hook_states = {hook.checkpoint_key: hook.state_dict() for hook in self.hooks if hook.checkpoint_key}
        return CheckpointRecord(
            config=self.config,
            class_names=list(self.data.spec.class_names),
            task=self.data.spec.task,
            negative_class=self.data.spec.negative_class,
            model=self.model.state_dict(),
            epoch=epoch,
            monitor=self.monitor,
            best_value=state.best_value,
            best_epoch=state.best_epoch,
            history=state.history,
            skipped_images=sorted(state.skipped),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            scaler=self.scaler.state_dict() if self.scaler.is_enabled() else None,
            rng=rng,
            world_size=ranks.world_size(),
            tracker_run_id=self.tracker_run_id,
            structure=module_shapes(self.model),
            **hook_states,
        )

    def _restore(self, resume: CheckpointRecord) -> FitState:
        """Load a checkpoint's training state; returns the bookkeeping to continue from."""
        self.optimizer.load_state_dict(resume.optimizer)
        training_weights(self.optimizer)  # schedule-free: saved with the evaluation weights
        self.scheduler.load_state_dict(resume.scheduler)
        for hook in self.hooks:
            if hook.checkpoint_key and getattr(resume, hook.checkpoint_key) is not None:
                hook.load_state_dict(getattr(resume, hook.checkpoint_key))
        if self.scaler.is_enabled() and resume.scaler is not None:
            self.scaler.load_state_dict(resume.scaler)
        rng = resume.rng or []
        same_world = len(rng) == ranks.world_size()
        if same_world:  # another world size: keep the fresh seeds
            set_rng_state(rng[ranks.rank()])
        state = FitState(
            resume.epoch + 1, resume.best_value, resume.best_epoch, list(resume.history), set(resume.skipped_images)
        )
        if resume.interrupted_epoch is not None and resume.epoch_progress and same_world:
            state.progress = EpochProgress(**resume.epoch_progress[ranks.rank()])
            log.info("epoch %d was interrupted after step %d: continuing from there",
                     resume.interrupted_epoch, resume.interrupted_step)  # fmt: skip
        elif resume.interrupted_epoch is not None:
            log.info("epoch %d was interrupted: running it again from its start (another number of processes)",
                     resume.interrupted_epoch)  # fmt: skip
        log.info("resuming after epoch %d (best %s=%s)", resume.epoch, self.monitor, resume.best_value)
        return state

    def _interrupted(self, epoch: int, steps: int, record: CheckpointRecord) -> TrainingInterrupted:
        """Every hook hears of the interruption (the checkpoint hook writes a mid-epoch ``last.pt``);
        the error names that file (the app adds the resume command)."""
        for hook in self.hooks:
            hook.after_interrupt(record, epoch=epoch, step=steps)
        ranks.barrier()
        last = self.saver.last.resolve()
        return TrainingInterrupted(
            f"{self.interrupt.signal_name}: stopped in epoch {epoch} after step {steps}; saved {last} "
            f"(resuming continues epoch {epoch} from step {steps + 1}).",
            self.interrupt.exit_code,
            checkpoint=last,
        )

    def fit(self, resume: CheckpointRecord | None = None) -> FitResult:
        """Run ``trainer.max_epochs`` epochs (continuing after ``resume``'s epoch if given).

        SIGTERM / SIGINT end the current step, write ``last.pt`` and raise
        :class:`~hybrid.errors.TrainingInterrupted`; a NaN loss raises, keeping the last checkpoint.
        """
        train_set, val_set = self.data.dataset("train"), self.data.dataset("val")
        if len(train_set) == 0 or len(val_set) == 0:
            raise DataError(f"no usable images: {len(train_set)} for training, {len(val_set)} for validation")
        self.criterion = loss_function(self.data.spec, self.settings, train_set.targets).to(self.runtime.device)
        train_loader, self.val_loader = self.data.loader("train", train_set), self.data.loader("val", val_set)
        if resume is not None:
            resume.load_weights_into(self.model, self.config["ckpt_path"])
        train_model = self._wrap()
        step = StepSettings(self.accumulate, self.settings.grad_clip, self.scaler, self.data.mixer)
        steps_per_epoch = math.ceil(len(train_loader) / self.accumulate)  # optimizer (and schedule) steps
        self.optimizer = build_optimizer(self.model, self.settings, steps_per_epoch)
        self.scheduler = build_scheduler(self.optimizer, self.settings, steps_per_epoch)
        try:
            # Before the first loader iteration, so DataLoader workers inherit the signal handlers too.
            for hook in self.hooks:
                hook.before_fit()
            self.state = state = self._restore(resume) if resume is not None else FitState()
            missing = set(train_set.missing) | set(val_set.missing)
            state.skipped |= missing
            speeds = []
            for epoch in range(state.start, self.max_epochs + 1):
                train_loader.sampler.set_epoch(epoch)  # the shuffle depends on (seed, epoch) only
                start, state.progress = state.progress, None
                if start is not None:  # the batches of this epoch not trained on before the interruption
                    train_loader.sampler.skip_first(start.steps * int(self.data.settings.batch_size))
                log.info("epoch %d/%d: %d steps per process", epoch, self.max_epochs, len(train_loader))
                try:
                    result = train_one_epoch(
                        train_model, train_loader, self.optimizer, self.scheduler, self.criterion, self.runtime,
                        step=step, hooks=self.hooks, desc=f"epoch {epoch}/{self.max_epochs} train",
                        progress=self.progress, start=start,
                    )  # fmt: skip
                except NonFiniteLossError as err:
                    last = self.saver.last
                    kept = f"the last good checkpoint {last} is kept" if last.is_file() else "no checkpoint written"
                    raise NonFiniteLossError(f"epoch {epoch}: {err}; {kept}; try a lower trainer.lr") from err
                state.skipped.update(*ranks.all_gather_objects(result.skipped))
                if result.interrupted:  # everything as of this step, so a resumed run continues right here
                    record = self._record(epoch - 1, ranks.all_gather_objects(rng_state()))
                    record.epoch_progress = ranks.all_gather_objects(dataclasses.asdict(result.progress))
                    raise self._interrupted(epoch, result.steps, record)
                speeds.append(result.images_per_s)
                self._end_epoch(epoch, result)
                if any(hook.wants_to_stop(epoch) for hook in self.hooks):
                    break
        finally:
            for hook in self.hooks:
                hook.after_fit()
        ranks.barrier()  # best.pt is on disk before any rank reads it
        mean_speed = sum(speeds) / len(speeds) if speeds else 0.0
        return FitResult(state.best_value, state.best_epoch, state.history, mean_speed, state.skipped, missing)

    @rank_zero_only
    def _write_history(self, history: list[dict]) -> None:
        write_history(self.run_dir / "history.csv", history)
        plot_history(self.run_dir / "training_curves.png", history, self.monitor)

    def _end_epoch(self, epoch: int, result) -> None:
        """Validate (the hooks may add figures), pick the best epoch, hand the hooks its checkpoint
        record (best.pt before last.pt), write history.csv, then tell the hooks the epoch ended."""
        state = self.state
        distributed.broadcast_buffers(self.model)  # one set of batch-norm statistics for evaluation
        with evaluation_weights(self.optimizer):  # schedule-free: evaluate and save the averaged weights
            val = validate(
                self.model, self.val_loader, self.data.spec, self.runtime, criterion=self.criterion,
                desc=f"epoch {epoch} val", progress=self.progress,
            )  # fmt: skip
            state.skipped.update(val.predictions.skipped)
            row = {
                "epoch": epoch,
                "train/loss": result.loss,
                "train/images_per_s": result.images_per_s,
                "lr": self.optimizer.param_groups[0]["lr"],
                **prefixed(val.metrics, "val"),
            }
            for hook in self.hooks:
                hook.after_validation(epoch, row)
            state.history.append(row)
            value = row[self.monitor_key]
            improved = self._improved(value, state.best_value)
            if improved:
                state.best_value, state.best_epoch = value, epoch
            record = self._record(epoch, ranks.all_gather_objects(rng_state()))
            for hook in self.hooks:
                hook.after_record(record, improved=improved)
        self._write_history(state.history)
        for hook in self.hooks:
            hook.after_epoch(epoch, row, improved=improved)
        shown = dict.fromkeys([*EPOCH_LOG_KEYS, self.monitor, *(key for hook in self.hooks for key in hook.log_keys)])
        log.info(
            "epoch %d/%d  %s%s  (%.1f img/s)",
            epoch, self.max_epochs, "  ".join(f"{k} {row[k]:.4f}" for k in shown),
            "  *best*" if improved else "", result.images_per_s,
        )  # fmt: skip
