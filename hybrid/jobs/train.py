"""``hybrid train`` (``train.py``): check the config, build data and model, fit, test the best
checkpoint, record. ``experiment=sewerml_two_stage`` runs the two-stage recipe instead
(:mod:`hybrid.jobs.two_stage`)."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from hybrid.data.loaders import SPLITS, DataModule
from hybrid.engine import distributed
from hybrid.engine.checkpoint import CheckpointRecord, CheckpointSaver
from hybrid.engine.distributed import worker_hydra_overrides
from hybrid.engine.evaluation import final_evaluation, validate
from hybrid.engine.outputs import report_skipped, write_json
from hybrid.engine.resume import resumed_config
from hybrid.engine.runtime import Runtime, configure_process, seed_everything
from hybrid.engine.trainer import Trainer
from hybrid.errors import TrainingInterrupted
from hybrid.jobs.app import HydraJob, started_as
from hybrid.jobs.schema import TrainSettings, check_train_config
from hybrid.jobs.two_stage import run_two_stage
from hybrid.metrics import check_threshold_classes, prefixed, tune_threshold, tune_thresholds_per_class
from hybrid.models import build_model, flops_per_image, format_parameter_report, parameter_report
from hybrid.models.schema import model_tag
from hybrid.tracking import Tracker, build_tracker, tracked
from hybrid.tracking.media import report_evaluation
from hybrid.tracking.run_info import command_line, system_info
from hybrid.tracking.training_hook import TrackerHook
from hybrid.util import ranks
from hybrid.util.hydra_job import command_line_overrides
from hybrid.util.hydra_job import run_dir as hydra_run_dir
from hybrid.util.logs import RankedLogger
from hybrid.util.ranks import rank_zero_only

log = RankedLogger(__name__)


def resume_command(ckpt: Path) -> str:
    """The command that resumes this job from ``ckpt``: same script, launcher and overrides."""
    overrides = [o for o in command_line_overrides() if not o.startswith(("ckpt_path=", "+ckpt_path="))]
    words = [*started_as(), f"ckpt_path={Path(ckpt).resolve()}", *overrides]
    return " ".join(shlex.quote(w) for w in words)


def tune_on_validation(
    model, data: DataModule, runtime: Runtime, monitor: str, tuning, *, progress: bool
) -> float | list[float]:
    """The decision threshold that maximizes the monitored metric on the validation split, or with
    ``tuning=per_class`` each class's own (best F2 or F1 of that class)."""
    val = validate(model, data.loader("val"), data.spec, runtime, desc="tune threshold", progress=progress)
    probs, targets, metric = val.predictions.probs, val.predictions.targets, monitor.removeprefix("val/")
    if tuning == "per_class":
        thresholds = tune_thresholds_per_class(probs, targets, data.spec, metric)
        shown = ", ".join(f"{c} {t:.2f}" for c, t in zip(data.spec.class_names, thresholds, strict=True))
        log.info("tuned per-class thresholds on validation (the 0.5 figures stay the reference): %s", shown)
        return thresholds
    threshold = tune_threshold(probs, targets, data.spec, metric)
    log.info("tuned threshold %.2f on validation for %s (the 0.5 figures stay the reference)", threshold, monitor)
    return threshold


def shared_run_dir(cfg: DictConfig, resume: CheckpointRecord | None) -> Path:
    """The run dir: the resumed run's, or rank 0's Hydra run dir (other ranks create none)."""
    if resume:
        return CheckpointSaver.run_dir_of(cfg.ckpt_path)
    return Path(ranks.broadcast_object(rank_zero_only(hydra_run_dir)(cfg)))


def resume_hydra_overrides(arguments: list[str]) -> list[str]:
    """Hydra overrides that make a resumed run (``ckpt_path=<run>/checkpoints/last.pt`` on the
    command line) one run in one place: its log appends to the original run dir's ``train.log`` and
    its composed config goes beside the first one (``.hydra/resumed_<time>/``); no new run dir.
    Appended after the user's own, so they win over a ``hydra.run.dir`` given too."""
    values = [a.split("=", 1)[1] for a in arguments if a.startswith(("ckpt_path=", "+ckpt_path="))]
    multirun = any(a in ("-m", "--multirun") for a in arguments)
    if not values or not values[-1] or values[-1] == "null" or multirun or not Path(values[-1]).expanduser().is_file():
        return []
    run_dir = CheckpointSaver.run_dir_of(values[-1])
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    return [f"hydra.run.dir={run_dir}", f"hydra.output_subdir=.hydra/resumed_{stamp}"]


