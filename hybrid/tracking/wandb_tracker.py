"""Weights & Biases: one run per job, offline without credentials, files inside the run dir.

``wandb`` is imported only when a :class:`WandbTracker` is built, so ``logger=none`` loads no
network client.
"""

from __future__ import annotations

import logging
import netrc
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
from omegaconf import DictConfig
from PIL import Image

from hybrid.data.labels import LabelSpec
from hybrid.metrics import monitor_mode
from hybrid.tracking.base import Tracker
from hybrid.tracking.media import confusion_counts_inputs, precision_recall_points

log = logging.getLogger(__name__)


def has_wandb_credentials() -> bool:
    """An API key in the environment or in ``~/.netrc`` for the configured W&B host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def wandb_mode(requested: str) -> str:
    """``auto``: ``WANDB_MODE`` if set, else online with credentials and offline without."""
    if requested != "auto":
        return requested
    return os.environ.get("WANDB_MODE") or ("online" if has_wandb_credentials() else "offline")


class WandbTracker(Tracker):
    """A W&B run of one training or inference job.

    ``monitor`` (e.g. ``val/f1_macro``) gets a best-value summary (max or min by its kind), so the
    runs table compares sweeps by their best epoch rather than their last. ``resume_id`` continues
    an earlier run (a resumed training run keeps its W&B run).
    """

    def __init__(
        self,
        cfg: DictConfig,
        run_dir: Path,
        config: dict,
        job_type: str,
        identity: Mapping,
        monitor: str | None = None,
        resume_id: str | None = None,
    ):
        import wandb

        self.wandb = wandb
        self.mode = wandb_mode(cfg.mode)
        media = cfg.media
        self.wants_media = self.mode != "disabled"
        self.attention_every_n_epochs = int(media.attention_every_n_epochs)
        self.attention_images = int(media.attention_images)
        self.sample_predictions = int(media.sample_predictions)
        self.max_image_side = int(media.max_image_side)
        self.pr_curve_points = int(media.pr_curve_points)
        self.log_model = bool(cfg.log_model)
        run_dir.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            project=cfg.project,
            entity=cfg.entity,
            group=identity["group"],
            tags=identity["tags"],
            name=identity["name"],
            job_type=job_type,
            dir=str(run_dir),
            config=config,
            mode=self.mode,
            id=resume_id,
            resume="allow" if resume_id else None,
            reinit="finish_previous",
        )
        self._define_metrics(monitor)
        log.info("W&B run %s (%s, group %s) in %s", self.run.id, self.mode, identity["group"], self.run.dir)

    def _define_metrics(self, monitor: str | None) -> None:
        # Epoch-indexed charts; the monitored metric's summary is its best value, the loss's its lowest.
        self.run.define_metric("epoch")
        for pattern in ("train/*", "val/*", "lr"):
            self.run.define_metric(pattern, step_metric="epoch")
        self.run.define_metric("val/loss", summary="min,last")
        if monitor:
            self.run.define_metric(monitor, summary=f"{monitor_mode(monitor)},last")

    @property
    def run_id(self) -> str:
        return self.run.id

    def log_metrics(self, metrics: Mapping, step: int | None = None) -> None:
        self.run.log(dict(metrics), step=step)

    def log_summary(self, metrics: Mapping) -> None:
        self.run.summary.update(dict(metrics))

    def log_image(self, key: str, path: Path) -> None:
        self.run.log({key: self.wandb.Image(str(path))})

    def log_images(self, key: str, images: Sequence[tuple[Image.Image, str]], step: int | None = None) -> None:
        self.run.log({key: [self.wandb.Image(image, caption=caption) for image, caption in images]}, step=step)

    def log_classification(
        self,
        split: str,
        probs: np.ndarray,
        targets: np.ndarray,
        spec: LabelSpec,
        *,
        threshold: float,
    ) -> None:
        true, predicted, names = confusion_counts_inputs(probs, targets, spec, threshold=threshold)
        table = self.wandb.Table(
            columns=["class", "recall", "precision"],
            data=precision_recall_points(
                probs, targets, spec.class_names, single_label=spec.single_label, max_points=self.pr_curve_points
            ),
        )
        self.run.log(
            {
                f"{split}/confusion_matrix": self.wandb.plot.confusion_matrix(
                    y_true=true, preds=predicted, class_names=names, title=f"{split} confusion matrix"
                ),
                # The preset wandb.plot.pr_curve draws; fed per-class one-vs-rest points so it
                # serves multi-label tasks too.
                f"{split}/pr_curve": self.wandb.plot_table(
                    "wandb/area-under-curve/v0",
                    table,
                    {"x": "recall", "y": "precision", "class": "class"},
                    {"title": f"{split} precision-recall", "x-axis-title": "recall", "y-axis-title": "precision"},
                ),
            }
        )

    def log_table(self, key: str, columns: Sequence[str], rows: Sequence[Sequence]) -> None:
        cells = [[self.wandb.Image(c) if isinstance(c, Image.Image) else c for c in row] for row in rows]
        self.run.log({key: self.wandb.Table(columns=list(columns), data=cells)})

    def log_checkpoints(self, checkpoints: Mapping[str, Path], metadata: Mapping) -> None:
        if not self.log_model:
            return
        # One artifact version per distinct file; a file that is both best and latest gets both aliases.
        aliases_by_file: dict[Path, list[str]] = {}
        for alias, path in checkpoints.items():
            aliases_by_file.setdefault(Path(path).resolve(), []).append(alias)
        for path, aliases in aliases_by_file.items():
            artifact = self.wandb.Artifact(f"model-{self.run.id}", type="model", metadata=dict(metadata))
            artifact.add_file(str(path), name=path.name)
            self.run.log_artifact(artifact, aliases=aliases)

    def finish(self, exit_code: int = 0) -> None:
        run_dir, run_id = Path(self.run.dir).parent, self.run.id
        self.run.finish(exit_code=exit_code)
        if self.mode == "offline":
            # A resumed run writes a second offline folder for the same id: name them all.
            folders = sorted(run_dir.parent.glob(f"offline-run-*-{run_id}")) or [run_dir]
            log.info("W&B run %s saved offline; upload it with: wandb sync %s", run_id, " ".join(map(str, folders)))
