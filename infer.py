"""Predict with a trained checkpoint: ``python infer.py ckpt_path=P [input=FOLDER] [overrides]``."""

import hydra
from omegaconf import DictConfig

from hybrid.infer import infer
from hybrid.util.entry import launch, run_entry


@hydra.main(version_base="1.3", config_path="conf", config_name="infer")
def main(cfg: DictConfig) -> None:
    run_entry(infer, cfg)


if __name__ == "__main__":
    launch(main)
