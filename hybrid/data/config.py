"""The ``data`` config group: its typed schema and the checks run before any work.

Each rule lives with the code that applies it (the task in :mod:`~hybrid.data.labels`, the image
policy in :mod:`~hybrid.data.dataset`, ...); :func:`check_data_config` only calls them, so a bad
value is refused before data is generated or a model is built, with the same line either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

from hybrid.data.cache import check_cache_format
from hybrid.data.dataset import check_bad_image_policy
from hybrid.data.folders import check_split_ratios
from hybrid.data.labels import resolve_label_columns, resolve_label_spec
from hybrid.data.loaders import (
    SPLITS,
    check_batch_size,
    check_folds,
    check_root,
    check_rows,
    resolve_workers,
    split_ratio,
)
from hybrid.data.mixing import MixSettings
from hybrid.data.samplers import check_sampler
from hybrid.errors import ConfigError
from hybrid.util.hydra_job import override_key
from hybrid.util.schema import check_types

# csv: Sewer-ML style label CSVs; folders: one sub-folder per class (data=folder)
LAYOUTS = ("csv", "folders")


@dataclass
class AugmentSchema:
    """``data.augment``: training-split augmentation strengths."""

    rotation: float = 0.0
    scale: list[float] = field(default_factory=lambda: [1.0, 1.0])
    hflip: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0


@dataclass
class MixAlphaSchema:
    """``data.mixup`` / ``data.cutmix``."""

    alpha: float = 0.0


@dataclass
class DataSchema:
    """Types of the ``data`` keys (``num_workers``: a count or ``auto``; ``sampling_ratio``: a
    number or a per-split map; their owners check those)."""

    root: str = "???"
    train_csv: str | None = None
    valid_csv: str | None = None
    test_csv: str | None = None
    task: str = "binary"
    label_columns: list[str] | None = None
    class_names: list[str] | None = None
    negative_class: str | None = None
    batch_size: int = 16
    num_workers: Any = "auto"
    sampling_ratio: Any = 1.0
    rows: str = "all"
    fold: int | None = None
    sampler: str = "random"
    num_folds: int | None = None
    on_bad_image: str = "skip"
    decode: str = "cpu"
    use_cache: bool = True
    cache_dir: str | None = None
    cache_format: str = "npy"
    cache_jpeg_quality: int = 95
    img_size: int = 480
    in_channels: int = 3
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    augment: AugmentSchema | None = None
    mixup: MixAlphaSchema | None = None
    cutmix: MixAlphaSchema | None = None
    mix_prob: float = 1.0
    mix_switch_prob: float = 0.5
    synthetic: Any = None
    layout: str = "csv"
    split_ratios: Any = None


def check_data_config(data: DictConfig) -> None:
    """Every ``data`` value that can be checked without reading the dataset, including that a real
    dataset's folder exists."""
    check_types(data, DataSchema, "data")
    if data.class_names or data.task != "multiclass":  # else the classes are known once the data is read
        resolve_label_spec(
            data.task, data.label_columns, data.class_names, negative_class=data.get("negative_class"),
            negative_required_of_two=data.get("layout") == "folders",
        )  # fmt: skip
    else:
        resolve_label_columns(data.task, data.label_columns)
    check_bad_image_policy(data.on_bad_image)
    resolve_workers(data.num_workers)
    check_cache_format(data.cache_format)
    check_batch_size(data.batch_size)
    check_rows(data.get("rows", "all"), data.task)
    check_folds(data.get("fold"), data.get("num_folds"))
    check_sampler(data.get("sampler", "random"))
    MixSettings.from_config(data)  # its own checks
    for split in SPLITS:
        split_ratio(data.sampling_ratio, split)
    check_root(data)
    if data.get("layout", "csv") not in LAYOUTS:
        raise ConfigError(f"data.layout={data.layout!r}; choose one of {list(LAYOUTS)}")
    check_split_ratios(data.get("split_ratios"))


def trained_data_config(trained_data: DictConfig, cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """The data config a model was trained with (``trained_data``), with a command line's
    ``data.*`` ``overrides`` applied (their values read from the composed ``cfg``): what serving and
    export read by default. Choosing a data group outright (``data=sewerml``) replaces it whole."""
    keys = [override_key(o) for o in overrides]
    if "data" in keys:
        return cfg.data
    data = OmegaConf.create(OmegaConf.to_container(trained_data, resolve=True))
    for key in keys:
        if key.startswith("data."):
            OmegaConf.update(data, key.removeprefix("data."), OmegaConf.select(cfg, key), merge=False)
    return data
