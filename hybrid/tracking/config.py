"""The ``logger`` config group: its typed schema and the checks run before any work."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import DictConfig

from hybrid.errors import ConfigError
from hybrid.util.schema import check_types

BACKENDS = ("wandb", "none")


@dataclass
class MediaSchema:
    """``logger.media``: what the W&B run shows besides numbers."""

    attention_every_n_epochs: int = 1
    attention_images: int = 4
    sample_predictions: int = 32
    max_image_side: int = 256
    pr_curve_points: int = 200


@dataclass
class LoggerSchema:
    """Types of the ``logger`` keys (``logger=none`` sets ``backend`` alone)."""

    backend: str = "none"
    project: str = "hybrid"
    entity: str | None = None
    group: str | None = None
    name: str | None = None
    tags: list[str] = field(default_factory=list)
    mode: str = "auto"
    log_model: bool = True
    media: MediaSchema = field(default_factory=MediaSchema)


def check_backend(backend: str) -> str:
    """``logger.backend``: one of :data:`BACKENDS`."""
    if backend not in BACKENDS:
        raise ConfigError(f"logger.backend={backend!r}; choose one of {list(BACKENDS)}")
    return backend


def check_logger_config(logger: DictConfig) -> None:
    """The ``logger`` group's keys, types and backend."""
    check_types(logger, LoggerSchema, "logger")
    check_backend(logger.backend)
