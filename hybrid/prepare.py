"""``hybrid prepare [data=sewerml data.root=...] [model.img_size=480]``: the prepared image cache
(:mod:`hybrid.data.prepare` builds it) as a job, with its config (``conf/prepare.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import hydra
from omegaconf import DictConfig

from hybrid.data.prepare import prepare
from hybrid.models.config import check_model_config
from hybrid.util.entry import launch, run_entry
from hybrid.util.schema import check_types, register_schema


@dataclass
class PrepareSchema:
    """``hybrid prepare [data=sewerml data.root=...] [model.img_size=480]``: decodes every image under
    data.root once, resizes it to model.img_size and writes it to data.cache_dir (default
    <root>/.cache/<img_size>/) in data.cache_format; train and infer then read the cache
    automatically. Resumable: rerunning skips entries already written."""

    task_name: str = "prepare"
    progress_bar: bool = True
    data: Any = None
    model: Any = None
    paths: Any = None


register_schema("prepare", PrepareSchema, exclude=("data", "model", "paths"))


def prepare_job(cfg: DictConfig) -> dict:
    """The job: the config's keys and model checked, then the cache filled."""
    check_types(cfg, PrepareSchema, "", resolve=False)
    check_model_config(cfg.model)  # model.img_size is the cache's image size
    return prepare(cfg)


@hydra.main(config_path="conf", config_name="prepare", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Hydra entry point: ``hybrid prepare`` / ``python -m hybrid.prepare``."""
    run_entry(prepare_job, cfg)


if __name__ == "__main__":
    launch(main)
