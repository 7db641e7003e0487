"""Export a trained checkpoint to ONNX for serving on a device, and verify the file.

``python -m hybrid.jobs.export ckpt_path=P [precision=fp32|fp16|int8] [output=DIR]``

Writes ``model.onnx`` (its metadata carries everything inference needs, see
:mod:`hybrid.deploy.card`) and ``export.json``: the verification on ``verify.num_images``
validation images served by ONNX Runtime against PyTorch (max |delta probability|, decision
agreement, the monitored validation metric of both). A float32 file must agree within
``verify.fp32_tolerance`` or the export fails and no ``model.onnx`` is left; for int8 / fp16 the
metric delta is reported, with a warning above ``verify.warn_metric_delta``.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from hybrid.data.labels import LabelSpec
from hybrid.data.loaders import DataModule, make_loader
from hybrid.data.schema import trained_data_settings
from hybrid.decisions import single_label_predictions
from hybrid.deploy.card import card_from_checkpoint, file_sha256, write_card
from hybrid.deploy.onnx_export import (
    OPSET,
    Calibration,
    check_calibration_method,
    check_export_precision,
    convert,
    export_float32,
)
from hybrid.deploy.serving import ServingOptions, load_served_model, model_from_record
from hybrid.engine.checkpoint import CheckpointRecord
from hybrid.engine.loop import Predictions, predict
from hybrid.engine.outputs import write_json
from hybrid.engine.runtime import Runtime, configure_process
from hybrid.errors import CheckpointError, ConfigError
from hybrid.jobs.app import HydraJob
from hybrid.jobs.schema import EXPORT_GROUPS, CalibrationSchema, ExportSchema
from hybrid.metrics import compute_metrics
from hybrid.models.factory import count_trainable, flops_per_image
from hybrid.serve.model_card import ModelCard
from hybrid.serve.runtimes import DEFAULT_RUNTIME
from hybrid.util.atomic import atomic_write
from hybrid.util.hydra_job import command_line_overrides
from hybrid.util.hydra_job import run_dir as hydra_run_dir
from hybrid.util.typed_config import check_types, typed_job

log = logging.getLogger("hybrid.jobs.export")  # not __main__ under python -m


MODEL_FILE = "model.onnx"
REPORT_FILE = "export.json"


def library_versions() -> dict[str, str]:
    """The versions that wrote the file (recorded in its card)."""
    import onnx
    import onnxruntime

    return {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


def decisions(probs: np.ndarray, spec: LabelSpec, threshold: float) -> np.ndarray:
    """What a model decides per image: its class (single-label) or its set of codes (multi-label)."""
    if spec.single_label:
        return np.asarray(single_label_predictions(probs, threshold, spec.positive_index))[:, None]
    return probs >= threshold


def compare(
    reference: Predictions, exported: Predictions, spec, threshold: float, monitor: str, computed_in: dict[str, str]
) -> dict:
    """How far the exported model's predictions are from PyTorch's on the same images;
    ``computed_in``: at which precision, by what, each side was computed (``torch``, ``onnx``)."""
    metric = monitor.removeprefix("val/")
    scores = {}
    for name, preds in (("torch", reference), ("onnx", exported)):
        scores[name] = compute_metrics(preds.probs, preds.targets, spec).get(metric, float("nan"))
    same = decisions(reference.probs, spec, threshold) == decisions(exported.probs, spec, threshold)
    return {
        "verify/num_images": len(reference.indices),
        "verify/max_abs_prob_delta": float(np.abs(exported.probs - reference.probs).max(initial=0.0)),
        "verify/decision_agreement": float(same.all(axis=1).mean()) if len(same) else float("nan"),
        "verify/metric": monitor,
        f"verify/torch/{monitor}": float(scores["torch"]),
        f"verify/onnx/{monitor}": float(scores["onnx"]),
        "verify/torch/computed_in": computed_in["torch"],
        "verify/onnx/computed_in": computed_in["onnx"],
        "verify/metric_delta": float(scores["onnx"] - scores["torch"]),
    }


def target_path(job: ExportSchema, cfg: DictConfig) -> Path:
    """``<output>/model.onnx`` (``output`` null: ``cfg``'s run dir); an existing file there is never replaced."""
    folder = Path(job.output).expanduser() if job.output else hydra_run_dir(cfg)
    target = folder / MODEL_FILE
    if target.exists():
        raise ConfigError(f"output={folder} already holds {MODEL_FILE}; choose another output or move it away")
    folder.mkdir(parents=True, exist_ok=True)
    return target


def sample_loader(data: DataModule, split: str, count: int, seed: int):
    """``count`` images of ``split`` drawn with ``seed``, through the eval transform, as ready CPU batches."""
    return make_loader(data.sample(split, count, seed), data.settings, train=False, seed=seed, device="cpu")


def calibration_set(settings: CalibrationSchema, data: DataModule) -> tuple[Calibration, int]:
    """The int8 calibration batches ``calibration.*`` describe (its method checked by :func:`export`
    before any work) and how many images they hold."""
    method = settings.method
    loader = sample_loader(data, "train", settings.num_images, settings.seed)

    def batches():
        return (batch["image"].numpy() for batch in loader if "image" in batch)

    log.info("int8: calibrating on %d training images (%s)", len(loader.dataset), method)
    return Calibration(batches, len(loader), method), len(loader.dataset)


def export(cfg: DictConfig) -> dict:
    """Export ``ckpt_path`` at ``precision`` into ``output`` and verify it (see the module doc)."""
    check_types(cfg, ExportSchema, "", resolve=False)  # a typo'd or mistyped key stops here
    if OmegaConf.is_missing(cfg, "ckpt_path") or not cfg.ckpt_path:
        raise ConfigError("ckpt_path is required: python -m hybrid.jobs.export ckpt_path=<run>/checkpoints/best.pt")
    job = typed_job(cfg, ExportSchema, groups=EXPORT_GROUPS)  # the job's own keys, typed once
    precision = check_export_precision(job.precision)
    check_calibration_method(job.calibration.method)
    started = time.perf_counter()
    configure_process(job.num_threads)
    record = CheckpointRecord.load(job.ckpt_path)
    trained = OmegaConf.create(record.config)
    with open_dict(cfg):
        cfg.model = trained.model  # data keys such as img_size interpolate the model's
    data_cfg = trained_data_settings(trained.data, cfg, command_line_overrides())
    target = target_path(job, cfg)
    model = model_from_record(record, job.ckpt_path).eval()
    size, channels = int(trained.model.img_size), int(trained.model.in_channels)
    card = card_from_checkpoint(
        record,
        job.ckpt_path,
        precision=precision,
        parameters=count_trainable(model),
        flops_per_image=flops_per_image(model, size, channels),
        opset=OPSET,
        exported_with=library_versions(),
    )
    data = DataModule(
        data_cfg, int(trained.seed), list(record.class_names), negative_class=record.negative_class, device="cpu"
    )
    calibration, calibrated = calibration_set(job.calibration, data) if precision == "int8" else (None, 0)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export.") as work:
        graph = export_float32(model, channels, size, Path(work) / "fp32.onnx")
        log.info("exported the float32 graph (opset %d); converting to %s", OPSET, precision)
        converted = convert(graph, Path(work) / f"{precision}.onnx", precision, calibration)
        candidate = with_card(converted, card, Path(work) / MODEL_FILE)
        verify_set = sample_loader(data, "val", job.verify.num_images, job.calibration.seed)
        verification = verify(job, model, candidate, verify_set, data.spec, card)
        candidate.replace(target)
    report = {
        "precision": precision,
        "model": str(target),
        "model_sha256": file_sha256(target),
        "model_mb": target.stat().st_size / 2**20,
        "opset": OPSET,
        "source_checkpoint": card.source_checkpoint,
        "source_sha256": card.source_sha256,
        **({"calibration/num_images": calibrated, "calibration/method": calibration.method} if calibration else {}),
        **verification,
        "seconds": time.perf_counter() - started,
    }
    write_json(target.parent / REPORT_FILE, report)
    log.info("%s (%.2f MB, %s) and %s written", target, report["model_mb"], precision, REPORT_FILE)
    return report


def with_card(source: Path, card: ModelCard, target: Path) -> Path:
    """``source`` with ``card`` in its metadata, written to ``target``."""
    import onnx

    model = onnx.load(str(source))
    write_card(model, card)
    model.doc_string = f"hybrid {card.task} classifier ({card.precision}) from {card.source_checkpoint}"
    return atomic_write(target, lambda tmp: onnx.save(model, str(tmp)))


def verify(job: ExportSchema, model: torch.nn.Module, candidate: Path, loader, spec, card: ModelCard) -> dict:
    """Serve ``candidate`` with ONNX Runtime on the verification images, compare with ``model``
    (PyTorch, float32), log the figures and refuse a float32 file that does not agree."""
    reference = predict(model, loader, spec, Runtime("cpu", "32"), desc="verify: torch")
    served = load_served_model(candidate, ServingOptions(runtime=DEFAULT_RUNTIME, num_threads=job.num_threads))
    exported = predict(served.model, loader, spec, served.runtime, desc="verify: onnx")
    computed_in = {"torch": f"torch {torch.__version__} (cpu, float32)", "onnx": served.description}
    report = compare(reference, exported, spec, card.threshold, str(card.config["trainer"]["monitor"]), computed_in)
    monitor = report["verify/metric"]
    log.info(
        "verify on %d validation images: max |delta p| %.2e, decisions agree on %.2f%%, %s %.4f (%s) vs %.4f (%s)",
        report["verify/num_images"], report["verify/max_abs_prob_delta"], 100 * report["verify/decision_agreement"],
        monitor, report[f"verify/torch/{monitor}"], computed_in["torch"], report[f"verify/onnx/{monitor}"],
        computed_in["onnx"],
    )  # fmt: skip
    tolerance = job.verify.fp32_tolerance
    if card.precision == "fp32" and not report["verify/max_abs_prob_delta"] <= tolerance:
        raise CheckpointError(
            f"export of {job.ckpt_path}: ONNX and PyTorch probabilities differ by "
            f"{report['verify/max_abs_prob_delta']:.2e} > verify.fp32_tolerance={tolerance:g}; no {MODEL_FILE} written"
        )
    if abs(report["verify/metric_delta"]) > job.verify.warn_metric_delta:
        log.warning(
            "%s changes %s by %+.4f on %d validation images (above verify.warn_metric_delta=%g)",
            card.precision, monitor, report["verify/metric_delta"], report["verify/num_images"],
            job.verify.warn_metric_delta,
        )  # fmt: skip
    return report


main = HydraJob("export", export)

if __name__ == "__main__":
    sys.exit(main())
