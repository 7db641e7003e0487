"""Train the hybrid model: ``python train.py [overrides]`` (see README)."""

import sys

import hydra
from omegaconf import DictConfig

from hybrid.engine.distributed import worker_hydra_overrides
from hybrid.train import resume_hydra_overrides, train
from hybrid.util.entry import run_entry


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float:
    """Returns the best monitored validation value, for sweepers."""
    return run_entry(train, cfg)


if __name__ == "__main__":
    workers = worker_hydra_overrides()  # torchrun ranks > 0 share rank 0's run dir (user overrides win)
    sys.argv[1:1] = workers
    if not workers:
        sys.argv += resume_hydra_overrides(sys.argv[1:])  # a resumed run stays in its run dir
    main()
