"""``hybrid prepare [data=sewerml data.root=...] [model.img_size=480]``: the prepared image cache
(:mod:`hybrid.data.prepare` builds it) as a job, with its config (``conf/prepare.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import hydra
from omegaconf import DictConfig

from hybrid.data.config import check_data_config
from hybrid.data.prepare import PrepareOptions, prepare_cache
from hybrid.models.config import check_model_config
from hybrid.util.entry import launch, run_entry
from hybrid.util.schema import check_types, register_schema, typed_job

PREPARE_GROUPS = ("data", "model", "paths")  # typed by their own schemas


@dataclass
class PrepareSchema:
    """``hybrid prepare [data=sewerml data.root=...] [model.img_size=480]``: decodes every image under
    data.root once, resizes it to model.img_size and writes it to data.cache_dir (default
    <root>/.cache/<img_size>/) in data.cache_format; train and infer then read the cache
    automatically. Resumable: rerunning skips entries already written. On every core
    (``prepare.num_workers``) and, in parts, on every node (``prepare.shard`` / ``prepare.num_shards``)."""

    task_name: str = "prepare"
    progress_bar: bool = True
    prepare: PrepareOptions = field(default_factory=PrepareOptions)
    data: Any = None
    model: Any = None
    paths: Any = None


register_schema("prepare", PrepareSchema, exclude=PREPARE_GROUPS)


def prepare(cfg: DictConfig) -> dict:
    """The job: its keys, the model and the data checked and typed once, then the cache (or this
    node's part of it) filled; returns what was done (counts)."""
    check_types(cfg, PrepareSchema, "", resolve=False)
    job = typed_job(cfg, PrepareSchema, groups=PREPARE_GROUPS)
    check_model_config(cfg.model)  # model.img_size is the cache's image size
    data = check_data_config(cfg.data)
    return prepare_cache(data, job.prepare, progress=job.progress_bar)


@hydra.main(config_path="conf", config_name="prepare", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Hydra entry point: ``hybrid prepare`` / ``python -m hybrid.prepare``."""
    run_entry(prepare, cfg)


if __name__ == "__main__":
    launch(main)
