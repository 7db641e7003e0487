"""Train the hybrid model: ``python train.py [overrides]`` (see README)."""

import sys

import hydra
from omegaconf import DictConfig

from hybrid.engine.distributed import worker_hydra_overrides
from hybrid.train import resume_hydra_overrides, train
from hybrid.two_stage import run_two_stage
from hybrid.util.entry import launch, run_entry


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float:
    """Returns the best monitored validation value (a two-stage run: its test F2-CIW), for sweepers."""
    two_stage = "two_stage" in cfg  # experiment=sewerml_two_stage: two trainings and their combination
    return run_entry(run_two_stage if two_stage else train, cfg)


if __name__ == "__main__":
    workers = worker_hydra_overrides()  # torchrun ranks > 0 share rank 0's run dir (user overrides win)
    sys.argv[1:1] = workers
    if not workers:
        sys.argv += resume_hydra_overrides(sys.argv[1:])  # a resumed run stays in its run dir
    launch(main)
