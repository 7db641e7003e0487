"""Checks on a composed config, run before any work so a bad value costs nothing.

Every rule and every type lives with its owner (``hybrid.models.config``, ``hybrid.data.config``,
``hybrid.engine.config``); this module only runs them in order, so ``train.py`` stops with one line
naming the key before data is generated or a model is built.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from hybrid.data.config import check_data_config
from hybrid.engine.config import check_trainer_config
from hybrid.metrics import monitor_mode
from hybrid.models.config import check_model_config


def monitor_direction(monitor: str) -> str:
    """``maximize`` or ``minimize``: what a sweeper should do with ``trainer.monitor``."""
    return "maximize" if monitor_mode(monitor) == "max" else "minimize"


# Lets sweeper configs follow the monitored metric: ``direction: ${monitor_direction:${trainer.monitor}}``.
OmegaConf.register_new_resolver("monitor_direction", monitor_direction, replace=True)


def check_train_config(cfg: DictConfig) -> None:
    """Everything ``train.py`` needs, checked before data generation or model building."""
    check_model_config(cfg.model)
    check_data_config(cfg.data)
    check_trainer_config(cfg.trainer, cfg.data)
