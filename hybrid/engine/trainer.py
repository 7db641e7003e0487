"""The training loop: epochs, validation, best / last checkpoints, history."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from hybrid.data.loaders import DataModule
from hybrid.engine.checkpoint import load_model_weights, save_checkpoint
from hybrid.engine.evaluation import evaluate
from hybrid.engine.loop import loss_function, train_one_epoch
from hybrid.engine.optim import build_optimizer, build_scheduler
from hybrid.engine.outputs import plot_history, write_history
from hybrid.engine.runtime import Runtime
from hybrid.errors import DataError
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

    def _improved(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        return value > best if self.mode == "max" else value < best

    def _payload(self, epoch: int, best_value, best_epoch, history, optimizer, scheduler) -> dict:
        return {
            "config": OmegaConf.to_container(self.cfg, resolve=True),
            "class_names": list(self.data.spec.class_names),
            "task": self.data.spec.task,
            "model": self.model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "epoch": epoch,
            "monitor": self.monitor,
            "best_value": best_value,
            "best_epoch": best_epoch,
            "history": history,
            "wandb_run_id": self.tracker.run_id,
        }

    def _log_attention(self, epoch: int, val_set) -> None:
        """Attention overlays on a fixed handful of validation images, every few epochs."""
        every, count = self.tracker.attention_every_n_epochs, self.tracker.attention_images
        if not self.tracker.wants_media or every <= 0 or count <= 0 or epoch % every:
            return
        indices = np.unique(np.linspace(0, len(val_set) - 1, count).round().astype(int))
        overlays = attention_overlays(
            self.model, val_set, indices, self.data.spec, self.runtime, self.tracker.max_image_side
        )
        self.tracker.log_images("val/attention", overlays, step=epoch)

    def fit(self, resume: dict | None = None) -> FitResult:
        """Run ``trainer.max_epochs`` epochs (continuing after ``resume``'s epoch if given)."""
        train_set, val_set = self.data.dataset("train"), self.data.dataset("val")
        if len(train_set) == 0 or len(val_set) == 0:
            raise DataError(f"no usable images: {len(train_set)} for training, {len(val_set)} for validation")
        skipped = set(train_set.missing) | set(val_set.missing)
        self.criterion = loss_function(
            self.data.spec,
            self.trainer_cfg.class_weighting,
            train_set.targets,
            float(self.trainer_cfg.effective_number_beta),
        ).to(self.runtime.device)
        train_loader, val_loader = self.data.loader("train", train_set), self.data.loader("val", val_set)
        optimizer = build_optimizer(self.model, self.trainer_cfg)
        scheduler = build_scheduler(optimizer, self.trainer_cfg, len(train_loader))
        start, best_value, best_epoch, history = 1, None, 0, []
        if resume is not None:
            load_model_weights(self.model, resume, self.cfg.ckpt_path)
            optimizer.load_state_dict(resume["optimizer"])
            scheduler.load_state_dict(resume["scheduler"])
            start, best_value = resume["epoch"] + 1, resume["best_value"]
            best_epoch, history = resume["best_epoch"], list(resume["history"])
            log.info("resuming after epoch %d (best %s=%.4f)", resume["epoch"], self.monitor, best_value)
        max_epochs = int(self.trainer_cfg.max_epochs)
        speeds = []
        for epoch in range(start, max_epochs + 1):
            result = train_one_epoch(
                self.model, train_loader, optimizer, scheduler, self.criterion, self.runtime,
                self.trainer_cfg.grad_clip, f"epoch {epoch}/{max_epochs} train",
            )  # fmt: skip
            skipped.update(result.skipped)
            speeds.append(result.images_per_s)
            val = evaluate(
                self.model, val_loader, self.data.spec, self.runtime, True, self.criterion, f"epoch {epoch} val"
            )
            skipped.update(val.predictions.skipped)
            row = {
                "epoch": epoch,
                "train/loss": result.loss,
                "train/images_per_s": result.images_per_s,
                "lr": optimizer.param_groups[0]["lr"],
                **prefixed(val.metrics, "val"),
            }
            history.append(row)
            value = row[self.monitor]
            improved = self._improved(value, best_value)
            if improved:
                best_value, best_epoch = value, epoch
            payload = self._payload(epoch, best_value, best_epoch, history, optimizer, scheduler)
            save_checkpoint(self.ckpt_dir / "last.pt", payload)
            if improved:
                save_checkpoint(self.ckpt_dir / "best.pt", payload)
            write_history(self.run_dir / "history.csv", history)
            plot_history(self.run_dir / "training_curves.png", history, self.monitor)
            self._log_attention(epoch, val_set)
            self.tracker.log_metrics({**row, f"{self.monitor}_best": best_value}, step=epoch)
            shown = dict.fromkeys(["train/loss", "val/loss", "val/accuracy", "val/f1_macro", self.monitor])
            log.info(
                "epoch %d/%d  %s%s  (%.1f img/s)",
                epoch, max_epochs, "  ".join(f"{k} {row[k]:.4f}" for k in shown),
                "  *best*" if improved else "", result.images_per_s,
            )  # fmt: skip
        mean_speed = sum(speeds) / len(speeds) if speeds else 0.0
        return FitResult(best_value, best_epoch, history, mean_speed, skipped)
