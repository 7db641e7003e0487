"""Training run: check config, build data and model, fit, test the best checkpoint, record."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from omegaconf import DictConfig

from hybrid.cli import run_dir as hydra_run_dir
from hybrid.config import check_train_config
from hybrid.data.loaders import SPLITS, DataModule
from hybrid.engine import distributed
from hybrid.engine.checkpoint import load_checkpoint, load_model_weights, save_checkpoint
from hybrid.engine.evaluation import evaluate, test_model
from hybrid.engine.outputs import write_json
from hybrid.engine.runtime import Runtime, configure_threads, seed_everything
from hybrid.engine.trainer import Trainer
from hybrid.metrics import prefixed, tune_threshold
from hybrid.models import build_model, flops_per_image, format_parameter_report, parameter_report
from hybrid.tracking import Tracker, build_tracker
from hybrid.tracking.media import report_evaluation
from hybrid.tracking.run_info import system_info

log = logging.getLogger(__name__)


def runtime_from(trainer_cfg: DictConfig, data_cfg: DictConfig | None = None) -> Runtime:
    """The :class:`Runtime` described by a ``trainer`` config (batches prepared as ``data_cfg`` says)."""
    return Runtime(
        trainer_cfg.device, trainer_cfg.precision, trainer_cfg.channels_last, trainer_cfg.progress_bar,
        trainer_cfg.get("compile", False), data_cfg,
    )  # fmt: skip


def tune_on_validation(model, data: DataModule, runtime: Runtime, monitor: str) -> float:
    """The decision threshold that maximizes the monitored metric on the validation split."""
    val = evaluate(model, data.loader("val"), data.spec, runtime, label="tune threshold")
    threshold = tune_threshold(val.predictions.probs, val.predictions.targets, data.spec, monitor.removeprefix("val/"))
    log.info("tuned threshold %.2f on validation for %s (the 0.5 figures stay the reference)", threshold, monitor)
    return threshold


def shared_run_dir(cfg: DictConfig, resume: dict | None) -> Path:
    """The run dir: the resumed run's, or rank 0's Hydra run dir (other ranks create none)."""
    if resume:
        return Path(cfg.ckpt_path).resolve().parent.parent
    return Path(distributed.broadcast_object(str(hydra_run_dir(cfg)) if distributed.is_rank_zero() else None))


def shared_data(cfg: DictConfig) -> DataModule:
    """The data module; under DDP rank 0 goes first, so only one process generates synthetic data."""
    if not distributed.is_rank_zero():
        distributed.barrier()
    data = DataModule(cfg.data, int(cfg.seed))
    if distributed.is_rank_zero():
        distributed.barrier()
    return data


def train(cfg: DictConfig) -> float:
    """Train, test the best checkpoint, write ``metrics.json``; return the best monitored value.

    With ``trainer=ddp`` under ``torchrun`` every process runs this; rank 0 writes the files.
    """
    check_train_config(cfg)
    runtime = runtime_from(cfg.trainer, cfg.data)
    info = distributed.init_distributed(cfg.trainer.strategy, cfg.trainer.backend, runtime.device)
    try:
        if info.enabled:
            if runtime.device.type == "cuda":
                runtime.device = torch.device("cuda", info.local_rank)
            runtime.progress = runtime.progress and info.rank == 0
            log.info("DDP: %d processes, data.batch_size=%d per process", info.world_size, cfg.data.batch_size)
        return _train(cfg, runtime)
    finally:
        distributed.cleanup()


def _train(cfg: DictConfig, runtime: Runtime) -> float:
    resume = load_checkpoint(cfg.ckpt_path) if cfg.get("ckpt_path") else None
    run_dir = shared_run_dir(cfg, resume)
    if resume:
        log.info("resuming the run in %s", run_dir)
    seed_everything(int(cfg.seed))
    configure_threads(cfg.trainer.num_threads)
    data = shared_data(cfg)
    for split in SPLITS:  # read and check every label CSV now, not after hours of training
        data.frame(split)
    log.info("data: %s, task %s, classes %s", data.root, data.spec.task, list(data.spec.class_names))
    model = build_model(cfg.model, data.spec.num_labels)
    params = parameter_report(model)
    flops = flops_per_image(model, int(cfg.model.img_size), int(cfg.model.in_channels))
    log.info("%s\n%.3f GFLOPs per image", format_parameter_report(params), flops / 1e9)
    model = runtime.prepare(model)
    seed_everything(int(cfg.seed) + distributed.rank())  # same initial weights, own random streams
    tracker = Tracker()  # only rank 0 talks to W&B
    if distributed.is_rank_zero():
        tags = [data.spec.task, str(cfg.model.backbone)]
        resume_id = resume.get("wandb_run_id") if resume else None
        tracker = build_tracker(cfg, run_dir, "train", tags, cfg.trainer.monitor, resume_id)
    exit_code = 1
    try:
        system = {**system_info(runtime.device), "flops_per_image": flops}
        tracker.log_summary({**prefixed(params, "params"), **prefixed(system, "system")})
        fit = Trainer(cfg, model, data, runtime, tracker, run_dir).fit(resume)
        best_path = run_dir / "checkpoints" / "best.pt"
        best = load_checkpoint(best_path)
        load_model_weights(model, best, best_path)
        threshold = None
        if cfg.trainer.tune_threshold:
            threshold = tune_on_validation(model, data, runtime, cfg.trainer.monitor)
            if distributed.is_rank_zero():
                save_checkpoint(best_path, {**best, "threshold": threshold})
        test_set = data.dataset("test")
        test = test_model(model, data.loader("test", test_set), data.spec, runtime, run_dir, tuned_threshold=threshold)
        report_evaluation(tracker, "test", test, test_set, data.spec, run_dir)
        last_path = run_dir / "checkpoints" / "last.pt"
        tracker.log_checkpoints(
            {"best": best_path, "latest": best_path if fit.best_epoch == fit.last_epoch else last_path},
            {"monitor": cfg.trainer.monitor, "best_value": fit.best_value, "best_epoch": fit.best_epoch},
        )
        skipped = fit.skipped | set(test_set.missing) | set(test.predictions.skipped)
        if skipped and distributed.is_rank_zero():
            log.warning("skipped %d unreadable or missing images: %s", len(skipped), sorted(skipped)[:20])
        metrics = {
            f"{cfg.trainer.monitor}_best": fit.best_value,
            "best_epoch": fit.best_epoch,
            **prefixed(test.metrics, "test"),
            "train/images_per_s": fit.images_per_s,
            "data/skipped_images": len(skipped),
        }
        if distributed.is_rank_zero():
            write_json(run_dir / "metrics.json", metrics)
        tracker.log_summary(metrics)
        log.info(
            "test: accuracy %.4f  f1_macro %.4f  (%d images)  best %s %.4f at epoch %d",
            metrics["test/accuracy"], metrics["test/f1_macro"], metrics["test/num_samples"],
            cfg.trainer.monitor, fit.best_value, fit.best_epoch,
        )  # fmt: skip
        log.info("results in %s", run_dir)
        exit_code = 0
    finally:
        tracker.finish(exit_code)
    return fit.best_value
