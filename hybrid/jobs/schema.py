"""The jobs' own keys: every job's top-level keys (``train.yaml``, ``export.yaml``, ...) and the
``paths`` group, each declared once on a dataclass here, with the checks that compose the groups'
own (a group's keys live in its package's ``schema.py``: ``hybrid.data.schema``,
``hybrid.models.schema``, ``hybrid.engine.schema``, ``hybrid.tracking.schema``,
``hybrid.inference.schema``); the configuration page is generated from them. Run before any work,
so ``train.py`` stops with one line naming the key before data is generated or a model is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

from hybrid.data.cache_builder import PrepareOptions
from hybrid.data.schema import DataSchema, check_data_config
from hybrid.data.synthetic.pipe_videos import VideoSpec
from hybrid.data.synthetic.spec import SyntheticSpec
from hybrid.engine.schema import TrainerSchema, check_trainer_config
from hybrid.errors import ConfigError
from hybrid.inference.schema import TwoStageCombination
from hybrid.metrics import THRESHOLD, monitor_mode
from hybrid.models.schema import check_model_config
from hybrid.tracking.schema import check_logger_config
from hybrid.util.cli import option
from hybrid.util.typed_config import check_types, register_schema
from hybrid.video.cctv_pipe import DISTANCE_THRESHOLDS


# ---- paths (every job) -----------------------------------------------------------------------
@dataclass
class PathsSchema:
    """The ``paths`` keys: relative to the directory the command runs in; set ``HYBRID_ROOT`` to
    anchor them elsewhere."""

    root_dir: str = "${oc.env:HYBRID_ROOT,.}"
    data_dir: str = "${paths.root_dir}/data"
    log_dir: str = "${paths.root_dir}/outputs"
    output_dir: str = "${hydra:runtime.output_dir}"  # this job's run dir


register_schema("paths", PathsSchema)


# ---- hybrid train ----------------------------------------------------------------------------
# The groups a training config composes, each declared by its own schema.
TRAIN_GROUPS = ("data", "model", "trainer", "logger", "paths")


@dataclass
class TrainSchema:
    """The top-level keys of ``train.yaml`` (its groups are checked by their owners)."""

    task_name: str = "train"
    seed: int = 42
    # a run's checkpoints/last.pt resumes that run (model, optimizer, scheduler, RNG, best, W&B id);
    # after SIGTERM/Ctrl-C the printed command does exactly this
    ckpt_path: str | None = None
    # start a new run from another run's weights (fine-tuning): every weight that fits is loaded (a
    # binary model's into a multi-label one: all but the head), with a fresh optimizer and schedule
    init_from: str | None = None
    # null: one training; experiment=sewerml_two_stage: hybrid.jobs.two_stage.TwoStagePlan (it checks it)
    two_stage: Any = None
    data: Any = None
    model: Any = None
    trainer: Any = None
    logger: Any = None
    paths: Any = None


register_schema("train", TrainSchema, exclude=TRAIN_GROUPS)


def monitor_direction(monitor: str) -> str:
    """``maximize`` or ``minimize``: what a sweeper should do with ``trainer.monitor``."""
    return "maximize" if monitor_mode(monitor) == "max" else "minimize"


# Lets sweeper configs follow the monitored metric: ``direction: ${monitor_direction:${trainer.monitor}}``.
OmegaConf.register_new_resolver("monitor_direction", monitor_direction, replace=True)


@dataclass(frozen=True)
class TrainSettings:
    """The typed groups a training job hands down (the model group stays a config: its
    ``_target_`` blocks are what the factory instantiates)."""

    data: DataSchema
    trainer: TrainerSchema


def check_train_config(cfg: DictConfig) -> TrainSettings:
    """Everything ``train.py`` needs, checked before data generation or model building; returns
    the data and trainer groups typed, once."""
    check_types(cfg, TrainSchema, "", resolve=False)
    if cfg.ckpt_path and cfg.init_from:
        raise ConfigError("ckpt_path resumes a run and init_from starts a new one from weights: give one of them")
    check_model_config(cfg.model)
    data = check_data_config(cfg.data)
    trainer = check_trainer_config(cfg.trainer, data)
    check_logger_config(cfg.logger)
    return TrainSettings(data, trainer)


# ---- hybrid two-stage ------------------------------------------------------------------------
@dataclass
class TwoStagePlan(TwoStageCombination):
    """``two_stage``: each stage's training overrides (docs/sewerml.md, "Scoring, and the two-stage recipe") and how the
    stages' scores combine (``strategy``)."""

    binary: list[str] = field(default_factory=list)
    defect: list[str] = field(default_factory=list)


