"""How fast a model file runs, and what it costs, measured the same way wherever it is asked
(``python -m hybrid.jobs.benchmark``, the comparison report): each measurement in a fresh process that
serves only that model, through one of :data:`BACKENDS`."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import subprocess
import sys
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
from hybrid.serve.model_card import ModelCard
from hybrid.util.memory import peak_rss_mb

log = logging.getLogger(__name__)


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


def install_mb(python: str) -> float:
    """The size on disk of the virtual environment that ``python`` runs in (NaN for a Python that
    is not in one: its prefix is the whole system's)."""
    asked = "import sys; print(sys.prefix); print(sys.base_prefix)"
    prefix, base = subprocess.run([python, "-c", asked], capture_output=True, text=True, check=True).stdout.split("\n")[
        :2
    ]
    if prefix == base:
        return float("nan")
    total = 0
    for folder, _, files in os.walk(prefix):
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                total += os.path.getsize(path)
    return total / 2**20


def serving_process(python: str, path: str, images: Path, runtime: str, batch: int, settings: MeasureSettings) -> dict:
    """One ``python -m hybrid.serve.measure_process`` process (the serving code alone); its figures."""
    arguments = [
        python,
        "-m",
        "hybrid.serve.measure_process",
        path,
        str(images),
        "--batch",
        str(batch),
        "--runtime",
        runtime,
    ]
    arguments += [
        "--warmup",
        str(settings.warmup),
        "--runs",
        str(settings.timed_runs if batch == 1 else settings.throughput_runs),
    ]
    if settings.num_threads:
        arguments += ["--threads", str(settings.num_threads)]
    done = subprocess.run([*arguments, "--started", repr(time.time())], capture_output=True, text=True)
    if done.returncode != 0:
        raise ConfigError(f"measuring {path} in {python}: {done.stderr.strip().splitlines()[-1]}")
    row = json.loads(done.stdout.strip().splitlines()[-1])
    if row["training_stack_imported"]:
        raise ConfigError(f"the serving measurement of {path} imported {row['training_stack_imported']}")
    return row


def measure_serving(path: str, backend: str, settings: MeasureSettings, images: Path, python: str) -> dict:
    """An ``.onnx`` row as the robot serves it (:mod:`hybrid.serve.measure_process`): cold start and
    batch-1 latency and peak RSS in one fresh process, images/s (the model, and end to end over
    the JPEGs of ``images``) and peak RSS per batch size in one more each; and the size of the
    install that ``python`` runs in."""
    if settings.device != "cpu":
        raise ConfigError(f"device={settings.device}: the serving rows of .onnx files are measured on the CPU")
    runtime = BACKENDS[backend].options["runtime"]
    if python != sys.executable and not has_module(python, runtime):  # openvino is optional on a robot
        log.warning("%s has no %s: measuring %s with it in %s (torch installed, never imported)",
                    python, runtime, path, sys.executable)  # fmt: skip
        python = sys.executable
    single = serving_process(python, path, images, runtime, 1, settings)
    row = {
        "runtime": single["runtime"],
        **{key: single[key] for key in ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "cold_start_s")},
        "peak_rss_b1_mb": single["peak_rss_mb"],
        "end_to_end_images_per_s_b1": single["end_to_end_images_per_s"],
    }
    for size in settings.batch_sizes:
        batch = serving_process(python, path, images, runtime, size, settings)
        row[f"images_per_s_b{size}"] = batch["images_per_s"]
        row[f"end_to_end_images_per_s_b{size}"] = batch["end_to_end_images_per_s"]
        row[f"peak_rss_b{size}_mb"] = batch["peak_rss_mb"]
    row["peak_rss_mb"] = max(value for key, value in row.items() if key.startswith("peak_rss_b"))
    row["install_mb"] = install_mb(python)
    row["install"] = str(Path(python).parent.parent.name)
    return row


def has_module(python: str, module: str) -> bool:
    """Whether ``python`` can import ``module``."""
    return subprocess.run([python, "-c", f"import {module}"], capture_output=True).returncode == 0
