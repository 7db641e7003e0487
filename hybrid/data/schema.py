"""The ``data`` config group's typed schema: the one declaration of each ``data`` key (its type,
default and meaning); :func:`data_settings`, which a job calls once to hand the data layer a
typed :class:`DataSchema` instead of the raw config; and :func:`check_data_config`, the group's
checks run before any work. Each rule lives with the code that applies it (the task in
:mod:`~hybrid.data.labels`, the image policy in :mod:`~hybrid.data.dataset`, ...); the checks only
call them, so a bad value is refused before data is generated or a model is built."""

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
from hybrid.data.synthetic import SyntheticSpec
from hybrid.errors import ConfigError
from hybrid.util.hydra_job import override_key
from hybrid.util.typed_config import register_schema, typed_config

LAYOUTS = ("csv", "folders")


@dataclass
class AugmentSchema:
    """``data.augment``: training-split augmentation strengths."""

    rotation: float = 10.0  # degrees
    scale: list[float] = field(default_factory=lambda: [0.9, 1.1])
    hflip: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.0


@dataclass
class MixAlphaSchema:
    """``data.mixup`` / ``data.cutmix``: the Beta(alpha, alpha) mixing weight; 0: off (e.g. 0.2 for
    mixup, 1.0 for cutmix)."""

    alpha: float = 0.0


@dataclass
class DataSchema:
    """The ``data`` keys, their types and defaults: a Sewer-ML style binary dataset of CSVs
    (``data=csv``; ``data=folder``, ``data=sewerml`` and ``data=synthetic`` set what differs).
    ``num_workers`` (a count or ``auto``) and ``sampling_ratio`` (a number or a per-split map) are
    checked by their owners."""

    root: str = "???"  # the dataset folder: images found by file name at any depth, CSVs relative to it
    train_csv: str | None = "train.csv"  # the label CSVs, relative to root
    valid_csv: str | None = "val.csv"
    test_csv: str | None = "test.csv"
    task: str = "binary"  # binary | multiclass | multilabel
    # binary: one 0/1 column; multiclass: one column of indices or names
    label_columns: list[str] | None = field(default_factory=lambda: ["Defect"])
    class_names: list[str] | None = None  # null: Normal/Defect (binary), sorted values of the column (multiclass)
    # the class meaning "no defect" (binary figures, video events); null: the one named
    negative_class: str | None = None
    # data=synthetic: the generator's settings (the dataset is made in root on first use)
    synthetic: SyntheticSpec | None = None
    batch_size: int = 16  # per process (under DDP the global batch is this x the processes)
    num_workers: Any = "auto"  # auto: 0 (main process) on <= 2 cores, else half the cores (<= 8)
    sampling_ratio: Any = 1.0  # or a per-split map, e.g. {train: 0.1, val: 0.5}; seeded by `seed`
    sampler: str = "random"  # random | balanced (training draws with replacement, every class equally often)
    # cross-validation: fold k of num_folds (stratified on the training CSV) becomes the validation
    # split; the rest trains (python train.py -m data.fold=0,1,2 data.num_folds=3)
    fold: int | None = None
    num_folds: int | None = None
    # all | defective: train and val on images with a label (multilabel; the two-stage recipe's
    # second stage); the test split stays whole
    rows: str = "all"
    on_bad_image: str = "skip"  # skip (count and name it) | error (stop on the first)
    decode: str = "cpu"  # cpu (PIL in the loader workers) | cuda (JPEGs decoded on the GPU with nvJPEG; docs/gpu.md)
    use_cache: bool = True  # read the prepared cache (hybrid prepare) when its manifest matches
    cache_dir: str | None = None  # null: <root>/.cache/<img_size>
    cache_format: str = "npy"  # npy (raw uint8: lossless, ~free to decode, largest) | jpg (~10x smaller, lossy) | png | packed, packed_jpg (npy, jpg in few large files)
    cache_jpeg_quality: int = 95  # cache_format=jpg only
    img_size: int = "${model.img_size}"  # type: ignore[assignment]  # the model's input, unless set
    in_channels: int = "${model.in_channels}"  # type: ignore[assignment]
    mean: list[float] = field(default_factory=lambda: [0.523, 0.453, 0.345])  # normalization: Sewer-ML's
    std: list[float] = field(default_factory=lambda: [0.210, 0.199, 0.154])
    mixup: MixAlphaSchema | None = field(default_factory=MixAlphaSchema)
    cutmix: MixAlphaSchema | None = field(default_factory=MixAlphaSchema)
    mix_prob: float = 1.0  # probability a training batch is mixed (when mixup or cutmix is on)
    mix_switch_prob: float = 0.5  # both on: probability of cutmix rather than mixup
    augment: AugmentSchema | None = field(default_factory=AugmentSchema)  # training split only; null: none
    layout: str = "csv"  # csv: label CSVs | folders: one sub-folder per class (data=folder)
    split_ratios: Any = None  # layout=folders without split folders: e.g. {train: 0.8, val: 0.1, test: 0.1}


register_schema("data", DataSchema)
register_schema("synthetic", SyntheticSpec)


def data_settings(node: DictConfig) -> DataSchema:
    """A composed (or a checkpoint's) ``data`` config as a :class:`DataSchema`, its values resolved
    and converted to the declared types (one-line errors naming the key, as :func:`check_types`)."""
    return typed_config(node, DataSchema, "data")


def check_data_config(data: DictConfig) -> DataSchema:
    """Every ``data`` value that can be checked without reading the dataset, including that a real
    dataset's folder exists; returns the group as the typed :class:`DataSchema` a job hands down."""
    settings = data_settings(data)  # types first: a one-line error naming the key
    if settings.class_names or settings.task != "multiclass":  # else the classes are known once the data is read
        resolve_label_spec(
            settings.task, settings.label_columns, settings.class_names, negative_class=settings.negative_class,
            negative_required_of_two=settings.layout == "folders",
        )  # fmt: skip
    else:
        resolve_label_columns(settings.task, settings.label_columns)
    check_bad_image_policy(settings.on_bad_image)
    resolve_workers(settings.num_workers)
    check_cache_format(settings.cache_format)
    check_batch_size(settings.batch_size)
    check_rows(settings.rows, settings.task)
    check_folds(settings.fold, settings.num_folds)
    check_sampler(settings.sampler)
    MixSettings.of(settings)  # its own checks
    for split in SPLITS:
        split_ratio(settings.sampling_ratio, split)
    check_root(settings)
    if settings.layout not in LAYOUTS:
        raise ConfigError(f"data.layout={settings.layout!r}; choose one of {list(LAYOUTS)}")
    check_split_ratios(settings.split_ratios)
    return settings


def trained_data_settings(trained_data: DictConfig, cfg: DictConfig, overrides: list[str]) -> DataSchema:
    """The data settings a model was trained with (``trained_data``), with a command line's
    ``data.*`` ``overrides`` applied (their values read from the composed ``cfg``), typed: what
    serving and export read by default. Choosing a data group outright (``data=sewerml``) replaces
    it whole."""
    keys = [override_key(o) for o in overrides]
    if "data" in keys:
        return data_settings(cfg.data)
    data = OmegaConf.create(OmegaConf.to_container(trained_data, resolve=True))
    for key in keys:
        if key.startswith("data."):
            OmegaConf.update(data, key.removeprefix("data."), OmegaConf.select(cfg, key), merge=False)
    return data_settings(data)