def train(cfg: DictConfig, overrides: list[str] | None = None) -> float:
    """Train, test the best checkpoint, write ``metrics.json``; return the best monitored value.

    With ``ckpt_path`` the run continues with the checkpoint's saved config
    (:func:`~hybrid.engine.resume.resumed_config`), checked against ``overrides``: those that
    composed ``cfg`` (by default the command line's; a caller composing ``cfg`` itself passes its own).

    With ``trainer=ddp`` under ``torchrun`` every process runs this; rank 0 writes the files.
    """
    typed = check_train_config(cfg)  # the command line's own mistakes first (a typo, ckpt_path with init_from)
    resume = CheckpointRecord.load(cfg.ckpt_path) if cfg.ckpt_path else None
    if resume:
        given = command_line_overrides() if overrides is None else overrides
        cfg = resumed_config(cfg, resume.config, given, str(cfg.ckpt_path))
        typed = check_train_config(cfg)
    settings = typed.trainer
    runtime = Runtime.from_config(settings)
    info = distributed.init_distributed(settings.strategy, settings.backend, runtime.device)
    try:
        if info.enabled:
            if runtime.device.type == "cuda":
                runtime.device = torch.device("cuda", info.local_rank)
            log.info(
                "DDP over %s: %d process%s, data.batch_size=%d per process",
                info.backend, info.world_size, "" if info.world_size == 1 else "es", typed.data.batch_size,
            )  # fmt: skip
        return _train(cfg, typed, runtime, resume)
    except TrainingInterrupted as err:
        command = resume_command(err.checkpoint)
        raise TrainingInterrupted(f"{err} Resume with: {command}", err.exit_code, err.checkpoint) from err
    finally:
        distributed.cleanup()


def start_from_weights(model: torch.nn.Module, path: str, model_config: dict) -> None:
    """``init_from``: every weight of another run's checkpoint that fits ``model`` (a fresh
    optimizer and schedule follow); the log names those left at their initial values. The
    checkpoint's layer sizes (a pruned model's) apply only when it was trained with ``model_config``."""
    record = CheckpointRecord.load(path, key="init_from")
    same = "model" not in record.config or record.config["model"] == model_config  # no config: a bare record
    if not same:
        log.info("init_from=%s: another model config than this run's; only the weights that fit are loaded", path)
    left_out = record.load_fitting_weights(model, same_architecture=same)
    kept = len(model.state_dict()) - len(left_out)
    log.info("init_from=%s: %d of %d weights loaded", path, kept, len(model.state_dict()))
    if left_out:
        shown = ", ".join(left_out[:10]) + (f" and {len(left_out) - 10} more" if len(left_out) > 10 else "")
        log.warning("init_from: %d weights do not fit and keep their initial values: %s", len(left_out), shown)


