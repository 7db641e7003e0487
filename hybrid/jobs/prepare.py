"""``hybrid prepare [data=sewerml data.root=...] [model.img_size=480]``: the prepared image cache
(:mod:`hybrid.data.cache_builder` builds it) as a job, with its config (``conf/prepare.yaml``)."""

from __future__ import annotations

import sys

from omegaconf import DictConfig

from hybrid.data.cache_builder import prepare_cache
from hybrid.data.schema import check_data_config
from hybrid.jobs.app import HydraJob
from hybrid.jobs.schema import PREPARE_GROUPS, PrepareSchema
from hybrid.models.schema import check_model_config
from hybrid.util.typed_config import check_types, typed_job


def prepare(cfg: DictConfig) -> dict:
    """The job: its keys, the model and the data checked and typed once, then the cache (or this
    node's part of it) filled; returns what was done (counts)."""
    check_types(cfg, PrepareSchema, "", resolve=False)
    job = typed_job(cfg, PrepareSchema, groups=PREPARE_GROUPS)
    check_model_config(cfg.model)  # model.img_size is the cache's image size
    data = check_data_config(cfg.data)
    return prepare_cache(data, job.prepare, progress=job.progress_bar)


main = HydraJob("prepare", prepare)

if __name__ == "__main__":
    sys.exit(main())
