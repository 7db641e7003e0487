"""PyTorch model -> ONNX file, at float32, float16 or int8.

The graph comes from ``torch.onnx.export(dynamo=True)`` (the ``torch.export`` based exporter): it
lowers the encoder's ``unfold`` patching to a handful of Reshape / Transpose nodes (the TorchScript
exporter leaves ~4x as many nodes, Gather / Where chains among them). Then, per precision:

- ``fp32``: the exported graph as it is;
- ``fp16``: float16 weights and compute with float32 input and output (for GPU and NPU targets),
  by ONNX Runtime's float16 converter;
- ``int8``: ONNX Runtime static quantization in QDQ format, per-channel int8 weights and uint8
  activations (the U8S8 kernels of VNNI / AMX CPUs), calibrated on images the caller provides.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hybrid.errors import ConfigError
from hybrid.models.contract import supports_attention
from hybrid.serve.model_card import ATTENTION_NAME, INPUT_NAME, OUTPUT_NAME

# ONNX opset 18: the dynamo exporter's own (torch 2.14); ONNX Runtime >= 1.14 and OpenVINO read it.
OPSET = 18
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
QUIET_LOGGERS = ("onnx_ir", "onnxscript", "torch.onnx")


def check_export_precision(precision) -> str:
    """``precision``: one of :data:`CONVERSIONS`."""
    if str(precision) not in CONVERSIONS:
        raise ConfigError(f"precision={precision!r}; choose one of {list(CONVERSIONS)}")
    return str(precision)


def check_calibration_method(method) -> str:
    """``calibration.method``: one of :data:`CALIBRATION_METHODS`."""
    if str(method) not in CALIBRATION_METHODS:
        raise ConfigError(f"calibration.method={method!r}; choose one of {list(CALIBRATION_METHODS)}")
    return str(method)


class WithAttentionGrid(torch.nn.Module):
    """A model with attention maps, exported with both outputs: the logits, and its last decoder
    layer's attention averaged over heads and queries, ``[B, patches]`` (as ``keyframes.png`` draws
    it; a survey's clock position comes from it)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, attention = self.model.forward_with_attention(images)
        return logits, attention.mean(dim=(1, 2))


def export_float32(model: torch.nn.Module, in_channels: int, img_size: int, path: Path) -> Path:
    """Write ``model`` (eval mode, on the CPU) as an ONNX graph with a dynamic batch axis; a model
    with attention maps with its attention grid as a second output (:class:`WithAttentionGrid`)."""
    outputs = [OUTPUT_NAME]
    if supports_attention(model):
        model, outputs = WithAttentionGrid(getattr(model, "module", model)), [OUTPUT_NAME, ATTENTION_NAME]
    # torch.export specializes a dimension of size 1, so the example batch holds two images.
    example = torch.randn(2, in_channels, img_size, img_size)
    for chatty in QUIET_LOGGERS:  # their INFO lines narrate every graph pass
        logging.getLogger(chatty).setLevel(logging.WARNING)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's own deprecation and tracing chatter
        program = torch.onnx.export(
            model.eval(),
            (example,),
            input_names=[INPUT_NAME],
            output_names=outputs,
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            opset_version=OPSET,
            dynamo=True,
            verbose=False,
        )
    program.save(str(path))
    return path


def convert_float16(source: Path, target: Path, calibration: Calibration | None = None) -> Path:
    """float16 weights and compute, float32 ``images`` in and ``logits`` out."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
    onnx.save(model, str(target))
    return target


class BatchStream:
    """ONNX Runtime's calibration reader over a stream of normalized float batches: it asks for
    them a range at a time (``CalibStridedMinMax``), so no more than one batch's activations are
    held, whatever the calibration set's size."""

    def __init__(self, batches: Iterator[np.ndarray], count: int):
        self.batches = batches
        self.count = count
        self.remaining = 0

    def __len__(self) -> int:
        return self.count

    def set_range(self, start_index: int, end_index: int) -> None:
        self.remaining = end_index - start_index

    def get_next(self) -> dict | None:
        if self.remaining <= 0:
            return None
        self.remaining -= 1
        batch = next(self.batches, None)
        return None if batch is None else {INPUT_NAME: batch}


@dataclass
class Calibration:
    """The images an int8 export calibrates on: ``batches()`` yields ``count`` normalized float32
    batches; ``method`` picks the activation ranges (``minmax``, ``entropy``, ``percentile``)."""

    batches: Callable[[], Iterator[np.ndarray]]
    count: int
    method: str = "minmax"


class RankOneAxisNotice(logging.Filter):
    """Drops ONNX Runtime's warning that a rank-1 weight (a LayerNorm scale) has no per-channel
    axis: the quantizer then treats it per tensor, which is what such a weight needs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "is out-of-range for weight" not in record.getMessage()


def quantize_int8(source: Path, target: Path, calibration: Calibration) -> Path:
    """Static int8 quantization (QDQ, per-channel weights) of the float32 graph at ``source``,
    calibrated on ``calibration``."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    prepared = target.with_name(target.stem + ".prepared.onnx")
    notice = RankOneAxisNotice()
    logging.getLogger().addFilter(notice)
    try:
        # shape inference and graph clean-up first, as ONNX Runtime's quantization guide advises
        quant_pre_process(str(source), str(prepared))
        quantize_static(
            str(prepared),
            str(target),
            BatchStream(calibration.batches(), calibration.count),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=methods[check_calibration_method(calibration.method)],
            extra_options={"CalibStridedMinMax": 1},
        )
    finally:
        logging.getLogger().removeFilter(notice)
        prepared.unlink(missing_ok=True)
    return target


def keep_float32(source: Path, target: Path, calibration: Calibration | None = None) -> Path:
    """The exported float32 graph as it is."""
    source.replace(target)
    return target


# precision -> the step from the float32 graph to the file of that precision
CONVERSIONS = {"fp32": keep_float32, "fp16": convert_float16, "int8": quantize_int8}


def convert(source: Path, target: Path, precision: str, calibration: Calibration | None = None) -> Path:
    """The float32 graph at ``source`` as a ``precision`` model at ``target`` (int8 needs ``calibration``)."""
    return CONVERSIONS[check_export_precision(precision)](source, target, calibration)
