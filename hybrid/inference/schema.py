"""The keys of ``infer.yaml``: one declaration each, with its type and default."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig

from hybrid.serve.schema import VideoOptions
from hybrid.survey.schema import SurveyOptions
from hybrid.util.typed_config import register_schema, typed_job

INFER_GROUPS = ("data", "logger", "paths")


@dataclass
class TwoStageCombination:
    """``two_stage.strategy``: how a binary model's Defect score combines with a multi-label model's
    scores (``hybrid.engine.evaluation.TWO_STAGE_STRATEGIES``). replace: where the Defect score is
    below 0.5 it replaces every class score; multiply: every class score times the Defect score (for
    a model trained on defective images)."""

    strategy: str = "replace"


@dataclass
class InferSurvey(SurveyOptions):
    """``survey.*``: with ``input=VIDEO``, ``survey.enabled=true`` also writes a draft inspection
    survey of each video (as ``hybrid survey``: observations.csv/.json, photos/, report.html,
    frames.csv with distance_m); the other keys are ``hybrid survey``'s flags."""

    enabled: bool = False


@dataclass
class InferSchema:
    """``python infer.py ckpt_path=<run>/checkpoints/best.pt [input=...] [data.*=...]``: by default
    the test split of the data the checkpoint was trained with is evaluated; ``data.*`` overrides
    replace parts of that config, ``data=<group>`` replaces it whole."""

    task_name: str = "infer"
    ckpt_path: str = "???"  # a checkpoint, or an .onnx file from hybrid export (served by runtime=...)
    # a folder of images, or one image, to predict (no labels, no metrics) instead of the test split;
    # or a video (.mp4 .avi .mkv .mov .mpg .ts), or a folder of them: timed defect events (docs/video.md)
    input: str | None = None
    # frames sampled by timestamp and scores made events: the same keys and defaults as hybrid serve's
    video: VideoOptions = field(default_factory=VideoOptions)
    # a draft inspection survey of each video (docs/survey.md): off unless survey.enabled=true
    survey: InferSurvey = field(default_factory=InferSurvey)
    # two-stage inference (the Sewer-ML benchmark's): with a multi-label model in ckpt_path, a binary
    # model here, combined by two_stage.strategy
    binary_ckpt_path: str | None = None
    two_stage: TwoStageCombination = field(default_factory=TwoStageCombination)
    # what runs an .onnx file: onnxruntime or openvino (null: hybrid.serve.runtimes.DEFAULT_RUNTIME,
    # onnxruntime, as hybrid serve); a .pt checkpoint always runs in PyTorch (torch)
    runtime: str | None = None
    # null: as the checkpoint was trained (a .pt) or the runtime's choice on the CPU (an .onnx);
    # precision: 32 | bf16 (| 16 on CUDA) for a .pt; for openvino 32 | bf16 (its inference precision)
    device: str | None = None
    precision: Any = None
    num_threads: int | None = None
    compile: bool | None = None
    progress_bar: bool = True
    data: Any = None
    logger: Any = None
    paths: Any = None
    model: Any = None  # the checkpoint's, set when it is read


register_schema("infer", InferSchema, exclude=(*INFER_GROUPS, "model"))


def infer_settings(cfg: DictConfig) -> InferSchema:
    """The ``infer`` job's own keys of a composed config, typed (its groups are typed by their owners)."""
    return typed_job(cfg, InferSchema, groups=(*INFER_GROUPS, "model"))
