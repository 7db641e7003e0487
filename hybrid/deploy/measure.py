"""How fast a model file runs, and what it costs, measured the same way wherever it is asked
(``python -m hybrid.benchmark``, the comparison report): each measurement in a fresh process that
serves only that model, through one of :data:`BACKENDS`."""

from __future__ import annotations

import multiprocessing
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from hybrid.deploy.serving import ServingOptions, is_onnx, load_served_model, model_from_record
from hybrid.engine.checkpoint import CheckpointRecord
from hybrid.engine.runtime import autocast, configure_process
from hybrid.errors import ConfigError
from hybrid.models.factory import count_trainable, flops_per_image
from hybrid.serve.card import ModelCard


@dataclass(frozen=True)
class Backend:
    """One way to run a model file: which files it reads and the serving options it uses."""

    label: str
    reads_onnx: bool
    options: dict = field(default_factory=dict)


BACKENDS = {
    "torch_fp32": Backend("torch fp32", reads_onnx=False, options={"precision": "32", "channels_last": False}),
    "torch_bf16_cl": Backend(
        "torch bf16 + channels-last", reads_onnx=False, options={"precision": "bf16", "channels_last": True}
    ),
    "onnxruntime": Backend("ONNX Runtime", reads_onnx=True, options={"runtime": "onnxruntime"}),
    "openvino": Backend("OpenVINO", reads_onnx=True, options={"runtime": "openvino"}),
}


def check_backends(names) -> list[str]:
    """``backends``: names from :data:`BACKENDS`."""
    unknown = [str(name) for name in names if str(name) not in BACKENDS]
    if unknown or not names:
        raise ConfigError(f"backends={list(names)}: choose from {list(BACKENDS)}")
    return [str(name) for name in names]


def model_facts(path: str) -> dict:
    """What a model file says of itself: task, precision, parameters and GFLOPs of its source model,
    and the file's size (checkpoints are built once here to count them)."""
    if is_onnx(path):
        card = ModelCard.read(path)
        task, precision, params, flops = card.task, card.precision, card.parameters, card.flops_per_image
    else:
        record = CheckpointRecord.load(path)
        model = model_from_record(record, path).eval()
        data = record.config["data"]
        flops = flops_per_image(model, int(data["img_size"]), int(data["in_channels"]))
        task, precision, params = record.task, "fp32", count_trainable(model)
    return {
        "task": task,
        "file_precision": precision,
        "params": int(params),
        "gflops": flops / 1e9,
        "file_mb": Path(path).stat().st_size / 2**20,
    }


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass(frozen=True)
class MeasureSettings:
    """How a measurement runs: where, with how many threads, how many untimed and timed batch-1
    runs, which batch sizes' throughput over how many batches, and whether with the allocator
    setting of every run (:func:`~hybrid.engine.runtime.retain_freed_memory`)."""

    device: str = "cpu"
    num_threads: int | None = None
    warmup: int = 10
    timed_runs: int = 100
    batch_sizes: tuple[int, ...] = (16, 32)
    throughput_runs: int = 5
    retain_freed_memory: bool = True


def measure(path: str, backend: str, settings: MeasureSettings) -> dict:
    """Latency and throughput of ``path`` served by ``backend``, in this (fresh) process."""
    if settings.retain_freed_memory:
        configure_process(settings.num_threads)
    elif settings.num_threads:
        torch.set_num_threads(int(settings.num_threads))
    options = ServingOptions(device=settings.device, num_threads=settings.num_threads, **BACKENDS[backend].options)
    baseline_mb = peak_rss_mb()  # Python, torch and the runtime's libraries, before the model
    served = load_served_model(path, options)
    runtime, trained = served.runtime, served.trained
    shape = (int(trained.model.in_channels), int(trained.model.img_size), int(trained.model.img_size))
    generator = torch.Generator().manual_seed(0)

    def batch_of(size: int) -> torch.Tensor:
        images = torch.randn((size, *shape), generator=generator).to(runtime.device)
        return images.contiguous(memory_format=torch.channels_last) if runtime.channels_last else images

    @torch.no_grad()
    def seconds(images: torch.Tensor) -> float:
        start = time.perf_counter()
        with autocast(runtime.device, runtime.precision):
            served.model(images)
        if runtime.device.type == "cuda":
            torch.cuda.synchronize(runtime.device)
        return time.perf_counter() - start

    single = batch_of(1)
    for _ in range(settings.warmup):
        seconds(single)
    latencies = 1000 * np.array([seconds(single) for _ in range(settings.timed_runs)])
    row = {
        "runtime": served.description,
        **{f"latency_p{q}_ms": float(np.percentile(latencies, q)) for q in (50, 95, 99)},
    }
    for size in settings.batch_sizes:
        images = batch_of(size)
        for _ in range(2):
            seconds(images)
        timed = sum(seconds(images) for _ in range(settings.throughput_runs))
        row[f"images_per_s_b{size}"] = size * settings.throughput_runs / timed
    row["peak_rss_mb"] = peak_rss_mb()
    row["serving_rss_mb"] = row["peak_rss_mb"] - baseline_mb
    if runtime.device.type == "cuda":
        row["peak_cuda_mb"] = torch.cuda.max_memory_allocated(runtime.device) / 2**20
    return row


def measure_apart(path: str, backend: str, settings: MeasureSettings) -> dict:
    """:func:`measure` in a fresh process (its peak memory is that model's alone)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(measure, (path, backend, settings))
