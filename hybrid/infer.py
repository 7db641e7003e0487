"""Inference run: rebuild a model from its checkpoint alone and predict a test split or a folder."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from hybrid.data.dataset import ImageFileDataset
from hybrid.data.labels import resolve_label_spec
from hybrid.data.loaders import DataModule, eval_transform, folder_dataset, make_loader
from hybrid.engine.checkpoint import CheckpointRecord
from hybrid.engine.evaluation import final_evaluation, replace_normal_scores
from hybrid.engine.loop import predict
from hybrid.engine.outputs import report_skipped, write_json
from hybrid.engine.runtime import Runtime, configure_threads, peak_memory_mb
from hybrid.errors import ConfigError
from hybrid.metrics import THRESHOLD, prefixed
from hybrid.models import build_model
from hybrid.tracking import build_tracker
from hybrid.tracking.media import report_evaluation
from hybrid.util.hydra_job import command_line_overrides
from hybrid.util.hydra_job import run_dir as hydra_run_dir

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


def model_from_checkpoint(record: CheckpointRecord, ckpt_path: str, runtime: Runtime) -> torch.nn.Module:
    """Rebuild the model a loaded checkpoint describes, with its weights, on the runtime's device."""
    model = build_model(OmegaConf.create(record.config["model"]), len(record.class_names))
    record.load_weights_into(model, ckpt_path)
    return runtime.prepare(model)


def binary_defect_scores(cfg: DictConfig, dataset: ImageFileDataset, runtime: Runtime) -> Callable:
    """The first stage of two-stage inference: the binary model's Defect score for every image,
    computed with that model's own input size and normalization, and the rescoring it implies."""
    record = CheckpointRecord.load(cfg.binary_ckpt_path)
    trained = OmegaConf.create(record.config)
    if record.task != "binary":
        raise ConfigError(f"binary_ckpt_path={cfg.binary_ckpt_path} is a {record.task} model, not binary")
    own = ImageFileDataset(
        dataset.paths,
        dataset.names,
        dataset.targets,
        eval_transform(trained.data),
        trained.data.in_channels,
        dataset.on_bad_image,
        int(trained.data.img_size),
    )
    model = model_from_checkpoint(record, cfg.binary_ckpt_path, runtime)
    spec = resolve_label_spec("binary", None, record.class_names)
    loader = make_loader(
        own, trained.data, train=False, seed=0, device=runtime.device, channels_last=runtime.channels_last
    )
    stage_one = predict(model, loader, spec, runtime, desc="binary stage", progress=bool(cfg.progress_bar))
    defect = np.full(len(dataset), np.nan)
    defect[stage_one.indices] = stage_one.probs[:, 1]
    log.info(
        "two-stage: %d of %d images called normal by the binary model", int((defect < THRESHOLD).sum()), len(dataset)
    )
    return lambda preds: replace_normal_scores(preds.probs, defect[preds.indices])


def infer(cfg: DictConfig) -> dict:
    """Predict with ``ckpt_path``: the trained test split by default, or ``input`` (a folder of
    images, or one image). Images that are missing or cannot be read are named in the log and in
    ``skipped.csv``."""
    if OmegaConf.is_missing(cfg, "ckpt_path") or not cfg.ckpt_path:
        raise ConfigError("ckpt_path is required: python infer.py ckpt_path=<run>/checkpoints/best.pt")
    record = CheckpointRecord.load(cfg.ckpt_path)
    trained = OmegaConf.create(record.config)
    with open_dict(cfg):
        cfg.model = trained.model  # data keys such as img_size interpolate the model's
    data_cfg = inference_data_config(trained, cfg, command_line_overrides())
    run_dir = hydra_run_dir(cfg)
    configure_threads(cfg.num_threads)
    runtime = Runtime(
        cfg.device or trained.trainer.device,
        cfg.precision or trained.trainer.precision,
        channels_last=trained.trainer.channels_last,
        compile=trained.trainer.compile if cfg.compile is None else cfg.compile,
    )
    model = model_from_checkpoint(record, cfg.ckpt_path, runtime)
    class_names = list(record.class_names)
    seed = int(trained.seed)
    progress = bool(cfg.progress_bar)
    if cfg.input:
        spec = resolve_label_spec(record.task, data_cfg.label_columns, class_names)
        dataset = folder_dataset(data_cfg, cfg.input)
        loader = make_loader(
            dataset, data_cfg, train=False, seed=seed, device=runtime.device, channels_last=runtime.channels_last
        )
        labelled, source = False, str(cfg.input)
    else:
        data = DataModule(data_cfg, seed, class_names, device=runtime.device, channels_last=runtime.channels_last)
        labelled = data.has_labels("test")
        spec, dataset = data.spec, data.dataset("test")
        loader, source = data.loader("test", dataset), str(data.csv_path("test"))
        if not labelled:
            log.warning("%s has no label columns %s: predictions only, no metrics", source, list(spec.label_columns))
    rescore = None
    if cfg.binary_ckpt_path:
        if spec.single_label:
            raise ConfigError("binary_ckpt_path (two-stage inference) needs a multilabel model in ckpt_path")
        rescore = binary_defect_scores(cfg, dataset, runtime)
    log.info("predicting %d images from %s with %s", len(dataset), source, cfg.ckpt_path)
    tracker = build_tracker(cfg, run_dir, "infer", [spec.task, str(trained.model.backbone)])
    exit_code = 1
    try:
        result = final_evaluation(
            model, loader, spec, runtime, run_dir,
            labelled=labelled, tuned_threshold=record.threshold, rescore=rescore, progress=progress,
        )  # fmt: skip
        report_evaluation(tracker, "test", result, dataset, spec, run_dir)
        metrics = {
            **prefixed(result.metrics, "test"),
            "infer/num_images": len(result.names),
            "infer/latency_ms_per_image": result.predictions.latency_ms,
            "infer/peak_memory_mb": peak_memory_mb(runtime.device),
            "data/skipped_images": len(set(dataset.missing) | set(result.predictions.skipped)),
        }
        skipped = report_skipped(run_dir / "skipped.csv", dataset.missing, result.predictions.skipped)
        if skipped:
            log.warning("%s", skipped)
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
