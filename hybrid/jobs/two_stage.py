"""The Sewer-ML benchmark's two-stage recipe as one run: train a binary Normal/Defect model, train
a multi-label model on defective images only, and score their combination on the test split.

``hybrid train experiment=sewerml_two_stage [overrides]`` runs it (``two_stage`` set; its keys are
:class:`TwoStagePlan`, which the experiment extends). The recipe is made of the jobs a user runs,
each a process of its own:

- per stage, ``hybrid train <two_stage.<stage>> <the command line's overrides>`` in
  ``<run>/<stage>/`` (so ``data=...``, ``trainer.max_epochs=...`` apply to both);
- then ``hybrid infer ckpt_path=<defect> binary_ckpt_path=<binary> two_stage.strategy=...`` in
  ``<run>`` itself (``predictions.csv``, ``metrics.json`` with ``test/sewerml/*``; its config in
  ``.hydra/combine/``).

Running the same command again with ``hydra.run.dir=<run>`` reuses a finished stage and resumes an
interrupted one. SIGTERM / Ctrl-C reach the running stage once (it checkpoints and stops), and the
run stops with the command that resumes it.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

from omegaconf import DictConfig

from hybrid.engine.checkpoint import CheckpointSaver
from hybrid.errors import ConfigError, HybridError, TrainingInterrupted
from hybrid.jobs.app import started_as
from hybrid.jobs.schema import TwoStagePlan
from hybrid.util.hydra_job import command_line_overrides, override_key
from hybrid.util.hydra_job import run_dir as hydra_run_dir
from hybrid.util.typed_config import typed_config

log = logging.getLogger(__name__)

# The stages in the order they run: a binary screen, then the multi-label model it gates.
STAGES = ("binary", "defect")
# Command-line keys that belong to the two-stage run itself, not to a stage.
OWN_KEYS = ("experiment", "two_stage", "hydra", "ckpt_path")
# Command-line keys the combining inference run takes too (where results go, how they are logged).
INFERENCE_KEYS = ("logger", "paths", "progress_bar")
# What a running stage is sent on, and the exit codes of a job stopped so after writing its
# checkpoint (128 + the signal).
INTERRUPTED_SIGNALS = (signal.SIGINT, signal.SIGTERM)
INTERRUPTED = tuple(128 + sig for sig in INTERRUPTED_SIGNALS)


class StageFailed(HybridError):
    """A stage's job ended with an error (it said why on its own)."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def _belongs(override: str, keys: tuple[str, ...]) -> bool:
    key = override_key(override)
    return any(key == k or key.startswith(k + ".") for k in keys)


def stage_overrides(plan: TwoStagePlan, stage: str, command_line: list[str]) -> list[str]:
    """A stage's training overrides: ``two_stage.<stage>``, then the command line's own."""
    return [*getattr(plan, stage), *(o for o in command_line if not _belongs(o, OWN_KEYS))]


def run_in_own_process(job: str, overrides: list[str]) -> int:
    """``hybrid <job> <overrides>`` in a process of its own (this Python), its output on this
    terminal; returns its exit code. It runs in its own session, so a Ctrl-C reaches it once, from
    here, like a SIGTERM: it checkpoints and stops."""
    command = [sys.executable, "-m", "hybrid.commands", job, *overrides]
    process = subprocess.Popen(command, start_new_session=True)
    forward = {sig: signal.signal(sig, lambda signum, _: process.send_signal(signum)) for sig in INTERRUPTED_SIGNALS}
    try:
        return process.wait()
    finally:
        for sig, handler in forward.items():
            signal.signal(sig, handler)


def train_stage(plan: TwoStagePlan, stage: str, run_dir: Path, command_line: list[str]) -> Path:
    """Train one stage in ``run_dir/stage`` (or reuse it when it finished, resume it when it was
    interrupted); returns its best checkpoint."""
    stage_dir = run_dir / stage
    saver = CheckpointSaver(stage_dir)
    if (stage_dir / "metrics.json").is_file() and saver.best.is_file():
        log.info("two-stage: %s stage already trained in %s; reusing it", stage, stage_dir)
        return saver.best
    overrides = [*stage_overrides(plan, stage, command_line), f"hydra.run.dir={stage_dir}"]
    if saver.last.is_file():
        overrides.append(f"ckpt_path={saver.last}")
    log.info("==== two-stage: %s stage in %s: hybrid train %s ====", stage, stage_dir, " ".join(overrides))
    code = run_in_own_process("train", overrides)
    if code in INTERRUPTED:
        raise TrainingInterrupted(f"two-stage: the {stage} stage was interrupted.", code, saver.last)
    if code != 0:
        raise StageFailed(f"two-stage: the {stage} stage stopped (exit {code}); see {stage_dir}", code)
    return saver.best


def check_two_stage(cfg: DictConfig) -> TwoStagePlan:
    """``two_stage`` as a plan: an override list per stage and a strategy; one process runs it."""
    plan = typed_config(cfg.two_stage, TwoStagePlan, "two_stage")
    missing = [stage for stage in STAGES if not getattr(plan, stage)]
    if missing:
        raise ConfigError(f"two_stage.{missing[0]} must list the overrides of that stage, e.g. [experiment=...]")
    if int(os.environ.get("WORLD_SIZE", 1)) > 1:  # torchrun: each process would run every stage
        raise ConfigError("experiment=sewerml_two_stage runs its stages one after the other: start it with python")
    return plan


def combine(plan: TwoStagePlan, checkpoints: dict[str, Path], run_dir: Path, command_line: list[str]) -> None:
    """``hybrid infer`` of the two stages' combination on the defect stage's test split, in ``run_dir``."""
    overrides = [
        f"ckpt_path={checkpoints['defect']}",
        f"binary_ckpt_path={checkpoints['binary']}",
        f"two_stage.strategy={plan.strategy}",
        f"hydra.run.dir={run_dir}",
        "hydra.output_subdir=.hydra/combine",  # beside the two-stage run's own .hydra/
        *(o for o in command_line if _belongs(o, INFERENCE_KEYS) and not _belongs(o, ("paths.output_dir",))),
    ]
    log.info("==== two-stage: combining the stages (%s) on the test split ====", plan.strategy)
    code = run_in_own_process("infer", overrides)
    if code != 0:
        raise StageFailed(f"two-stage: combining the stages stopped (exit {code})", code)


def run_two_stage(cfg: DictConfig) -> float:
    """Train both stages, then score their combination (``two_stage.strategy``) on the test split of
    the defect stage's data; returns the combination's test F2-CIW."""
    plan = check_two_stage(cfg)
    run_dir = hydra_run_dir(cfg)
    command_line = command_line_overrides()
    checkpoints = {}
    try:
        for stage in STAGES:
            checkpoints[stage] = train_stage(plan, stage, run_dir, command_line)
    except TrainingInterrupted as err:
        again = [*(o for o in command_line if not _belongs(o, ("hydra.run.dir",))), f"hydra.run.dir={run_dir}"]
        command = " ".join(shlex.quote(w) for w in [*started_as(), *again])
        raise TrainingInterrupted(f"{err} Resume with: {command}", err.exit_code, err.checkpoint) from err
    combine(plan, checkpoints, run_dir, command_line)
    log.info("two-stage results in %s (stages in %s)", run_dir, ", ".join(str(run_dir / s) for s in STAGES))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return float(metrics["test/f2_ciw"]) if "test/f2_ciw" in metrics else float("nan")
