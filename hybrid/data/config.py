"""The ``data`` config group's checks, run before any work (its schema: :mod:`hybrid.data.schema`).

Each rule lives with the code that applies it (the task in :mod:`~hybrid.data.labels`, the image
policy in :mod:`~hybrid.data.dataset`, ...); :func:`check_data_config` only calls them, so a bad
value is refused before data is generated or a model is built, with the same line either way.
"""

from __future__ import annotations

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
from hybrid.data.schema import DataSchema, data_settings
from hybrid.errors import ConfigError
from hybrid.util.hydra_job import override_key

LAYOUTS = ("csv", "folders")


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
