"""The Sewer-ML benchmark's two-stage recipe as one run: train a binary Normal/Defect model, train
a multi-label model on defective images only, and score their combination on the test split.

``python train.py experiment=sewerml_two_stage [overrides]`` runs it (``two_stage`` set). Each
stage is an ordinary training run in ``<run>/<stage>/``, composed from the stage's overrides in
``two_stage.<stage>`` followed by the command line's own (so ``data=...``, ``trainer.max_epochs=...``
apply to both); the combination is an ordinary inference run in ``<run>`` itself
(``predictions.csv``, ``metrics.json`` with ``test/sewerml/*``). Running the same command again
with ``hydra.run.dir=<run>`` reuses a finished stage and resumes an interrupted one.
"""

from __future__ import annotations

import logging
import os
import shlex
from pathlib import Path

from hydra import compose
from omegaconf import DictConfig, OmegaConf

from hybrid.engine.checkpoint import CheckpointSaver
from hybrid.errors import ConfigError, TrainingInterrupted
from hybrid.infer import infer
from hybrid.train import started_as, train
from hybrid.util.hydra_job import command_line_overrides, override_key
from hybrid.util.hydra_job import run_dir as hydra_run_dir

log = logging.getLogger(__name__)

# The stages in the order they run: a binary screen, then the multi-label model it gates.
STAGES = ("binary", "defect")
# Command-line keys that belong to the two-stage run itself, not to a stage.
OWN_KEYS = ("experiment", "two_stage", "hydra", "ckpt_path")
# Command-line keys the combining inference run takes too (where results go, how they are logged).
INFERENCE_KEYS = ("logger", "paths", "progress_bar")


def _belongs(override: str, keys: tuple[str, ...]) -> bool:
    key = override_key(override)
    return any(key == k or key.startswith(k + ".") for k in keys)


def stage_overrides(cfg: DictConfig, stage: str, command_line: list[str]) -> list[str]:
    """A stage's training overrides: ``two_stage.<stage>``, then the command line's own."""
    own = [str(o) for o in cfg.two_stage[stage]]
    return [*own, *(o for o in command_line if not _belongs(o, OWN_KEYS))]


def train_stage(cfg: DictConfig, stage: str, run_dir: Path, command_line: list[str]) -> Path:
    """Train one stage in ``run_dir/stage`` (or reuse it when it finished, resume it when it was
    interrupted); returns its best checkpoint."""
    stage_dir = run_dir / stage
    saver = CheckpointSaver(stage_dir)
    best = saver.best
    if (stage_dir / "metrics.json").is_file() and best.is_file():
        log.info("two-stage: %s stage already trained in %s; reusing it", stage, stage_dir)
        return best
    overrides = [*stage_overrides(cfg, stage, command_line), f"paths.output_dir={stage_dir}"]
    if saver.last.is_file():
        overrides.append(f"ckpt_path={saver.last}")
    stage_cfg = compose(config_name="train", overrides=overrides)
    stage_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(stage_cfg, stage_dir / "config.yaml")  # what this stage was, beside its results
    log.info("==== two-stage: %s stage in %s: %s ====", stage, stage_dir, " ".join(overrides))
    train(stage_cfg, overrides)
    return best


def check_two_stage(cfg: DictConfig) -> None:
    """``two_stage`` names an override list per stage and a strategy; one process runs it."""
    missing = [s for s in STAGES if not OmegaConf.is_list(cfg.two_stage[s]) or not cfg.two_stage[s]]
    if missing:
        raise ConfigError(f"two_stage.{missing[0]} must list the overrides of that stage, e.g. [experiment=...]")
    if int(os.environ.get("WORLD_SIZE", 1)) > 1:  # torchrun: each process would run every stage
        raise ConfigError("experiment=sewerml_two_stage runs its stages one after the other: start it with python")


def run_two_stage(cfg: DictConfig) -> float:
    """Train both stages, then score their combination (``two_stage.strategy``) on the test split of
    the defect stage's data; returns the combination's test F2-CIW."""
    check_two_stage(cfg)
    run_dir = hydra_run_dir(cfg)
    command_line = command_line_overrides()
    checkpoints = {}
    try:
        for stage in STAGES:
            checkpoints[stage] = train_stage(cfg, stage, run_dir, command_line)
    except TrainingInterrupted as err:
        again = [*(o for o in command_line if not _belongs(o, ("hydra.run.dir",))), f"hydra.run.dir={run_dir}"]
        command = " ".join(shlex.quote(w) for w in [*started_as(), *again])
        raise TrainingInterrupted(
            f"{err.__cause__ or err} Resume with: {command}", err.exit_code, err.checkpoint
        ) from err
    overrides = [
        f"ckpt_path={checkpoints['defect']}",
        f"binary_ckpt_path={checkpoints['binary']}",
        f"two_stage.strategy={cfg.two_stage.strategy}",
        f"paths.output_dir={run_dir}",
        *(o for o in command_line if _belongs(o, INFERENCE_KEYS) and not _belongs(o, ("paths.output_dir",))),
    ]
    log.info("==== two-stage: combining the stages (%s) on the test split ====", cfg.two_stage.strategy)
    metrics = infer(compose(config_name="infer", overrides=overrides), data_overrides=[])
    log.info("two-stage results in %s (stages in %s)", run_dir, ", ".join(str(run_dir / s) for s in STAGES))
    return float(metrics.get("test/f2_ciw", float("nan")))
