"""The tracking interface. This base class records nothing; it is what ``logger=none`` gets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from hybrid.data.labels import LabelSpec


class Tracker:
    """What the engine tells an experiment tracker. Every method is a no-op here.

    ``wants_media`` tells the engine whether images (attention overlays, sample predictions) are
    worth rendering at all, so ``logger=none`` costs nothing.
    """

    wants_media = False
    attention_every_n_epochs = 0
    attention_images = 0
    sample_predictions = 0
    max_image_side = 256

    @property
    def run_id(self) -> str | None:
        """The tracker's id of this run (stored in checkpoints so a resumed run continues it)."""
        return None

    def log_metrics(self, metrics: Mapping, step: int | None = None) -> None:
        """Record metrics, optionally at a step (the epoch)."""

    def log_summary(self, metrics: Mapping) -> None:
        """Record final values (test metrics, parameter counts, system info)."""

    def log_image(self, key: str, path: Path) -> None:
        """Record an image file (a plot)."""

    def log_images(self, key: str, images: Sequence[tuple[Image.Image, str]], step: int | None = None) -> None:
        """Record captioned images, e.g. attention overlays of one epoch."""

    def log_classification(
        self,
        split: str,
        probs: np.ndarray,
        targets: np.ndarray,
        spec: LabelSpec,
        *,
        threshold: float,
    ) -> None:
        """Record a confusion matrix and precision-recall curves of one evaluated split."""

    def log_table(self, key: str, columns: Sequence[str], rows: Sequence[Sequence]) -> None:
        """Record a table; cells may be PIL images."""

    def log_checkpoints(self, checkpoints: Mapping[str, Path], metadata: Mapping) -> None:
        """Record checkpoint files as versions of one model, keyed by alias (``best``, ``latest``)."""

    def finish(self, exit_code: int = 0) -> None:
        """Close the run."""
