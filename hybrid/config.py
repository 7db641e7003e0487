"""Checks on a composed config, run before any work so a bad value costs nothing.

Every rule and every type lives with its owner (``hybrid.models.config``, ``hybrid.data.config``,
``hybrid.engine.config``); this module only runs them in order, so ``train.py`` stops with one line
naming the key before data is generated or a model is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from hybrid.data.config import check_data_config
from hybrid.data.schema import DataSchema
from hybrid.engine.config import TrainerSchema, check_trainer_config
from hybrid.errors import ConfigError
from hybrid.metrics import monitor_mode
from hybrid.models.config import check_model_config
from hybrid.tracking.config import check_logger_config
from hybrid.util.schema import check_types, register_schema

# The groups a training config composes, each declared by its own schema.
TRAIN_GROUPS = ("data", "model", "trainer", "logger", "paths")


@dataclass
class TrainSchema:
    """The top-level keys of ``train.yaml`` (its groups are checked by their owners)."""

    task_name: str = "train"
    seed: int = 42
    # a run's checkpoints/last.pt resumes that run (model, optimizer, scheduler, RNG, best, W&B id);
    # after SIGTERM/Ctrl-C the printed command does exactly this
    ckpt_path: str | None = None
    # start a new run from another run's weights (fine-tuning): every weight that fits is loaded (a
    # binary model's into a multi-label one: all but the head), with a fresh optimizer and schedule
    init_from: str | None = None
    # null: one training; experiment=sewerml_two_stage: hybrid.two_stage.TwoStagePlan (it checks it)
    two_stage: Any = None
    data: Any = None
    model: Any = None
    trainer: Any = None
    logger: Any = None
    paths: Any = None


register_schema("train", TrainSchema, exclude=TRAIN_GROUPS)


def monitor_direction(monitor: str) -> str:
    """``maximize`` or ``minimize``: what a sweeper should do with ``trainer.monitor``."""
    return "maximize" if monitor_mode(monitor) == "max" else "minimize"


# Lets sweeper configs follow the monitored metric: ``direction: ${monitor_direction:${trainer.monitor}}``.
OmegaConf.register_new_resolver("monitor_direction", monitor_direction, replace=True)


@dataclass(frozen=True)
class TrainSettings:
    """The typed groups a training job hands down (the model group stays a config: its
    ``_target_`` blocks are what the factory instantiates)."""

    data: DataSchema
    trainer: TrainerSchema


def check_train_config(cfg: DictConfig) -> TrainSettings:
    """Everything ``train.py`` needs, checked before data generation or model building; returns
    the data and trainer groups typed, once."""
    check_types(cfg, TrainSchema, "", resolve=False)
    if cfg.ckpt_path and cfg.init_from:
        raise ConfigError("ckpt_path resumes a run and init_from starts a new one from weights: give one of them")
    check_model_config(cfg.model)
    data = check_data_config(cfg.data)
    trainer = check_trainer_config(cfg.trainer, data)
    check_logger_config(cfg.logger)
    return TrainSettings(data, trainer)
