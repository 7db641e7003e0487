"""The ``trainer`` config group: its typed schema and the checks run before any work.

Each rule lives where it is applied (precision and device in :mod:`~hybrid.engine.runtime`, the
schedule in :mod:`~hybrid.engine.optim`, the monitored metric in :mod:`hybrid.metrics`, ...);
:func:`check_trainer_config` only calls them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig

from hybrid.data.decode import check_decode
from hybrid.engine.distributed import check_backend, check_strategy
from hybrid.engine.ema import check_ema, check_ema_best
from hybrid.engine.losses import LossOptions, check_class_weighting, check_loss_options
from hybrid.engine.optim import check_optimizer, check_scheduler
from hybrid.engine.runtime import check_precision, select_device
from hybrid.errors import ConfigError
from hybrid.metrics import check_monitor, check_threshold_tuning
from hybrid.util.schema import check_types


@dataclass
class SchedulerSchema:
    """``trainer.scheduler``."""

    name: str = "cosine"
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.01
    restart_epochs: float = 5.0
    restart_mult: int = 1


@dataclass
class AslSchema:
    """``trainer.asl``: the asymmetric loss's focusing and probability shift."""

    gamma_pos: float = 0.0
    gamma_neg: float = 4.0
    clip: float = 0.05


@dataclass
class EmaSchema:
    """``trainer.ema``: the weight average's decay (null: off), its warm-up, and which weights
    (``ema`` or ``raw``) the monitored metric and ``best.pt`` come from."""

    decay: float | None = None
    warmup: bool = True
    best: str = "ema"


@dataclass
class EarlyStoppingSchema:
    """``trainer.early_stopping``: epochs without improvement of the monitored metric (null: off)."""

    patience: int | None = None


@dataclass
class TrainerSchema:
    """Types of the ``trainer`` keys (``precision``: ``bf16``, ``32`` or ``16``, checked by its owner)."""

    max_epochs: int = 10
    lr: float = 1.0e-3
    weight_decay: float = 0.05
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    grad_clip: float | None = 1.0
    scheduler: SchedulerSchema = field(default_factory=SchedulerSchema)
    monitor: str = "val/f1_macro"
    loss: str = "auto"
    label_smoothing: float = 0.0
    focal_gamma: float = 2.0
    asl: AslSchema = field(default_factory=AslSchema)
    optimizer: str = "adamw"
    momentum: float = 0.9
    ema: EmaSchema = field(default_factory=EmaSchema)
    accumulate_grad_batches: int = 1
    early_stopping: EarlyStoppingSchema = field(default_factory=EarlyStoppingSchema)
    class_weighting: str = "none"
    effective_number_beta: float = 0.999
    tune_threshold: Any = False  # false | true | per_class
    precision: Any = "bf16"
    channels_last: bool = True
    compile: bool = False
    device: str = "auto"
    num_threads: int | None = None
    progress_bar: bool = True
    strategy: str = "single"
    backend: str = "auto"
    sync_batchnorm: bool = True
    find_unused_parameters: bool = False


def check_max_epochs(value) -> int:
    """``trainer.max_epochs``: at least one epoch."""
    if int(value) < 1:
        raise ConfigError(f"trainer.max_epochs must be at least 1, got {value}")
    return int(value)


def check_trainer_config(trainer: DictConfig, data: DictConfig) -> None:
    """Training values: types, precision on the device, strategy, schedule, monitored metric for
    ``data.task``, class weighting, threshold tuning."""
    check_types(trainer, TrainerSchema, "trainer")
    device = select_device(trainer.device)
    check_precision(trainer.precision, device)
    check_decode(data.decode, device)  # decoding on the GPU needs the model there
    check_strategy(trainer.strategy)
    check_backend(trainer.backend)
    check_max_epochs(trainer.max_epochs)
    check_scheduler(trainer.scheduler.name)
    check_monitor(trainer.monitor, data.task, data.label_columns)
    check_class_weighting(trainer.class_weighting, data.task)
    check_loss_options(LossOptions.from_config(trainer), data.task)
    check_optimizer(str(trainer.optimizer), str(trainer.scheduler.name))
    check_ema(trainer.ema.decay)
    check_ema_best(trainer.ema.best)
    if int(trainer.accumulate_grad_batches) < 1:
        raise ConfigError(f"trainer.accumulate_grad_batches must be at least 1, got {trainer.accumulate_grad_batches}")
    patience = trainer.early_stopping.patience
    if patience is not None and int(patience) < 1:
        raise ConfigError(f"trainer.early_stopping.patience must be at least 1 epoch (or null), got {patience}")
    if trainer.tune_threshold:
        check_threshold_tuning(data.task, trainer.monitor, trainer.tune_threshold)
