"""``input=`` a folder of images (or one image), or none: the trained test split, each image
scored by the served model (two-stage when ``binary_ckpt_path`` is given), with ``predictions.csv``,
``metrics.json`` (when labelled), ``skipped.csv`` and the tracker's evaluation."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from hybrid.data.dataset import ImageFileDataset
from hybrid.data.labels import LabelSpec
from hybrid.data.loaders import DataModule, folder_dataset, make_loader
from hybrid.deploy.serving import ServingOptions, load_served_model
from hybrid.engine.evaluation import final_evaluation, two_stage_strategy
from hybrid.engine.loop import predict
from hybrid.engine.outputs import report_skipped, write_json
from hybrid.engine.runtime import peak_memory_mb
from hybrid.errors import ConfigError
from hybrid.inference.schema import InferSchema
from hybrid.inference.served_run import InferRun
from hybrid.metrics import THRESHOLD, prefixed
from hybrid.models.schema import model_tag
from hybrid.tracking import build_tracker, tracked
from hybrid.tracking.media import report_evaluation

log = logging.getLogger(__name__)


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


@dataclass
class ImageInput:
    """The images one inference predicts: their dataset and loader, the labels' spec, whether they
    have labels (so metrics), and where they came from (for the log)."""

    spec: LabelSpec
    dataset: ImageFileDataset
    loader: Iterable[dict]
    labelled: bool
    source: str


def image_folder(run: InferRun) -> ImageInput:
    """``input=`` a folder of images (searched recursively) or one image: predictions only."""
    served, data_cfg, runtime = run.served, run.data, run.served.runtime
    spec = served.label_spec(data_cfg)
    dataset = folder_dataset(data_cfg, run.job.input, served.eval_transform(data_cfg))
    loader = make_loader(
        dataset, data_cfg, train=False, seed=int(served.trained.seed), device=runtime.device,
        channels_last=runtime.channels_last,
    )  # fmt: skip
    return ImageInput(spec, dataset, loader, labelled=False, source=run.job.input)


def test_split(run: InferRun) -> ImageInput:
    """No ``input``: the test split of the data the model was trained with (``data.*`` overrides
    applied); metrics when its CSV has label columns."""
    served, data_cfg, runtime = run.served, run.data, run.served.runtime
    data = DataModule(
        data_cfg, int(served.trained.seed), list(served.class_names),
        negative_class=served.label_spec(data_cfg).negative_class, device=runtime.device,
        channels_last=runtime.channels_last,
    )  # fmt: skip
    data.eval_transform = served.eval_transform(data_cfg)  # an .onnx file: the serving code's resize
    labelled = data.has_labels("test")
    dataset = data.dataset("test")
    source = str(data.csv_path("test"))
    if not labelled:
        log.warning("%s has no label columns %s: predictions only, no metrics", source, list(data.spec.label_columns))
    return ImageInput(data.spec, dataset, data.loader("test", dataset), labelled=labelled, source=source)


def predict_folder(run: InferRun) -> dict:
    """``input=`` images: :func:`predict_images` of :func:`image_folder`."""
    return predict_images(run, image_folder(run))


def predict_test_split(run: InferRun) -> dict:
    """No ``input``: :func:`predict_images` of :func:`test_split`."""
    return predict_images(run, test_split(run))


def predict_images(run: InferRun, images: ImageInput) -> dict:
    """Score ``images`` with the served model (rescored by a binary model's Defect score when
    ``binary_ckpt_path`` is given) and write ``predictions.csv``, ``skipped.csv``, ``metrics.json``."""
    cfg, job, served, data_cfg, run_dir, options = run.cfg, run.job, run.served, run.data, run.run_dir, run.options
    trained = served.trained
    model, runtime = served.model, served.runtime
    progress = job.progress_bar
    spec, dataset, loader, labelled, source = images.spec, images.dataset, images.loader, images.labelled, images.source
    rescore = None
    if job.binary_ckpt_path:
        if spec.single_label:
            raise ConfigError("binary_ckpt_path (two-stage inference) needs a multilabel model in ckpt_path")
        rescore = binary_defect_scores(job, dataset, options)
    log.info("predicting %d images from %s with %s", len(dataset), source, job.ckpt_path)
    with tracked(build_tracker(cfg, run_dir, "infer", [spec.task, model_tag(trained.model)])) as tracker:
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
    return metrics
