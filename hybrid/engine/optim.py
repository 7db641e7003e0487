"""Optimizer and learning-rate schedule, stepped once per training step."""

from __future__ import annotations

import math

import torch
from omegaconf import DictConfig

from hybrid.errors import ConfigError


def build_optimizer(model: torch.nn.Module, cfg: DictConfig) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters; no weight decay on biases and norm weights."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": float(cfg.weight_decay)},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=float(cfg.lr), betas=tuple(cfg.betas))


Scheduler = torch.optim.lr_scheduler.LRScheduler


def constant_schedule(optimizer: torch.optim.Optimizer, cfg: DictConfig, steps_per_epoch: int) -> Scheduler:
    """``none``: the learning rate stays ``trainer.lr``."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def warmup_cosine_schedule(optimizer: torch.optim.Optimizer, cfg: DictConfig, steps_per_epoch: int) -> Scheduler:
    """``cosine``: linear warmup over ``warmup_epochs``, then cosine decay to ``min_lr_ratio``."""
    sched = cfg.scheduler
    total = max(1, int(cfg.max_epochs) * steps_per_epoch)
    warmup = round(float(sched.warmup_epochs) * steps_per_epoch)
    floor = float(sched.min_lr_ratio)

    def cosine(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, cosine)


def cosine_restarts_schedule(optimizer: torch.optim.Optimizer, cfg: DictConfig, steps_per_epoch: int) -> Scheduler:
    """``cosine_restarts``: cosine decay restarted every ``restart_epochs`` (growing by ``restart_mult``)."""
    sched = cfg.scheduler
    period = max(1, round(float(sched.restart_epochs) * steps_per_epoch))
    return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        optimizer, T_0=period, T_mult=int(sched.restart_mult), eta_min=float(cfg.lr) * float(sched.min_lr_ratio)
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


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: DictConfig, steps_per_epoch: int) -> Scheduler:
    """The schedule ``trainer.scheduler.name`` names, stepped once per training step."""
    return SCHEDULERS[check_scheduler(cfg.scheduler.name)](optimizer, cfg, steps_per_epoch)