def _train(cfg: DictConfig, typed: TrainSettings, runtime: Runtime, resume: CheckpointRecord | None) -> float:
    settings = typed.trainer
    run_dir = shared_run_dir(cfg, resume)
    if resume:
        log.info("==== resumed in %s from %s: %s ====", run_dir, cfg.ckpt_path, command_line())
    seed_everything(int(cfg.seed))
    configure_process(settings.num_threads)
    # Rank 0 first, so only one process generates synthetic data.
    data = ranks.rank_zero_first(
        lambda: DataModule(typed.data, int(cfg.seed), device=runtime.device, channels_last=runtime.channels_last)
    )
    for split in SPLITS:  # read and check every label CSV now, not after hours of training
        data.frame(split)
    for note in data.label_notes():
        log.warning("%s", note)
    negative = f" (negative class: {data.spec.negative_class})" if data.spec.negative_class else ""
    log.info("data: %s, task %s, classes %s%s", data.root, data.spec.task, list(data.spec.class_names), negative)
    check_threshold_classes(data.spec, settings.tune_threshold)
    model = build_model(cfg.model, data.spec.num_labels)
    if cfg.init_from and not resume:
        start_from_weights(model, str(cfg.init_from), OmegaConf.to_container(cfg.model, resolve=True))
    params = parameter_report(model)
    flops = flops_per_image(model, int(cfg.model.img_size), int(cfg.model.in_channels))
    log.info("%s\n%.3f GFLOPs per image", format_parameter_report(params), flops / 1e9)
    model = runtime.prepare(model)
    seed_everything(int(cfg.seed) + ranks.rank())  # same initial weights, own random streams
    tags = [data.spec.task, model_tag(cfg.model)]
    resume_id = resume.tracker_run_id if resume else None
    # Only rank 0 talks to W&B; the others get the no-op tracker.
    tracker = rank_zero_only(build_tracker)(cfg, run_dir, "train", tags, settings.monitor, resume_id) or Tracker()
    with tracked(tracker):
        system = {**system_info(runtime.device), "flops_per_image": flops}
        tracker.log_summary({**prefixed(params, "params"), **prefixed(system, "system")})
        trainer = Trainer(
            model, data, runtime, run_dir, settings=settings, config=OmegaConf.to_container(cfg, resolve=True),
            hooks=[TrackerHook(tracker, data.spec, runtime, settings.monitor)], tracker_run_id=tracker.run_id,
        )  # fmt: skip
        fit = trainer.fit(resume)
        progress = trainer.progress
        saver = CheckpointSaver(run_dir)
        CheckpointRecord.load(saver.best).load_weights_into(model, saver.best)
        threshold = None
        if settings.tune_threshold:
            threshold = tune_on_validation(
                model, data, runtime, settings.monitor, settings.tune_threshold, progress=progress
            )
            saver.record_threshold(threshold)
        test_set = data.dataset("test")
        test = final_evaluation(
            model, data.loader("test", test_set), data.spec, runtime, run_dir,
            tuned_threshold=threshold, progress=progress,
        )  # fmt: skip
        report_evaluation(tracker, "test", test, test_set, data.spec, run_dir)
        tracker.log_checkpoints(
            {"best": saver.best, "latest": saver.best if fit.best_epoch == fit.last_epoch else saver.last},
            {"monitor": settings.monitor, "best_value": fit.best_value, "best_epoch": fit.best_epoch},
        )
        missing = fit.missing | set(test_set.missing)
        skipped = fit.skipped | missing | set(test.predictions.skipped)
        line = rank_zero_only(report_skipped)(run_dir / "skipped.csv", missing, skipped - missing)
        if line:
            log.warning("%s", line)
        metrics = {
            f"{settings.monitor}_best": fit.best_value,
            "best_epoch": fit.best_epoch,
            **prefixed(test.metrics, "test"),
            "train/images_per_s": fit.images_per_s,
            "data/skipped_images": len(skipped),
            "model/params": params["total"],
            "model/gflops": flops / 1e9,
        }
        rank_zero_only(write_json)(run_dir / "metrics.json", metrics)
        tracker.log_summary(metrics)
        log.info(
            "test: accuracy %.4f  f1_macro %.4f  (%d images; computed on %s)  best %s %.4f at epoch %d",
            metrics["test/accuracy"], metrics["test/f1_macro"], metrics["test/num_samples"], runtime.computed_in,
            settings.monitor, fit.best_value, fit.best_epoch,
        )  # fmt: skip
        log.info("results in %s", run_dir)
    return fit.best_value


def train_or_recipe(cfg: DictConfig) -> float:
    """The train job's task: one training, or (``two_stage`` set, ``experiment=sewerml_two_stage``)
    two trainings and their combination. Returns the best monitored validation value (a two-stage
    run: its test F2-CIW), for sweepers."""
    return run_two_stage(cfg) if cfg.two_stage is not None else train(cfg)


def launch_overrides(argv: list[str]) -> list[str]:
    """Under torchrun, ranks > 0 share rank 0's run dir (user overrides win); a resumed run stays
    in its run dir."""
    workers = worker_hydra_overrides()
    return [*workers, *argv] if workers else [*argv, *resume_hydra_overrides(argv)]


main = HydraJob("train", train_or_recipe, extra_overrides=launch_overrides)

if __name__ == "__main__":
    sys.exit(main())
