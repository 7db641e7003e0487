"""Inference run: rebuild a model from its checkpoint alone and predict a test split or a folder."""

from __future__ import annotations

import logging

from omegaconf import DictConfig, OmegaConf, open_dict

from hybrid.cli import command_line_overrides
from hybrid.cli import run_dir as hydra_run_dir
from hybrid.data.labels import resolve_label_spec
from hybrid.data.loaders import DataModule, folder_dataset, make_loader
from hybrid.engine.checkpoint import load_checkpoint, load_model_weights
from hybrid.engine.evaluation import test_model
from hybrid.engine.outputs import write_json
from hybrid.engine.runtime import Runtime, configure_threads, peak_memory_mb
from hybrid.errors import ConfigError
from hybrid.metrics import prefixed
from hybrid.models import build_model
from hybrid.tracking import build_tracker

log = logging.getLogger(__name__)


def inference_data_config(trained: DictConfig, cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """The data config the checkpoint was trained with, with this command line's ``data.*`` applied.

    Choosing a data group outright (``data=sewerml``) replaces it whole.
    """
    keys = [o.split("=", 1)[0].lstrip("+~") for o in overrides]
    if "data" in keys:
        return cfg.data
    data = OmegaConf.create(OmegaConf.to_container(trained.data, resolve=True))
    for key in keys:
        if key.startswith("data."):
            OmegaConf.update(data, key.removeprefix("data."), OmegaConf.select(cfg, key), merge=False)
    return data


def infer(cfg: DictConfig) -> dict:
    """Predict with ``ckpt_path``: the trained test split by default, or every image of ``input``."""
    if not cfg.get("ckpt_path"):
        raise ConfigError("ckpt_path is required: python infer.py ckpt_path=<run>/checkpoints/best.pt")
    payload = load_checkpoint(cfg.ckpt_path)
    trained = OmegaConf.create(payload["config"])
    with open_dict(cfg):
        cfg.model = trained.model  # data keys such as img_size interpolate the model's
    data_cfg = inference_data_config(trained, cfg, command_line_overrides())
    run_dir = hydra_run_dir(cfg)
    configure_threads(cfg.num_threads)
    runtime = Runtime(
        cfg.device or trained.trainer.device,
        cfg.precision or trained.trainer.precision,
        trained.trainer.channels_last,
        cfg.progress_bar,
    )
    class_names = list(payload["class_names"])
    model = build_model(trained.model, len(class_names))
    load_model_weights(model, payload, cfg.ckpt_path)
    model = runtime.prepare(model)
    seed = int(trained.seed)
    if cfg.get("input"):
        spec = resolve_label_spec(payload["task"], data_cfg.label_columns, class_names)
        dataset = folder_dataset(data_cfg, cfg.input)
        loader, labelled, source = make_loader(dataset, data_cfg, False, seed), False, str(cfg.input)
    else:
        data = DataModule(data_cfg, seed, class_names)
        spec, dataset = data.spec, data.dataset("test")
        loader, labelled, source = data.loader("test", dataset), True, str(data.csv_path("test"))
    log.info("predicting %d images from %s with %s", len(dataset), source, cfg.ckpt_path)
    tracker = build_tracker(cfg.logger, run_dir, OmegaConf.to_container(cfg, resolve=True), "infer")
    exit_code = 1
    try:
        result = test_model(model, loader, spec, runtime, run_dir, labelled)
        metrics = {
            **prefixed(result.metrics, "test"),
            "infer/num_images": len(result.names),
            "infer/latency_ms_per_image": result.predictions.latency_ms,
            "infer/peak_memory_mb": peak_memory_mb(runtime.device),
            "data/skipped_images": len(set(dataset.missing) | set(result.predictions.skipped)),
        }
        write_json(run_dir / "metrics.json", metrics)
        tracker.log_summary(metrics)
        if labelled:
            log.info(
                "test: accuracy %.4f  f1_macro %.4f  (%d images)",
                metrics["test/accuracy"], metrics["test/f1_macro"], metrics["test/num_samples"],
            )  # fmt: skip
        log.info(
            "forward latency %.2f ms/image (batch %d, %s, %s), peak memory %.0f MB",
            metrics["infer/latency_ms_per_image"], int(data_cfg.batch_size), runtime.device,
            runtime.precision, metrics["infer/peak_memory_mb"],
        )  # fmt: skip
        log.info("predictions in %s", run_dir / "predictions.csv")
        exit_code = 0
    finally:
        tracker.finish(exit_code)
    return metrics