# experiment=sewerml_two_stage extends it: /schema/two_stage@two_stage
register_schema("two_stage", TwoStagePlan)


# ---- hybrid export ---------------------------------------------------------------------------
@dataclass
class CalibrationSchema:
    """``calibration``: the int8 calibration set (int8 only)."""

    num_images: int = 512  # training images, drawn with `seed`, through the eval transform
    method: str = "minmax"  # minmax | entropy | percentile
    seed: int = 0


@dataclass
class VerifySchema:
    """``verify``: how an export is checked against its checkpoint."""

    num_images: int = 256  # validation images (drawn with calibration.seed)
    fp32_tolerance: float = 1.0e-4  # max |delta probability| a float32 export may show, or it fails
    warn_metric_delta: float = 0.01  # int8 / fp16: warn when the monitored metric moves more than this


@dataclass
class ExportSchema:
    """``hybrid export ckpt_path=<run>/checkpoints/best.pt [precision=fp32|fp16|int8] [output=DIR]``.
    Calibration (int8) and verification read the data the checkpoint was trained with; ``data.*``
    overrides on the command line replace parts of it, as for infer."""

    task_name: str = "export"
    ckpt_path: str = "???"
    # fp32 | fp16 (float16 weights and compute, float32 input / output: GPU and NPU targets) |
    # int8 (ONNX Runtime static quantization, QDQ, per-channel int8 weights, uint8 activations)
    precision: str = "fp32"
    # a folder for model.onnx and export.json (null: this run's dir, outputs/export/runs/<time>); an
    # existing model.onnx there is never replaced
    output: str | None = None
    calibration: CalibrationSchema = field(default_factory=CalibrationSchema)
    verify: VerifySchema = field(default_factory=VerifySchema)
    num_threads: int | None = None
    data: Any = None
    paths: Any = None
    model: Any = None  # the checkpoint's, set when it is read


EXPORT_GROUPS = ("data", "paths", "model")  # typed by their own schemas


register_schema("export", ExportSchema, exclude=EXPORT_GROUPS)


# ---- hybrid benchmark ------------------------------------------------------------------------
@dataclass
class BenchmarkSchema:
    """``hybrid benchmark models=[<run>/checkpoints/best.pt,<export>/model.onnx]``: what models cost
    on this machine, per file and backend. Checkpoints run with the torch_* backends, .onnx files
    with onnxruntime and openvino."""

    task_name: str = "benchmark"
    models: Any = "???"  # checkpoints (.pt) and exports (.onnx)
    backends: list[str] = field(default_factory=lambda: ["torch_fp32", "torch_bf16_cl", "onnxruntime", "openvino"])
    device: str = "cpu"  # cpu | cuda (torch_* and onnxruntime with its CUDA provider)
    num_threads: int | None = None  # null: one per core
    warmup: int = 10  # untimed batch-1 runs first
    timed_runs: int = 100  # batch-1 runs behind the P50 / P95 / P99
    batch_sizes: list[int] = field(default_factory=lambda: [16, 32])  # images/s at each
    throughput_runs: int = 5  # timed batches per batch size
    retain_freed_memory: bool = True  # the allocator setting train / infer use (false: glibc's default)
    # .onnx rows run in a process of the serving code alone (hybrid.serve, no torch imported):
    # serve_python: the Python to run it with (null: .venv-serve/bin/python where make serve-venv made
    # it, else this one); images: a folder of JPEGs for its end-to-end images/s (null: 64 synthetic
    # 640x480 JPEGs, made in the run dir)
    serve_python: str | None = None
    images: str | None = None
    output: str | None = None  # a folder for efficiency.csv / .md / .png (null: this run's dir)
    logger: Any = None
    paths: Any = None


BENCHMARK_GROUPS = ("logger", "paths")  # typed by their own schemas


register_schema("benchmark", BenchmarkSchema, exclude=BENCHMARK_GROUPS)


# ---- hybrid evaluate -------------------------------------------------------------------------
@dataclass
class EvaluateSchema:
    """``hybrid evaluate predictions=P labels=L [output=O.json] [threshold=0.5]``: a predictions CSV
    scored against a label CSV with the official Sewer-ML metrics."""

    task_name: str = "evaluate"
    predictions: str = "???"
    labels: str = "???"
    output: str | None = None
    threshold: float = THRESHOLD
    paths: Any = None


register_schema("evaluate", EvaluateSchema, exclude=("paths",))


