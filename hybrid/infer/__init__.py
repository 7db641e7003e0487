"""Inference run: serve a model file alone (a checkpoint, or an ``.onnx`` exported from one) and
predict a test split, a folder of images, or inspection videos (:mod:`hybrid.infer.video`)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from omegaconf import DictConfig, OmegaConf, open_dict

from hybrid.data.config import trained_data_settings
from hybrid.data.dataset import ImageFileDataset
from hybrid.data.loaders import DataModule, folder_dataset, make_loader
from hybrid.data.schema import DataSchema
from hybrid.deploy.serving import ServedModel, ServingOptions, load_served_model
from hybrid.engine.evaluation import final_evaluation, two_stage_strategy
from hybrid.engine.loop import predict
from hybrid.engine.outputs import report_skipped, write_json
from hybrid.engine.runtime import configure_process, peak_memory_mb
from hybrid.errors import ConfigError
from hybrid.infer.config import InferSchema, infer_settings
from hybrid.infer.video import infer_videos
from hybrid.metrics import THRESHOLD, prefixed
from hybrid.models.config import model_tag
from hybrid.tracking import build_tracker
from hybrid.tracking.media import report_evaluation
from hybrid.util.hydra_job import command_line_overrides
from hybrid.util.hydra_job import run_dir as hydra_run_dir
from hybrid.util.schema import check_types
from hybrid.util.video import find_videos

log = logging.getLogger(__name__)


def check_input_size(data_cfg: DataSchema, served: ServedModel, role: str) -> None:
    """The data side must produce the images the model was built for (a ``data.img_size`` or
    ``data.in_channels`` override may not)."""
    model = served.trained.model
    wanted = (int(model.in_channels), int(model.img_size))
    given = (int(data_cfg.in_channels), int(data_cfg.img_size))
    if given != wanted:
        raise ConfigError(
            f"{role} takes {wanted[0]}-channel {wanted[1]}x{wanted[1]} images, but data.in_channels={given[0]} "
            f"and data.img_size={given[1]}"
        )


def binary_defect_scores(job: InferSchema, dataset: ImageFileDataset, options: ServingOptions) -> Callable:
    """The first stage of two-stage inference: the binary model's Defect score for every image,
    computed with that model's own input size and normalization (either format), and the
    rescoring ``two_stage.strategy`` makes of it."""
    combine = two_stage_strategy(job.two_stage.strategy)
    served = load_served_model(job.binary_ckpt_path, options)
    if served.task != "binary":
        raise ConfigError(f"binary_ckpt_path={job.binary_ckpt_path} is a {served.task} model, not binary")
    data = served.trained_data
    own = ImageFileDataset(
        dataset.files,
        dataset.targets,
        served.eval_transform(data),
        data.in_channels,
        dataset.on_bad_image,
        data.img_size,
    )
    runtime = served.runtime
    spec = served.label_spec(data)
    loader = make_loader(own, data, train=False, seed=0, device=runtime.device, channels_last=runtime.channels_last)
    stage_one = predict(served.model, loader, spec, runtime, desc="binary stage", progress=job.progress_bar)
    defect = np.full(len(dataset), np.nan)
    defect[stage_one.indices] = stage_one.probs[:, spec.positive_index]
    log.info(
        "two-stage (%s): %d of %d images called normal by the binary model",
        job.two_stage.strategy, int((defect < THRESHOLD).sum()), len(dataset),
    )  # fmt: skip
    return lambda preds: combine(preds.probs, defect[preds.indices])


def predict_videos(
    cfg: DictConfig, job: InferSchema, served: ServedModel, data_cfg: DataSchema, videos: list, run_dir
) -> dict:
    """``input=VIDEO``: timed defect events of every video (see :mod:`hybrid.infer.video`);
    ``cfg``, the whole composed config, is what the tracker records."""
    if job.binary_ckpt_path:
        raise ConfigError("binary_ckpt_path (two-stage inference) applies to images, not to input=VIDEO")
    spec = served.label_spec(data_cfg)
    tags = [spec.task, "video", model_tag(served.trained.model)]
    tracker = build_tracker(cfg, run_dir, "infer", tags)
    exit_code = 1
    try:
        metrics = infer_videos(
            job.video,
            served,
            data_cfg,
            spec,
            videos,
            run_dir,
            tracker,
            source=str(job.input),
            progress=job.progress_bar,
            survey=job.survey if job.survey.enabled else None,
        )
        exit_code = 0
    finally:
        tracker.finish(exit_code)
    return metrics


def infer(cfg: DictConfig, data_overrides: list[str] | None = None) -> dict:
    """Predict with ``ckpt_path`` (a checkpoint, or an ``.onnx`` exported from one): the trained
    test split by default, or ``input`` (a folder of images, or one image). Images that are missing
    or cannot be read are named in the log and in ``skipped.csv``.

    ``data_overrides``: the overrides whose ``data`` keys replace the trained data config's (by
    default the command line's; a caller composing ``cfg`` itself passes its own)."""
    if OmegaConf.is_missing(cfg, "ckpt_path") or not cfg.ckpt_path:
        raise ConfigError("ckpt_path is required: python infer.py ckpt_path=<run>/checkpoints/best.pt")
    check_types(cfg, InferSchema, "", resolve=False)
    job = infer_settings(cfg)  # the job's own keys, typed once
    two_stage_strategy(job.two_stage.strategy)  # a wrong name stops before any work
    videos = find_videos(job.input) if job.input else []  # so does a missing input
    configure_process(job.num_threads)
    options = ServingOptions.from_config(job)
    served = load_served_model(job.ckpt_path, options)
    trained = served.trained
    with open_dict(cfg):
        cfg.model = trained.model  # data keys such as img_size interpolate the model's
    overrides = command_line_overrides() if data_overrides is None else data_overrides
    data_cfg = trained_data_settings(trained.data, cfg, overrides)
    check_input_size(data_cfg, served, f"ckpt_path={job.ckpt_path}")
    run_dir = hydra_run_dir(cfg)
    model, runtime = served.model, served.runtime
    log.info("serving %s with %s", job.ckpt_path, served.description)
    class_names = list(served.class_names)
    seed = int(trained.seed)
    progress = job.progress_bar
    if videos:
        return predict_videos(cfg, job, served, data_cfg, videos, run_dir)
    if job.input:
        spec = served.label_spec(data_cfg)
        dataset = folder_dataset(data_cfg, job.input, served.eval_transform(data_cfg))
        loader = make_loader(
            dataset, data_cfg, train=False, seed=seed, device=runtime.device, channels_last=runtime.channels_last
        )
        labelled, source = False, job.input
    else:
        data = DataModule(
            data_cfg, seed, class_names, negative_class=served.label_spec(data_cfg).negative_class,
            device=runtime.device, channels_last=runtime.channels_last,
        )  # fmt: skip
        data.eval_transform = served.eval_transform(data_cfg)  # an .onnx file: the serving code's resize
        labelled = data.has_labels("test")
        spec, dataset = data.spec, data.dataset("test")
        loader, source = data.loader("test", dataset), str(data.csv_path("test"))
        if not labelled:
            log.warning("%s has no label columns %s: predictions only, no metrics", source, list(spec.label_columns))
    rescore = None
    if job.binary_ckpt_path:
        if spec.single_label:
            raise ConfigError("binary_ckpt_path (two-stage inference) needs a multilabel model in ckpt_path")
        rescore = binary_defect_scores(job, dataset, options)
    log.info("predicting %d images from %s with %s", len(dataset), source, job.ckpt_path)
    tracker = build_tracker(cfg, run_dir, "infer", [spec.task, model_tag(trained.model)])
    exit_code = 1
    try:
        result = final_evaluation(
            model, loader, spec, runtime, run_dir,
            labelled=labelled, tuned_threshold=served.tuned_threshold, rescore=rescore, progress=progress,
        )  # fmt: skip
        report_evaluation(tracker, "test", result, dataset, spec, run_dir)
        metrics = {
            **prefixed(result.metrics, "test"),
            "infer/num_images": len(result.names),
            "infer/latency_ms_per_image": result.predictions.latency_ms,
            "infer/images_per_s": len(result.names) / max(result.predictions.seconds, 1e-9),
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
            "%.1f images/s end to end; forward latency %.2f ms/image (batch %d, %s), peak memory %.0f MB",
            metrics["infer/images_per_s"], metrics["infer/latency_ms_per_image"], data_cfg.batch_size,
            served.description, metrics["infer/peak_memory_mb"],
        )  # fmt: skip
        log.info("predictions in %s", run_dir / "predictions.csv")
        exit_code = 0
    finally:
        tracker.finish(exit_code)
    return metrics
