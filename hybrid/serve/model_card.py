"""The model card an exported ONNX file carries in its metadata: what the model is and how to feed
it, read with onnxruntime alone (no torch, no onnx package), so the robot needs nothing else.

Everything inference needs travels inside the ``.onnx`` file: task, class names (and which of them
is the negative class), input size and channels, normalization, the decision threshold, the
resolved training config (so ``infer.py`` finds the trained test split as it does for a ``.pt``)
and the source checkpoint's sha256. Each field is one ``metadata_props`` entry named
``hybrid.<field>`` holding JSON, so tools such as Netron show them. The export writes it
(:mod:`hybrid.deploy.card`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from hybrid.errors import CheckpointError

FORMAT = "hybrid-onnx"
VERSION = 2  # 2: the card records the negative class (version-1 files still load, without it)
PREFIX = "hybrid."
# The graph's input and outputs (see hybrid.deploy.onnx_export): a model with attention maps (the
# hybrid) has a second output, its decoder's mean attention over the patch grid [B, patches].
INPUT_NAME = "images"
OUTPUT_NAME = "logits"
ATTENTION_NAME = "attention"
# A survey reports clock positions from a model's attention only where they were measured within
# one hour of the truth this often (docs/survey.md, "Clock position").
CLOCK_SHIP_AT = 0.70


@dataclass
class ModelCard:
    """What an exported model is and how to feed it: input ``images`` float32 ``[B, in_channels,
    img_size, img_size]`` normalized with ``mean`` / ``std``, output ``logits`` ``[B, classes]``."""

    task: str
    class_names: list[str]
    img_size: int
    in_channels: int
    mean: list[float]
    std: list[float]
    threshold: float | list[float]  # the decision threshold: tuned on validation (one per class), or 0.5
    threshold_tuned: bool
    precision: str  # fp32 | fp16 | int8
    config: dict  # the resolved training config (model, data, trainer, ...)
    source_checkpoint: str
    source_sha256: str
    parameters: int  # of the source model
    flops_per_image: int  # of the source model's forward pass (a multiply-add counts 2)
    opset: int
    exported_with: dict = field(default_factory=dict)  # library versions
    # the class meaning "no defect" (None: none, or a version-1 file, from before it was recorded)
    negative_class: str | None = None
    # how often its attention's clock position was within one hour of a painted defect's
    # (bench/survey_clock.py --stamp; None: never measured); a survey reports clock positions only
    # at CLOCK_SHIP_AT or more
    clock_within_1h: float | None = None

    @property
    def tuned_threshold(self) -> float | list[float] | None:
        """The tuned threshold, or ``None`` when the model uses the benchmark's 0.5."""
        return self.threshold if self.threshold_tuned else None

    def metadata(self) -> dict[str, str]:
        """The ``metadata_props`` entries: the format marker, then one JSON value per field."""
        entries = {f"{PREFIX}format": FORMAT, f"{PREFIX}version": str(VERSION)}
        entries.update({PREFIX + key: json.dumps(value) for key, value in dataclasses.asdict(self).items()})
        return entries

    @classmethod
    def from_metadata(cls, entries: dict[str, str], where: str) -> ModelCard:
        """The card held by ``metadata_props`` ``entries`` of the file ``where``, or a
        :class:`CheckpointError` saying why there is none."""
        if entries.get(f"{PREFIX}format") != FORMAT:
            raise CheckpointError(
                f"ckpt_path={where}: an ONNX model without hybrid metadata; export one with "
                "python -m hybrid.jobs.export ckpt_path=<run>/checkpoints/best.pt"
            )
        version = int(entries.get(f"{PREFIX}version", 0))
        if version > VERSION:
            raise CheckpointError(f"ckpt_path={where}: hybrid-onnx version {version} is newer than this code reads")
        fields = dataclasses.fields(cls)
        names = [f.name for f in fields]
        optional = {
            f.name
            for f in fields
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        }
        absent = [name for name in names if PREFIX + name not in entries and name not in optional]
        if absent:
            raise CheckpointError(f"ckpt_path={where}: hybrid metadata lacks {', '.join(absent)}")
        values = {name: json.loads(entries[PREFIX + name]) for name in names if PREFIX + name in entries}
        return cls(**values)

    @classmethod
    def read(cls, path: str | os.PathLike) -> ModelCard:
        """The card of the ``.onnx`` file at ``path``, read through onnxruntime."""
        return cls.from_metadata(read_metadata(path), str(Path(path).expanduser()))


def open_session(path: str | os.PathLike, options=None, providers: list[str] | None = None):
    """An ``onnxruntime.InferenceSession`` of the file at ``path`` (a :class:`CheckpointError`
    naming it when it is missing or no ONNX model)."""
    import onnxruntime as ort

    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"ckpt_path={path}: no such file")
    options = options or ort.SessionOptions()
    options.log_severity_level = 3  # its own error line is enough
    try:
        return ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises several types for a foreign or corrupt file
        raise CheckpointError(f"ckpt_path={path}: not a readable ONNX model ({type(err).__name__})") from err


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``metadata_props`` of the ``.onnx`` file at ``path`` (a :class:`CheckpointError` naming
    it when it is missing or no ONNX model)."""
    return dict(open_session(path).get_modelmeta().custom_metadata_map)
