"""``hybrid synthetic root=DIR [key=value ...]``: write a synthetic Sewer-ML look-alike dataset (:mod:`hybrid.data.synthetic`)."""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig

from hybrid.data.synthetic.dataset_writer import ensure_synthetic_dataset
from hybrid.data.synthetic.spec import SyntheticSpec
from hybrid.jobs.app import HydraJob
from hybrid.jobs.schema import SyntheticJobSchema
from hybrid.util.cli import spec_from
from hybrid.util.typed_config import typed_config


def write_dataset(cfg: DictConfig) -> Path:
    """The job: ``cfg.root`` holds the dataset ``cfg``'s spec describes (made, or found made)."""
    job = typed_config(cfg, SyntheticJobSchema)
    root = ensure_synthetic_dataset(Path(job.root).expanduser(), spec_from(SyntheticSpec, vars(job)))
    print(root)
    return root


# hybrid synthetic DIR: a first word without `=` is the dataset's root
main = HydraJob("synthetic", write_dataset, first_key="root", keys=SyntheticJobSchema)

if __name__ == "__main__":
    sys.exit(main())
