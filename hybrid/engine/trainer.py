"""The training loop: epochs, validation, best / last checkpoints, history."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from hybrid.cli import resume_command
from hybrid.data.loaders import DataModule
from hybrid.engine import distributed
from hybrid.engine.checkpoint import load_model_weights, save_checkpoint
from hybrid.engine.evaluation import evaluate
from hybrid.engine.interrupt import GracefulInterrupt
from hybrid.engine.loop import NonFiniteLossError, loss_function, train_one_epoch
from hybrid.engine.optim import build_optimizer, build_scheduler
from hybrid.engine.outputs import plot_history, write_history
from hybrid.engine.runtime import Runtime, rng_state, set_rng_state
from hybrid.errors import DataError, TrainingInterrupted
from hybrid.metrics import monitor_mode, prefixed
from hybrid.tracking import Tracker
from hybrid.tracking.media import attention_overlays

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    """Where training ended up."""

    best_value: float
    best_epoch: int
    history: list[dict]
    images_per_s: float
    skipped: set[str] = field(default_factory=set)

    @property
    def last_epoch(self) -> int:
        """The last epoch trained (0 if none)."""
        return int(self.history[-1]["epoch"]) if self.history else 0


class Trainer:
    """Trains ``model`` on ``data`` as ``cfg.trainer`` says, keeping checkpoints in ``run_dir``."""

    def __init__(
        self,
        cfg: DictConfig,
        model: torch.nn.Module,
        data: DataModule,
        runtime: Runtime,
        tracker: Tracker,
        run_dir: Path,
    ):
        self.cfg = cfg
        self.trainer_cfg = cfg.trainer
        self.model = model
        self.data = data
        self.runtime = runtime
        self.tracker = tracker
        self.run_dir = run_dir
        self.ckpt_dir = run_dir / "checkpoints"
        self.monitor = str(cfg.trainer.monitor)
        self.mode = monitor_mode(self.monitor)
        # fp16's gradient scaler (checkpointed so a resumed run keeps its loss scale); None otherwise
        self.scaler = runtime.scaler if runtime.scaler.is_enabled() else None

    def _improved(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        return value > best if self.mode == "max" else value < best

    def _wrap(self) -> torch.nn.Module:
        """The module the training steps run: the model itself, or under DDP the model wrapped in
        :class:`~torch.nn.parallel.DistributedDataParallel` (SyncBatchNorm on CUDA when
        ``trainer.sync_batchnorm``; on CPU/gloo DDP broadcasts rank 0's batch-norm buffers instead)."""
        if not distributed.is_initialized():
            return self.model
        device = self.runtime.device
        if device.type == "cuda" and self.trainer_cfg.sync_batchnorm:
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        return torch.nn.parallel.DistributedDataParallel(
            self.model,
            device_ids=[device.index] if device.type == "cuda" else None,
            # DDP's default syncs buffers from rank 0 at every forward (torch 2.14 deprecates naming it).
            find_unused_parameters=bool(self.trainer_cfg.find_unused_parameters),
        )

    def _payload(self, epoch: int, state: dict, optimizer, scheduler, rng: list) -> dict:
        """Everything a resumed run needs; ``epoch`` is the last *completed* epoch."""
        payload = {
            "config": OmegaConf.to_container(self.cfg, resolve=True),
            "class_names": list(self.data.spec.class_names),
            "task": self.data.spec.task,
            "model": self.model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "epoch": epoch,
            "monitor": self.monitor,
            "best_value": state["best_value"],
            "best_epoch": state["best_epoch"],
            "history": state["history"],
            "skipped_images": sorted(state["skipped"]),
            "rng": rng,  # one entry per rank
            "world_size": distributed.world_size(),
        }
        if self.scaler is not None:
            payload["scaler"] = self.scaler.state_dict()
        if self.tracker.run_id is not None:
            payload["wandb_run_id"] = self.tracker.run_id
        return payload

    def _restore(self, resume: dict, optimizer, scheduler) -> dict:
        """Load a checkpoint's training state; returns the bookkeeping ``state`` to continue from."""
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        if self.scaler is not None and "scaler" in resume:
            self.scaler.load_state_dict(resume["scaler"])
        rng = resume.get("rng") or []
        if len(rng) == distributed.world_size():  # another world size: keep the fresh seeds
            set_rng_state(rng[distributed.rank()])
        state = {
            "start": resume["epoch"] + 1,
            "best_value": resume["best_value"],
            "best_epoch": resume["best_epoch"],
            "history": list(resume["history"]),
            "skipped": set(resume.get("skipped_images", [])),
        }
        if "interrupted_epoch" in resume:
            log.info("epoch %d was interrupted at step %d: running it again from its start",
                     resume["interrupted_epoch"], resume["interrupted_step"])  # fmt: skip
        best = state["best_value"]
        log.info("resuming after epoch %d (best %s=%s)", resume["epoch"], self.monitor, best)
        return state

    def _save(self, name: str, payload: dict) -> None:
        """Rank 0 writes checkpoints; the others have the same weights."""
        if distributed.is_rank_zero():
            save_checkpoint(self.ckpt_dir / name, payload)

    def _interrupted(self, signal_name: str, exit_code: int, epoch: int, steps: int, payload: dict):
        """Write a mid-epoch ``last.pt`` and stop with the command that resumes the run."""
        last = self.ckpt_dir / "last.pt"
        self._save("last.pt", {**payload, "interrupted_epoch": epoch, "interrupted_step": steps})
        distributed.barrier()
        return TrainingInterrupted(
            f"{signal_name}: stopped in epoch {epoch} after step {steps}; saved {last.resolve()} "
            f"(resuming runs epoch {epoch} again from its start). Resume with: {resume_command(last)}",
            exit_code,
        )

    def fit(self, resume: dict | None = None) -> FitResult:
        """Run ``trainer.max_epochs`` epochs (continuing after ``resume``'s epoch if given).

        SIGTERM / SIGINT end the current step, write ``last.pt`` and raise
        :class:`~hybrid.errors.TrainingInterrupted`; a NaN loss raises, keeping the last checkpoint.
        """
        train_set, val_set = self.data.dataset("train"), self.data.dataset("val")
        if len(train_set) == 0 or len(val_set) == 0:
            raise DataError(f"no usable images: {len(train_set)} for training, {len(val_set)} for validation")
        self.criterion = loss_function(
            self.data.spec,
            self.trainer_cfg.class_weighting,
            train_set.targets,
            float(self.trainer_cfg.effective_number_beta),
        ).to(self.runtime.device)
        train_loader, val_loader = self.data.loader("train", train_set), self.data.loader("val", val_set)
        if resume is not None:
            load_model_weights(self.model, resume, self.cfg.ckpt_path)
        train_model = self._wrap()
        optimizer = build_optimizer(self.model, self.trainer_cfg)
        scheduler = build_scheduler(optimizer, self.trainer_cfg, len(train_loader))
        state = {"start": 1, "best_value": None, "best_epoch": 0, "history": [], "skipped": set()}
        if resume is not None:
            state = self._restore(resume, optimizer, scheduler)
        state["skipped"] |= set(train_set.missing) | set(val_set.missing)
        max_epochs = int(self.trainer_cfg.max_epochs)
        speeds = []
        # Installed before the first loader iteration, so DataLoader workers inherit it too.
        with GracefulInterrupt() as interrupt:
            for epoch in range(state["start"], max_epochs + 1):
                if hasattr(train_loader.sampler, "set_epoch"):
                    train_loader.sampler.set_epoch(epoch)  # the shuffle depends on (seed, epoch) only
                rng_before = distributed.all_gather_objects(rng_state())
                log.info("epoch %d/%d: %d steps per process", epoch, max_epochs, len(train_loader))
                try:
                    result = train_one_epoch(
                        train_model, train_loader, optimizer, scheduler, self.criterion, self.runtime,
                        self.trainer_cfg.grad_clip, f"epoch {epoch}/{max_epochs} train", interrupt.requested,
                    )  # fmt: skip
                except NonFiniteLossError as err:
                    last = self.ckpt_dir / "last.pt"
                    kept = f"the last good checkpoint {last} is kept" if last.is_file() else "no checkpoint written"
                    raise NonFiniteLossError(f"epoch {epoch}: {err}; {kept}; try a lower trainer.lr") from err
                state["skipped"].update(*distributed.all_gather_objects(result.skipped))
                if result.interrupted:
                    payload = self._payload(epoch - 1, state, optimizer, scheduler, rng_before)
                    raise self._interrupted(interrupt.signal_name, interrupt.exit_code, epoch, result.steps, payload)
                speeds.append(result.images_per_s)
                self._end_epoch(epoch, max_epochs, result, val_loader, optimizer, scheduler, state)
        distributed.barrier()  # best.pt is on disk before any rank reads it
        mean_speed = sum(speeds) / len(speeds) if speeds else 0.0
        return FitResult(state["best_value"], state["best_epoch"], state["history"], mean_speed, state["skipped"])

    def _log_attention(self, epoch: int, val_set) -> None:
        """Attention overlays on a fixed handful of validation images, every few epochs (the
        tracker of rank 0 only wants them)."""
        every, count = self.tracker.attention_every_n_epochs, self.tracker.attention_images
        if not self.tracker.wants_media or every <= 0 or count <= 0 or epoch % every:
            return
        indices = np.unique(np.linspace(0, len(val_set) - 1, count).round().astype(int))
        overlays = attention_overlays(
            self.model, val_set, indices, self.data.spec, self.runtime, self.tracker.max_image_side
        )
        self.tracker.log_images("val/attention", overlays, step=epoch)

    def _end_epoch(self, epoch, max_epochs, result, val_loader, optimizer, scheduler, state) -> None:
        """Validate, then (rank 0) write best.pt before last.pt, history.csv and the tracker's row."""
        distributed.broadcast_buffers(self.model)  # one set of batch-norm statistics for evaluation
        val = evaluate(self.model, val_loader, self.data.spec, self.runtime, True, self.criterion, f"epoch {epoch} val")
        state["skipped"].update(val.predictions.skipped)
        row = {
            "epoch": epoch,
            "train/loss": result.loss,
            "train/images_per_s": result.images_per_s,
            "lr": optimizer.param_groups[0]["lr"],
            **prefixed(val.metrics, "val"),
        }
        state["history"].append(row)
        value = row[self.monitor]
        improved = self._improved(value, state["best_value"])
        if improved:
            state["best_value"], state["best_epoch"] = value, epoch
        payload = self._payload(epoch, state, optimizer, scheduler, distributed.all_gather_objects(rng_state()))
        # best.pt first: a crash between the two writes then never leaves last.pt claiming a best.pt
        # that was not written.
        if improved:
            self._save("best.pt", payload)
        self._save("last.pt", payload)
        if distributed.is_rank_zero():
            write_history(self.run_dir / "history.csv", state["history"])
            plot_history(self.run_dir / "training_curves.png", state["history"], self.monitor)
        self._log_attention(epoch, val_loader.dataset)
        self.tracker.log_metrics({**row, f"{self.monitor}_best": state["best_value"]}, step=epoch)
        shown = dict.fromkeys(["train/loss", "val/loss", "val/accuracy", "val/f1_macro", self.monitor])
        log.info(
            "epoch %d/%d  %s%s  (%.1f img/s)",
            epoch, max_epochs, "  ".join(f"{k} {row[k]:.4f}" for k in shown),
            "  *best*" if improved else "", result.images_per_s,
        )  # fmt: skip
