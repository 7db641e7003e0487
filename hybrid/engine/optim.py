"""Optimizer and learning-rate schedule, stepped once per training step, built from the typed
``trainer`` settings (:class:`~hybrid.engine.schema.TrainerSchema`)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch

from hybrid.errors import ConfigError

if TYPE_CHECKING:  # the schema module imports this one for its checks
    from hybrid.engine.schema import TrainerSchema


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """The trainable parameters in two groups: decayed weights, and biases and norm weights (no decay)."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def adamw(groups: list[dict], settings: TrainerSchema, steps_per_epoch: int) -> torch.optim.Optimizer:
    """``adamw``: decoupled weight decay, ``trainer.betas``."""
    return torch.optim.AdamW(groups, lr=float(settings.lr), betas=tuple(settings.betas))


def sgd(groups: list[dict], settings: TrainerSchema, steps_per_epoch: int) -> torch.optim.Optimizer:
    """``sgd``: Nesterov momentum ``trainer.momentum``."""
    return torch.optim.SGD(groups, lr=float(settings.lr), momentum=float(settings.momentum), nesterov=True)


def schedulefree_adamw(groups: list[dict], settings: TrainerSchema, steps_per_epoch: int) -> torch.optim.Optimizer:
    """``schedulefree_adamw``: AdamW without a schedule (Defazio et al., 2024; the ``schedulefree``
    package); its warm-up is ``trainer.scheduler.warmup_epochs``. It evaluates at an average of its
    iterates: :func:`evaluation_weights` switches the model to those and back."""
    import schedulefree

    warmup = round(float(settings.scheduler.warmup_epochs) * steps_per_epoch)
    return schedulefree.AdamWScheduleFree(
        groups, lr=float(settings.lr), betas=tuple(settings.betas), warmup_steps=warmup
    )


# trainer.optimizer -> builder
OPTIMIZERS = {"adamw": adamw, "sgd": sgd, "schedulefree_adamw": schedulefree_adamw}
# Optimizers that keep their own schedule (trainer.scheduler.name must be none) and evaluation weights.
SCHEDULE_FREE = ("schedulefree_adamw",)


def check_optimizer(name: str, scheduler: str) -> str:
    """``trainer.optimizer``: a key of :data:`OPTIMIZERS`; a schedule-free one takes no schedule."""
    if name not in OPTIMIZERS:
        raise ConfigError(f"trainer.optimizer={name!r}; choose one of {list(OPTIMIZERS)}")
    if name in SCHEDULE_FREE and scheduler != "none":
        raise ConfigError(f"trainer.optimizer={name} needs trainer.scheduler.name=none (it has its own warm-up)")
    return name


def build_optimizer(model: torch.nn.Module, settings: TrainerSchema, steps_per_epoch: int = 1) -> torch.optim.Optimizer:
    """``trainer.optimizer`` (default AdamW) over the trainable parameters; no weight decay on biases
    and norm weights."""
    name = check_optimizer(str(settings.optimizer), str(settings.scheduler.name))
    optimizer = OPTIMIZERS[name](parameter_groups(model, float(settings.weight_decay)), settings, steps_per_epoch)
    training_weights(optimizer)
    return optimizer


def switches_weights(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer`` trains one set of weights and evaluates another (schedule-free)."""
    return hasattr(optimizer, "eval") and hasattr(optimizer, "train")


def training_weights(optimizer: torch.optim.Optimizer) -> None:
    """Put the weights the steps move into the model (a schedule-free optimizer's training iterate,
    after building it or loading a state saved with the evaluation weights); others: nothing to do."""
    if switches_weights(optimizer):
        optimizer.train()


@contextmanager
def evaluation_weights(optimizer: torch.optim.Optimizer) -> Iterator[None]:
    """Inside: the model holds the weights to evaluate and save (a schedule-free optimizer's
    average; every other optimizer's only weights); after it, those it trains."""
    if switches_weights(optimizer):
        optimizer.eval()
    try:
        yield
    finally:
        training_weights(optimizer)


Scheduler = torch.optim.lr_scheduler.LRScheduler


def constant_schedule(optimizer: torch.optim.Optimizer, settings: TrainerSchema, steps_per_epoch: int) -> Scheduler:
    """``none``: the learning rate stays ``trainer.lr``."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def warmup_cosine_schedule(
    optimizer: torch.optim.Optimizer, settings: TrainerSchema, steps_per_epoch: int
) -> Scheduler:
    """``cosine``: linear warmup over ``warmup_epochs``, then cosine decay to ``min_lr_ratio``."""
    sched = settings.scheduler
    total = max(1, int(settings.max_epochs) * steps_per_epoch)
    warmup = round(float(sched.warmup_epochs) * steps_per_epoch)
    floor = float(sched.min_lr_ratio)

    def cosine(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, cosine)


def cosine_restarts_schedule(
    optimizer: torch.optim.Optimizer, settings: TrainerSchema, steps_per_epoch: int
) -> Scheduler:
    """``cosine_restarts``: cosine decay restarted every ``restart_epochs`` (growing by ``restart_mult``)."""
    sched = settings.scheduler
    period = max(1, round(float(sched.restart_epochs) * steps_per_epoch))
    return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        optimizer, T_0=period, T_mult=int(sched.restart_mult), eta_min=float(settings.lr) * float(sched.min_lr_ratio)
    )


# trainer.scheduler.name -> builder
SCHEDULERS = {
    "none": constant_schedule,
    "cosine": warmup_cosine_schedule,
    "cosine_restarts": cosine_restarts_schedule,
}


def check_scheduler(name: str) -> str:
    """``trainer.scheduler.name``: a key of :data:`SCHEDULERS`."""
    if name not in SCHEDULERS:
        raise ConfigError(f"trainer.scheduler.name={name!r}; choose one of {list(SCHEDULERS)}")
    return name


def build_scheduler(optimizer: torch.optim.Optimizer, settings: TrainerSchema, steps_per_epoch: int) -> Scheduler:
    """The schedule ``trainer.scheduler.name`` names, stepped once per training step."""
    return SCHEDULERS[check_scheduler(settings.scheduler.name)](optimizer, settings, steps_per_epoch)
