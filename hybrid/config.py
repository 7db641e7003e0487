"""Checks on a composed config, run before any work so a bad value costs nothing."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from hybrid.data.cache import FORMATS
from hybrid.data.dataset import BAD_IMAGE_POLICIES
from hybrid.data.labels import TASKS
from hybrid.data.loaders import SPLITS, resolve_workers, split_ratio
from hybrid.data.sewerml import CIW_WEIGHTS
from hybrid.engine.distributed import BACKENDS, STRATEGIES
from hybrid.engine.loop import CLASS_WEIGHTINGS
from hybrid.engine.optim import SCHEDULERS
from hybrid.engine.runtime import check_precision, select_device
from hybrid.errors import ConfigError, DataError
from hybrid.metrics import monitor_mode
from hybrid.models.backbones import available_backbones
from hybrid.models.decoder import POSITIONAL_ENCODINGS
from hybrid.models.encoder import patch_grid

_COMMON = ("f1_macro", "accuracy", "loss", "auroc")
MONITORS = {
    "binary": (*_COMMON, "f1_normal", "f1_defect"),
    "multiclass": _COMMON,
    "multilabel": (*_COMMON, "f2_ciw", "f1_normal", "f1_defect", "f1_micro", "f2_macro", "map"),
}
# Metrics that do not depend on a decision threshold cannot drive threshold tuning.
THRESHOLD_FREE = ("loss", "auroc", "map")


def monitor_direction(monitor: str) -> str:
    """``maximize`` or ``minimize``: what a sweeper should do with ``trainer.monitor``."""
    return "maximize" if monitor_mode(monitor) == "max" else "minimize"


# Lets sweeper configs follow the monitored metric: ``direction: ${monitor_direction:${trainer.monitor}}``.
OmegaConf.register_new_resolver("monitor_direction", monitor_direction, replace=True)


def check_model(model: DictConfig) -> None:
    """Architecture values that cannot work together."""
    patch_grid(int(model.img_size), int(model.patch_size), model.patch_stride)
    if int(model.emb_dim) % int(model.num_heads):
        raise ConfigError(f"model.emb_dim={model.emb_dim} is not divisible by model.num_heads={model.num_heads}")
    if model.backbone not in available_backbones():
        raise ConfigError(f"model.backbone={model.backbone!r} is unknown; choose one of {available_backbones()}")
    if int(model.in_channels) not in (1, 3):
        raise ConfigError(f"model.in_channels must be 1 or 3, got {model.in_channels}")
    if model.positional_encoding not in POSITIONAL_ENCODINGS:
        raise ConfigError(
            f"model.positional_encoding={model.positional_encoding!r}; choose one of {list(POSITIONAL_ENCODINGS)}"
        )
    if model.positional_encoding == "sincos2d" and int(model.emb_dim) % 4:
        raise ConfigError(f"model.positional_encoding=sincos2d needs model.emb_dim divisible by 4, got {model.emb_dim}")
    if isinstance(model.pretrained, str) and not Path(model.pretrained).expanduser().is_file():
        raise ConfigError(f"model.pretrained={model.pretrained}: no such weights file")


def check_data(data: DictConfig) -> None:
    """Dataset values, including that a real dataset's folder exists."""
    if data.task not in TASKS:
        raise ConfigError(f"data.task={data.task!r} is unknown; choose one of {list(TASKS)}")
    if data.task == "multilabel" and not data.label_columns:
        raise ConfigError("data.task=multilabel needs data.label_columns (one 0/1 column per class)")
    if data.on_bad_image not in BAD_IMAGE_POLICIES:
        raise ConfigError(f"data.on_bad_image={data.on_bad_image!r}; choose one of {list(BAD_IMAGE_POLICIES)}")
    resolve_workers(data.num_workers)
    if data.get("cache_format", "npy") not in FORMATS:
        raise ConfigError(f"data.cache_format={data.cache_format!r}; choose one of {list(FORMATS)}")
    if int(data.batch_size) < 1:
        raise ConfigError(f"data.batch_size must be at least 1, got {data.batch_size}")
    try:
        for split in SPLITS:
            split_ratio(data.sampling_ratio, split)
    except DataError as err:
        raise ConfigError(str(err)) from err
    if not data.get("synthetic") and not Path(str(data.root)).expanduser().is_dir():
        raise ConfigError(f"data.root={data.root} does not exist; download the data there or set data.root")


def check_trainer(trainer: DictConfig, data: DictConfig) -> None:
    """Training values: precision, device, schedule, monitored metric, weighting, threshold tuning."""
    task = data.task
    check_precision(trainer.precision, select_device(trainer.device))
    if trainer.strategy not in STRATEGIES:
        raise ConfigError(f"trainer.strategy={trainer.strategy!r}; choose one of {list(STRATEGIES)}")
    if trainer.backend not in BACKENDS:
        raise ConfigError(f"trainer.backend={trainer.backend!r}; choose one of {list(BACKENDS)}")
    if int(trainer.max_epochs) < 1:
        raise ConfigError(f"trainer.max_epochs must be at least 1, got {trainer.max_epochs}")
    if trainer.scheduler.name not in SCHEDULERS:
        raise ConfigError(f"trainer.scheduler.name={trainer.scheduler.name!r}; choose one of {list(SCHEDULERS)}")
    allowed = [f"val/{m}" for m in MONITORS[task]]
    if trainer.monitor not in allowed:
        raise ConfigError(
            f"trainer.monitor={trainer.monitor!r} does not apply to data.task={task}; choose one of {allowed}"
        )
    if trainer.monitor == "val/f2_ciw" and not set(data.label_columns or ()) & set(CIW_WEIGHTS):
        raise ConfigError("trainer.monitor=val/f2_ciw needs Sewer-ML codes in data.label_columns")
    if trainer.class_weighting not in CLASS_WEIGHTINGS:
        raise ConfigError(
            f"trainer.class_weighting={trainer.class_weighting!r}; choose one of {list(CLASS_WEIGHTINGS)}"
        )
    if trainer.class_weighting == "positive_ratio" and task != "multilabel":
        raise ConfigError("trainer.class_weighting=positive_ratio applies to data.task=multilabel only")
    if trainer.tune_threshold:
        if task == "multiclass":
            raise ConfigError("trainer.tune_threshold needs data.task=binary or multilabel (multiclass uses argmax)")
        if trainer.monitor.removeprefix("val/") in THRESHOLD_FREE:
            raise ConfigError(
                f"trainer.tune_threshold cannot tune for trainer.monitor={trainer.monitor}; monitor a score instead"
            )


def check_train_config(cfg: DictConfig) -> None:
    """Everything ``train.py`` needs, checked before data generation or model building."""
    check_model(cfg.model)
    check_data(cfg.data)
    check_trainer(cfg.trainer, cfg.data)