# ---- hybrid evaluate-video -------------------------------------------------------------------
@dataclass
class EvaluateVideoSchema:
    """``hybrid evaluate-video predictions=events.json labels=truth.json [output=O.json]``: timed
    defect predictions scored with the CCTV-Pipe temporal metric (VideoPipe challenge, ICPR 2022)."""

    task_name: str = "evaluate_video"
    predictions: str = "???"
    labels: str = "???"
    output: str | None = None
    # distances (seconds) within which a predicted moment matches a true one: the challenge's 5, 10, 15
    distances: list[float] = field(default_factory=lambda: list(DISTANCE_THRESHOLDS))
    paths: Any = None


register_schema("evaluate_video", EvaluateVideoSchema, exclude=("paths",))


# ---- hybrid prune ----------------------------------------------------------------------------
@dataclass
class PruneTargetSchema:
    """``target``: exactly one of flops / params / like."""

    flops: float | None = None  # FLOPs per image (a multiply-add counts 2), e.g. 5.39e9
    params: float | None = None  # trainable parameters
    like: str | None = None  # a checkpoint whose cost to match ...
    match: str = "flops"  # ... its flops or its params


@dataclass
class PruneSchema:
    """``hybrid prune ckpt_path=<run>/checkpoints/best.pt method=l1 target.flops=5.39e9``:
    structured pruning to a budget (torch-pruning); then fine-tune with ``hybrid train
    model=<the source's> init_from=<this run>/pruned.pt``."""

    task_name: str = "prune"
    ckpt_path: str = "???"
    method: str = "l1"  # l1 (channel L1 norm) | fpgm (distance to the layer's geometric median)
    target: PruneTargetSchema = field(default_factory=PruneTargetSchema)
    steps: int = 200  # pruning steps at most (smaller steps land closer to the target)
    output: str | None = None  # a folder for pruned.pt and prune.json (null: this run's dir)
    paths: Any = None


PRUNE_GROUPS = ("paths",)  # typed by its own schema


register_schema("prune", PruneSchema, exclude=PRUNE_GROUPS)


# ---- hybrid prepare --------------------------------------------------------------------------
PREPARE_GROUPS = ("data", "model", "paths")  # typed by their own schemas


@dataclass
class PrepareSchema:
    """``hybrid prepare [data=sewerml data.root=...] [model.img_size=480]``: decodes every image under
    data.root once, resizes it to model.img_size and writes it to data.cache_dir (default
    <root>/.cache/<img_size>/) in data.cache_format; train and infer then read the cache
    automatically. Resumable: rerunning skips entries already written. On every core
    (``prepare.num_workers``) and, in parts, on every node (``prepare.shard`` / ``prepare.num_shards``)."""

    task_name: str = "prepare"
    progress_bar: bool = True
    prepare: PrepareOptions = field(default_factory=PrepareOptions)
    data: Any = None
    model: Any = None
    paths: Any = None


register_schema("prepare", PrepareSchema, exclude=PREPARE_GROUPS)


# ---- hybrid report ---------------------------------------------------------------------------
@dataclass
class ReportSchema:
    """``hybrid report sweep_dir=outputs/train/multiruns/<time> [key=value ...]``: report.md / .csv /
    .png in the sweep dir, compare.md / .csv and pareto.png when its jobs train more than one model,
    aggregate.* for repeats."""

    task_name: str = "report"
    sweep_dir: str = "???"
    compare: bool | None = None  # the accuracy-versus-cost table (null: when the jobs train more than one model)
    latency_backend: str = "torch_bf16_cl"  # what measures each model's latency: torch_fp32 | torch_bf16_cl
    timed_runs: int = 30  # batch-1 runs behind each latency P50
    paths: Any = None


register_schema("report", ReportSchema, exclude=("paths",))


# ---- hybrid synthetic ------------------------------------------------------------------------
@dataclass
class SyntheticJobSchema(SyntheticSpec):
    """``hybrid synthetic root=DIR [key=value ...]``: write a synthetic Sewer-ML look-alike dataset
    (its keys those of ``data.synthetic``)."""

    root: str = option("???", "output folder (one made with other settings is refused, never overwritten)")
    task_name: str = "synthetic"
    paths: Any = None


register_schema("job/synthetic", SyntheticJobSchema, exclude=("paths",))


# ---- hybrid synthetic-video ------------------------------------------------------------------
@dataclass
class VideoJobSchema(VideoSpec):
    """``hybrid synthetic-video out=DIR [key=value ...]``: write synthetic inspection videos and
    their truth."""

    out: str = option("???", "output folder: the videos, truth.json, truth_defect.json, segments.csv")
    task_name: str = "synthetic_video"
    paths: Any = None


register_schema("job/synthetic_video", VideoJobSchema, exclude=("paths",))
