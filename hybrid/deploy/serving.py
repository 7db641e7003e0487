"""Open a model file for serving, whatever its format: a hybrid checkpoint (``.pt``, run by
PyTorch) or an exported ``.onnx`` (run by ONNX Runtime or OpenVINO). Inference, export
verification and the benchmark all load models here, so each reads a file the same way."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from hybrid.data.labels import LabelSpec, resolve_label_spec
from hybrid.data.loaders import eval_transform
from hybrid.data.schema import DataSchema, data_settings
from hybrid.deploy.onnx_module import OnnxClassifier
from hybrid.engine.checkpoint import CheckpointRecord, upgrade_config
from hybrid.engine.runtime import Runtime
from hybrid.errors import ConfigError
from hybrid.models import build_model
from hybrid.serve.model import Model
from hybrid.serve.model_input import fit
from hybrid.serve.runtimes import DEFAULT_RUNTIME, check_runtime

log = logging.getLogger(__name__)

TORCH_RUNTIME = "torch"
ONNX_SUFFIX = ".onnx"


@dataclass(frozen=True)
class ServingOptions:
    """How to run a model file; ``None`` means as the file says (a checkpoint: its trainer config;
    an ``.onnx``: :data:`~hybrid.serve.runtimes.DEFAULT_RUNTIME` on the CPU)."""

    runtime: str | None = None  # torch (.pt) | onnxruntime | openvino (.onnx)
    device: str | None = None
    precision: str | None = None
    num_threads: int | None = None
    compile: bool | None = None
    channels_last: bool | None = None

    @classmethod
    def from_config(cls, settings) -> ServingOptions:
        """The options of an ``infer`` job's settings (:class:`~hybrid.inference.schema.InferSchema`:
        its keys of the same names)."""
        return cls(
            **{key: getattr(settings, key) for key in ("runtime", "device", "precision", "num_threads", "compile")}
        )


class ServingResize:
    """The serving code's resize (:func:`hybrid.serve.model_input.fit`) as a transform of the training
    stack's datasets: uint8 ``[C, H, W]`` tensors in and out; model-sized images pass through."""

    method = "hybrid.serve.model_input.fit (Pillow, antialiased bilinear)"

    def __init__(self, size: int):
        self.size = int(size)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if tuple(image.shape[-2:]) == (self.size, self.size):
            return image
        pixels = image.numpy()
        pixels = pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)
        return torch.from_numpy(np.ascontiguousarray(fit(np.ascontiguousarray(pixels), self.size)))


@dataclass
class ServedModel:
    """A model ready to predict: ``model`` (batches in, logits out, in eval mode), the engine :class:`Runtime`
    its batches are prepared for, and what the file says about it."""

    model: torch.nn.Module
    runtime: Runtime
    task: str
    class_names: list[str]
    config: dict  # the resolved training config
    tuned_threshold: float | list[float] | None
    description: str  # which runtime, for the log
    negative_class: str | None = None  # as the file records it (None in files from before it was)
    serving: Model | None = None  # an .onnx file's torch-free model (hybrid.serve), which serves it

    def eval_transform(self, data_cfg: DataSchema):
        """How images are resized for this model: an ``.onnx`` file as ``hybrid serve`` resizes them
        (one serving implementation), a checkpoint as its training evaluated them."""
        if self.serving is not None:
            return ServingResize(self.serving.card.img_size)
        return eval_transform(data_cfg)

    @property
    def trained(self) -> DictConfig:
        """The training config as an OmegaConf node."""
        return OmegaConf.create(self.config)

    @property
    def trained_data(self) -> DataSchema:
        """The data settings the model was trained with, typed."""
        return data_settings(self.trained.data)

    def label_spec(self, data_cfg: DataSchema) -> LabelSpec:
        """The model's classes, read with ``data_cfg``'s label columns; the negative class as the
        file records it (a file from before that: as ``data_cfg`` declares it, else by name)."""
        declared = self.negative_class or data_cfg.negative_class
        return resolve_label_spec(self.task, data_cfg.label_columns, self.class_names, negative_class=declared)


def is_onnx(path: str | os.PathLike) -> bool:
    """Whether ``path`` names an exported model (by its suffix)."""
    return Path(str(path)).suffix.lower() == ONNX_SUFFIX


def load_served_model(path: str | os.PathLike, options: ServingOptions = ServingOptions()) -> ServedModel:
    """The model in ``path``: an ``.onnx`` file through its runtime, anything else as a hybrid
    checkpoint through PyTorch. Bad files and options stop with one line naming them."""
    return (serve_onnx if is_onnx(path) else serve_checkpoint)(str(path), options)


def without_pretrained(node):
    """A model config with every ``pretrained`` key off: a checkpoint's own weights replace them
    all, so serving never needs the pretrained files of training (a robot has no torch cache)."""
    if isinstance(node, dict):
        return {key: False if key == "pretrained" else without_pretrained(value) for key, value in node.items()}
    return node


def model_from_record(record: CheckpointRecord, path: str) -> torch.nn.Module:
    """The PyTorch model a loaded checkpoint describes, with its weights, on the CPU (train mode,
    as built)."""
    model_cfg = OmegaConf.create(without_pretrained(record.config["model"]))
    model = build_model(model_cfg, len(record.class_names))
    record.load_weights_into(model, path)
    return model


def serve_checkpoint(path: str, options: ServingOptions) -> ServedModel:
    """A hybrid checkpoint run by PyTorch, on the device and precision it was trained with unless
    ``options`` say otherwise."""
    if options.runtime not in (None, TORCH_RUNTIME):  # two-stage inference may mix the formats
        log.warning("runtime=%s applies to .onnx files; %s runs in PyTorch", options.runtime, path)
    record = CheckpointRecord.load(path)
    trainer = record.config["trainer"]
    runtime = Runtime(
        options.device or trainer["device"],
        options.precision or trainer["precision"],
        channels_last=trainer["channels_last"] if options.channels_last is None else options.channels_last,
        compile=trainer["compile"] if options.compile is None else options.compile,
    )
    model = runtime.prepare(model_from_record(record, path)).eval()
    precision = {"32": "float32", "bf16": "bf16 autocast", "16": "float16 autocast"}[runtime.precision]
    layout = ", channels-last" if runtime.channels_last else ""
    return ServedModel(
        model,
        runtime,
        record.task,
        list(record.class_names),
        record.config,
        record.threshold,
        f"torch {torch.__version__} ({runtime.device}, {precision}{layout})",
        record.negative_class,
    )


def serve_onnx(path: str, options: ServingOptions) -> ServedModel:
    """An exported model run by ``options.runtime`` (default :data:`DEFAULT_RUNTIME`). Its batches
    are prepared on the CPU, where the runtime reads them."""
    name = check_runtime(options.runtime or DEFAULT_RUNTIME)
    if options.compile:
        raise ConfigError("compile=true applies to PyTorch checkpoints, not to an .onnx file")
    served = Model(
        path, runtime=name, threads=options.num_threads, device=str(options.device or "cpu"),
        precision=options.precision,
    )  # fmt: skip
    card, session = served.card, served.session
    return ServedModel(
        OnnxClassifier(served),
        Runtime("cpu", "32"),
        card.task,
        list(card.class_names),
        upgrade_config(dict(card.config)),  # an export of an older hybrid lacks the newer keys
        card.tuned_threshold,
        f"{session.description}, {card.precision} model",
        card.negative_class,
        served,
    )
