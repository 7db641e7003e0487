"""The ``logger`` config group: its typed schema and the checks run before any work."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import DictConfig

from hybrid.errors import ConfigError
from hybrid.tracking.registry import TRACKERS
from hybrid.util.typed_config import check_types, register_schema

BACKENDS = tuple(TRACKERS)  # the registry's names: what logger.backend may be


@dataclass
class MediaSchema:
    """``logger.media``: what the W&B run shows besides numbers."""

    attention_every_n_epochs: int = 1  # attention of the CATS queries over validation images; 0: never
    attention_images: int = 4
    sample_predictions: int = 32  # rows (with images) of the test predictions table; 0: none
    max_image_side: int = 256  # thumbnails in overlays and tables
    pr_curve_points: int = 200  # per class


@dataclass
class LoggerSchema:
    """The ``logger`` keys, their types and defaults: W&B's run settings (``logger=wandb``);
    ``logger=none`` logs nothing."""

    backend: str = "wandb"  # wandb | none
    project: str = "hybrid"
    entity: str | None = None
    group: str | None = None  # null: one group per multirun sweep (<task>-<sweep time>); none for a single run
    name: str | None = None  # null: a sweep job's swept values (model.emb_dim=48), else the run dir's name
    tags: list[str] = field(
        default_factory=list
    )  # added to the automatic ones: data.task, backbone, "sweep" for sweep jobs
    mode: str = "auto"  # auto: offline without credentials | online | offline | disabled
    log_model: bool = True  # best.pt and last.pt as versions of artifact model-<run id> (aliases best, latest)
    media: MediaSchema = field(default_factory=MediaSchema)


register_schema("logger", LoggerSchema)


def check_backend(backend: str) -> str:
    """``logger.backend``: one of :data:`BACKENDS`."""
    if backend not in BACKENDS:
        raise ConfigError(f"logger.backend={backend!r}; choose one of {list(BACKENDS)}")
    return backend


def check_logger_config(logger: DictConfig) -> None:
    """The ``logger`` group's keys, types and backend."""
    check_types(logger, LoggerSchema, "logger")
    check_backend(logger.backend)
