"""Training run: check config, build data and model, fit, test the best checkpoint, record."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from hybrid.cli import run_dir as hydra_run_dir
from hybrid.config import check_train_config
from hybrid.data.loaders import SPLITS, DataModule
from hybrid.engine.checkpoint import load_checkpoint, load_model_weights, save_checkpoint
from hybrid.engine.evaluation import evaluate, test_model
from hybrid.engine.outputs import write_json
from hybrid.engine.runtime import Runtime, configure_threads, seed_everything
from hybrid.engine.trainer import Trainer
from hybrid.metrics import prefixed, tune_threshold
from hybrid.models import build_model, format_parameter_report, parameter_report
from hybrid.tracking import build_tracker

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


def train(cfg: DictConfig) -> float:
    """Train, test the best checkpoint, write ``metrics.json``; return the best monitored value."""
    check_train_config(cfg)
    resume = load_checkpoint(cfg.ckpt_path) if cfg.get("ckpt_path") else None
    run_dir = Path(cfg.ckpt_path).resolve().parent.parent if resume else hydra_run_dir(cfg)
    if resume:
        log.info("resuming the run in %s", run_dir)
    seed_everything(int(cfg.seed))
    configure_threads(cfg.trainer.num_threads)
    runtime = runtime_from(cfg.trainer, cfg.data)
    data = DataModule(cfg.data, int(cfg.seed))
    for split in SPLITS:  # read and check every label CSV now, not after hours of training
        data.frame(split)
    log.info("data: %s, task %s, classes %s", data.root, data.spec.task, list(data.spec.class_names))
    model = build_model(cfg.model, data.spec.num_labels)
    params = parameter_report(model)
    log.info(format_parameter_report(params))
    model = runtime.prepare(model)
    tracker = build_tracker(cfg.logger, run_dir, OmegaConf.to_container(cfg, resolve=True), "train")
    exit_code = 1
    try:
        tracker.log_summary(prefixed(params, "params"))
        fit = Trainer(cfg, model, data, runtime, tracker, run_dir).fit(resume)
        best_path = run_dir / "checkpoints" / "best.pt"
        best = load_checkpoint(best_path)
        load_model_weights(model, best, best_path)
        threshold = None
        if cfg.trainer.tune_threshold:
            threshold = tune_on_validation(model, data, runtime, cfg.trainer.monitor)
            save_checkpoint(best_path, {**best, "threshold": threshold})
        test_set = data.dataset("test")
        test = test_model(model, data.loader("test", test_set), data.spec, runtime, run_dir, tuned_threshold=threshold)
        skipped = fit.skipped | set(test_set.missing) | set(test.predictions.skipped)
        if skipped:
            log.warning("skipped %d unreadable or missing images: %s", len(skipped), sorted(skipped)[:20])
        metrics = {
            f"{cfg.trainer.monitor}_best": fit.best_value,
            "best_epoch": fit.best_epoch,
            **prefixed(test.metrics, "test"),
            "train/images_per_s": fit.images_per_s,
            "data/skipped_images": len(skipped),
        }
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
