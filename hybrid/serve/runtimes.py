"""The runtimes that serve an exported ``.onnx`` file, behind one small interface (numpy in, numpy
out; no torch).

``onnxruntime``: ONNX Runtime (the CPU provider; the CUDA provider when present and
``device=cuda``). ``openvino``: Intel's runtime, which reads the same ``.onnx``, runs on any x86 CPU
and uses bf16 / AMX where the CPU has them (optional on a robot). Each turns a float32
``[B, C, H, W]`` batch into ``[B, classes]`` logits.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from hybrid.errors import ConfigError
from hybrid.serve.model_card import ATTENTION_NAME, INPUT_NAME, open_session, read_metadata

# The one default for .onnx files (infer.py, hybrid serve, the Python API, the benchmark's serving
# rows): the runtime the serving install always has. OpenVINO served the int8 model 1.2-1.3x faster
# on both CPUs measured (docs/deploy.md) and stays one word away (runtime=openvino, --runtime openvino).
DEFAULT_RUNTIME = "onnxruntime"


class OnnxRuntimeSession:
    """ONNX Runtime: the CUDA provider for ``device=cuda`` (refused where it is missing), else the CPU one.
    ``paced``: calls come one at a time at a camera's pace, not back to back, so the intra-op
    threads sleep between them instead of spinning (``session.intra_op.allow_spinning=0``), and
    one thread does the work unless ``num_threads`` says otherwise: a live stream's model then cost
    a third of the CPU time here (spinning alone was two thirds of it), at 25 ms instead of 15 ms a
    frame for the default int8 model (``bench/live_cpu.py``, docs/robot.md)."""

    name = "onnxruntime"

    def __init__(
        self, path: str, *, device: str = "cpu", precision: str | None = None, num_threads: int | None = None,
        paced: bool = False,
    ):  # fmt: skip
        import onnxruntime as ort

        if precision is not None and str(precision) != "32":
            raise ConfigError(
                f"precision={precision}: runtime=onnxruntime runs the file's own precision; leave it null"
            )
        options = ort.SessionOptions()
        if num_threads or paced:
            options.intra_op_num_threads = int(num_threads or 1)
        if paced:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        if str(device).startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ConfigError(
                    f"device={device}: this onnxruntime has no CUDA provider (pip install onnxruntime-gpu)"
                )
            providers.insert(0, "CUDAExecutionProvider")
        self.session = open_session(path, options, providers)
        self.has_attention = ATTENTION_NAME in {output.name for output in self.session.get_outputs()}
        self.description = f"onnxruntime {ort.__version__} ({self.session.get_providers()[0]})"

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.session.run(None, {INPUT_NAME: images})[0]

    def attention(self, images: np.ndarray) -> np.ndarray | None:
        """The attention grid output ``[B, patches]`` (None: the file has none)."""
        if not self.has_attention:
            return None
        return self.session.run([ATTENTION_NAME], {INPUT_NAME: images})[0]

    def metadata(self) -> dict[str, str]:
        """The file's ``metadata_props`` (its model card), read from this session."""
        return dict(self.session.get_modelmeta().custom_metadata_map)


class OpenVinoSession:
    """OpenVINO on the CPU; ``precision`` ``32`` (the default, ``null``) / ``bf16`` sets its
    inference precision. Left to itself OpenVINO computes a float32 file in bf16 wherever the CPU
    has bf16, which moved a test figure by 0.008 on real digit scans: a float32 file is computed in
    float32 unless bf16 is asked for by name. ``paced`` is accepted and changes nothing here (the
    spin switch is ONNX Runtime's)."""

    name = "openvino"
    PRECISION_HINTS: ClassVar[dict[str, str]] = {"32": "f32", "bf16": "bf16"}

    def __init__(
        self, path: str, *, device: str = "cpu", precision: str | None = None, num_threads: int | None = None,
        paced: bool = False,
    ):  # fmt: skip
        import openvino as ov

        if str(device) not in ("cpu", "auto"):
            raise ConfigError(f"device={device}: runtime=openvino serves on the CPU here; use runtime=onnxruntime")
        config = {"PERFORMANCE_HINT": "LATENCY"}
        if num_threads:
            config["INFERENCE_NUM_THREADS"] = int(num_threads)
        precision = "32" if precision is None else str(precision)  # Hydra reads 32 as an int
        if precision not in self.PRECISION_HINTS:
            raise ConfigError(f"precision={precision}: runtime=openvino takes one of {list(self.PRECISION_HINTS)}")
        config["INFERENCE_PRECISION_HINT"] = self.PRECISION_HINTS[precision]
        self.path = str(path)
        self.compiled = ov.Core().compile_model(str(path), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.has_attention = len(self.compiled.outputs) > 1
        hint = self.compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        self.description = f"openvino {ov.__version__.split('-')[0]} (CPU, inference precision {hint})"

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.request.infer({0: images})[0].copy()  # the request reuses its output buffer

    def attention(self, images: np.ndarray) -> np.ndarray | None:
        """The attention grid output ``[B, patches]`` (None: the file has none)."""
        if not self.has_attention:
            return None
        return self.request.infer({0: images})[1].copy()

    def metadata(self) -> dict[str, str]:
        """The file's ``metadata_props``, read with onnxruntime (always in the serving install)."""
        return read_metadata(self.path)


RUNTIMES = {session.name: session for session in (OnnxRuntimeSession, OpenVinoSession)}


def check_runtime(name) -> str:
    """A known runtime name for ``.onnx`` files."""
    if str(name) not in RUNTIMES:
        raise ConfigError(f"runtime={name!r}; choose one of {list(RUNTIMES)} for an .onnx file")
    return str(name)
