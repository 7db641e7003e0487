"""The Hydra apps of ``train.py`` and ``infer.py``, here so that ``hybrid train`` / ``hybrid infer``
(:mod:`hybrid.commands`) and the two thin scripts at the repository's root run the same thing,
with the configs the package ships (``hybrid/conf``, which is ``conf/``)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from hybrid.engine.distributed import worker_hydra_overrides
from hybrid.infer import infer
from hybrid.train import resume_hydra_overrides, train
from hybrid.two_stage import run_two_stage
from hybrid.util.entry import run_entry, run_hydra_app


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def train_app(cfg: DictConfig) -> float:
    """Returns the best monitored validation value (a two-stage run: its test F2-CIW), for sweepers."""
    two_stage = cfg.two_stage is not None  # experiment=sewerml_two_stage: two trainings and their combination
    return run_entry(run_two_stage if two_stage else train, cfg)


@hydra.main(version_base="1.3", config_path="conf", config_name="infer")
def infer_app(cfg: DictConfig) -> None:
    run_entry(infer, cfg)


def train_main(argv: list[str], prog: str = "hybrid train") -> int:
    """``hybrid train`` (``prog``: how it was started, ``train.py`` for the script, for the resume
    command it prints): under torchrun, ranks > 0 share rank 0's run dir (user overrides win); a
    resumed run stays in its run dir."""
    workers = worker_hydra_overrides()
    argv = [*workers, *argv] if workers else [*argv, *resume_hydra_overrides(argv)]
    return run_hydra_app(train_app, prog, argv)


def infer_main(argv: list[str], prog: str = "hybrid infer") -> int:
    """``hybrid infer`` (``prog``: ``infer.py`` for the script)."""
    return run_hydra_app(infer_app, prog, argv)
