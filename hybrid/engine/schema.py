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
from hybrid.data.schema import DataSchema
from hybrid.engine.distributed import check_backend, check_strategy
from hybrid.engine.ema import check_ema, check_ema_best
from hybrid.engine.losses import LossOptions, check_class_weighting, check_loss_options
from hybrid.engine.optim import check_optimizer, check_scheduler
from hybrid.engine.runtime import check_precision, select_device
from hybrid.errors import ConfigError
from hybrid.metrics import check_monitor, check_threshold_tuning
from hybrid.util.typed_config import register_schema, typed_config


@dataclass
class SchedulerSchema:
    """``trainer.scheduler``: the learning-rate schedule."""

    name: str = "cosine"  # none | cosine (warmup then cosine decay) | cosine_restarts
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.01  # final lr as a fraction of lr
    restart_epochs: float = 5.0  # cosine_restarts: first period
    restart_mult: int = 1  # cosine_restarts: period growth


@dataclass
class AslSchema:
    """``trainer.asl``: the asymmetric loss's focusing and probability shift (loss=asl; Ridnik et
    al., ICCV 2021)."""

    gamma_pos: float = 0.0
    gamma_neg: float = 4.0
    clip: float = 0.05  # negatives' probability shift


@dataclass
class EmaSchema:
    """``trainer.ema``: an exponential moving average of the weights, validated beside them."""

    decay: float | None = None  # e.g. 0.999; null: off
    warmup: bool = True  # decay min(decay, (1 + n) / (10 + n)) after n updates
    best: str = "ema"  # ema | raw: the weights the monitored metric and best.pt come from


@dataclass
class EarlyStoppingSchema:
    """``trainer.early_stopping``."""

    patience: int | None = None  # stop after this many epochs without a better monitored value; null: off


@dataclass
class TrainerSchema:
    """The ``trainer`` keys, their types and defaults (``conf/trainer/*.yaml`` set what differs)."""

    max_epochs: int = 10  # epochs to train (a resumed run may raise it)
    lr: float = 1.0e-3  # peak learning rate (after warm-up), not rescaled for the batch
    weight_decay: float = 0.05  # decoupled (AdamW); not on biases and norm weights
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    grad_clip: float | None = 1.0  # max gradient norm; null to disable
    scheduler: SchedulerSchema = field(default_factory=SchedulerSchema)
    monitor: str = "val/f1_macro"  # see hybrid.metrics.MONITORS for each data.task (val/f2_ciw for multilabel)
    loss: str = "auto"  # auto (ce single-label, bce multilabel) | ce | bce | focal | asl (multilabel)
    label_smoothing: float = 0.0  # targets towards uniform (ce, focal) or towards 1/2 per label (bce, focal, asl)
    focal_gamma: float = 2.0  # loss=focal
    asl: AslSchema = field(default_factory=AslSchema)
    optimizer: str = "adamw"  # adamw | sgd (Nesterov, trainer.momentum) | schedulefree_adamw (scheduler.name=none)
    momentum: float = 0.9  # sgd
    ema: EmaSchema = field(default_factory=EmaSchema)
    accumulate_grad_batches: int = 1  # batches per optimizer step (an effective batch of data.batch_size x this)
    early_stopping: EarlyStoppingSchema = field(default_factory=EarlyStoppingSchema)
    class_weighting: str = "none"  # none | positive_ratio (multilabel BCE pos_weight) | effective_number
    effective_number_beta: float = 0.999
    tune_threshold: Any = False  # false | true | per_class: tune the decision threshold on val
    precision: Any = "bf16"  # bf16 (autocast, CPU and CUDA) | 32 | 16 (float16 + grad scaler, CUDA only)
    channels_last: bool = True  # NHWC activations: the fast layout for the convolutions on CPU and GPU
    compile: bool = False  # torch.compile: ~1 min to compile on 2 CPU cores, pays on long runs (docs/performance.md)
    device: str = "auto"  # auto | cpu | cuda[:N]
    num_threads: int | None = None  # torch intra-op threads; null: one per core
    progress_bar: bool = True
    strategy: str = "single"  # single | ddp (one process per device, launched by torchrun)
    backend: str = "auto"  # auto (nccl on CUDA, gloo on CPU) | nccl | gloo
    # ddp on CUDA: batch-norm statistics over the global batch (CPU: rank 0's are broadcast)
    sync_batchnorm: bool = True
    find_unused_parameters: bool = False  # ddp: set true if a model variant leaves parameters out of the loss


register_schema("trainer", TrainerSchema)


def check_max_epochs(value) -> int:
    """``trainer.max_epochs``: at least one epoch."""
    if int(value) < 1:
        raise ConfigError(f"trainer.max_epochs must be at least 1, got {value}")
    return int(value)


def check_trainer_config(trainer: DictConfig, data: DataSchema) -> TrainerSchema:
    """Training values: types, precision on the device, strategy, schedule, monitored metric for
    ``data.task``, class weighting, threshold tuning; returns the group as the typed
    :class:`TrainerSchema` the engine is handed."""
    settings = typed_config(trainer, TrainerSchema, "trainer")  # types first: a one-line error naming the key
    device = select_device(settings.device)
    check_precision(settings.precision, device)
    check_decode(data.decode, device)  # decoding on the GPU needs the model there
    check_strategy(settings.strategy)
    check_backend(settings.backend)
    check_max_epochs(settings.max_epochs)
    check_scheduler(settings.scheduler.name)
    check_monitor(settings.monitor, data.task, data.label_columns)
    check_class_weighting(settings.class_weighting, data.task)
    check_loss_options(LossOptions.of(settings), data.task)
    check_optimizer(settings.optimizer, settings.scheduler.name)
    check_ema(settings.ema.decay)
    check_ema_best(settings.ema.best)
    if settings.accumulate_grad_batches < 1:
        raise ConfigError(f"trainer.accumulate_grad_batches must be at least 1, got {settings.accumulate_grad_batches}")
    patience = settings.early_stopping.patience
    if patience is not None and patience < 1:
        raise ConfigError(f"trainer.early_stopping.patience must be at least 1 epoch (or null), got {patience}")
    if settings.tune_threshold:
        check_threshold_tuning(data.task, settings.monitor, settings.tune_threshold)
    return settings
