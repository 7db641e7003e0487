"""What a model costs on the machine at hand, per file and backend, as the paper reports it.

``python -m hybrid.jobs.benchmark models=[A.pt,B.onnx] [backends=[torch_fp32,openvino]]``

For every model file and every backend that reads it (checkpoints: PyTorch float32, and bf16 with
channels-last; ``.onnx``: ONNX Runtime and OpenVINO at its default precision, the file's own
precision int8 / fp16 / fp32): parameters, GFLOPs per image, file size, batch-1 latency
P50 / P95 / P99 over ``timed_runs`` after ``warmup``, images/s at each of ``batch_sizes``, and the
peak resident memory of a process serving only that model (peak CUDA memory on a GPU). Each
measurement runs in its own fresh process, so one backend's memory or threads never colour
another's. Writes ``efficiency.csv`` and ``efficiency.md``, and where a ``metrics.json`` sits beside
a model file (its folder; the run dir for ``<run>/checkpoints/best.pt``) ``efficiency.png``:
test F1 macro (F2-CIW for multi-label models) against latency. Under ``logger=wandb`` the table and
plot go to W&B too.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from hybrid.data.synthetic import SyntheticSpec, render_image, sample_labels
from hybrid.deploy.measure import BACKENDS, MeasureSettings, check_backends, measure_apart, measure_serving, model_facts
from hybrid.deploy.serving import is_onnx
from hybrid.engine.outputs import pyplot
from hybrid.errors import CheckpointError, ConfigError
from hybrid.jobs.app import HydraJob
from hybrid.jobs.schema import BENCHMARK_GROUPS, BenchmarkSchema
from hybrid.tracking import log_results_table
from hybrid.util.atomic import atomic_write, atomic_write_text
from hybrid.util.hydra_job import run_dir as hydra_run_dir
from hybrid.util.typed_config import check_types, typed_job

log = logging.getLogger("hybrid.jobs.benchmark")  # not __main__ under python -m


def reported_test_metric(path: str, task: str) -> tuple[str, float] | None:
    """The test figure of a ``metrics.json`` beside the model file: in its folder, or for a
    checkpoint in ``<run>/checkpoints/`` in the run dir (never another file's run)."""
    key = "test/f2_ciw" if task == "multilabel" else "test/f1_macro"
    folders = [Path(path).parent]
    if not is_onnx(path) and Path(path).parent.name == "checkpoints":
        folders.append(Path(path).parent.parent)
    for folder in folders:
        metrics = folder / "metrics.json"
        if metrics.is_file():
            value = json.loads(metrics.read_text()).get(key)
            if value is not None:
                return key, float(value)
    return None


def short_names(paths: list[str]) -> dict[str, str]:
    """Each path by its shortest tail of two or more parts that tells it from the others
    (``export/model.onnx``)."""
    parts = {path: Path(path).parts for path in paths}
    for depth in range(2, max(len(p) for p in parts.values()) + 1):
        names = {path: "/".join(p[-depth:]) for path, p in parts.items()}
        if len(set(names.values())) == len(set(paths)):
            return names
    return {path: path for path in paths}


def markdown(frame: pd.DataFrame, footer: str) -> str:
    """The table a person reads, numbers rounded."""
    columns = {
        "model": "model", "backend": "backend", "file_precision": "precision", "params": "params",
        "gflops": "GFLOPs", "file_mb": "file MB", "latency_p50_ms": "P50 ms", "latency_p95_ms": "P95 ms",
        "latency_p99_ms": "P99 ms",
    }  # fmt: skip
    columns.update({c: f"img/s b{c.removeprefix('images_per_s_b')}" for c in frame if c.startswith("images_per_s_b")})
    columns.update(
        {c: f"JPEG img/s b{c.removeprefix('end_to_end_images_per_s_b')}" for c in frame if c.startswith("end_to_end_")}
    )
    labels = {
        "cold_start_s": "cold start s", "peak_rss_mb": "peak RSS MB", "peak_rss_b1_mb": "RSS b1 MB",
        "serving_rss_mb": "of it serving MB", "peak_cuda_mb": "peak CUDA MB", "install_mb": "install MB",
    }  # fmt: skip
    columns.update({key: label for key, label in labels.items() if key in frame})
    columns.update({c: c for c in ("test/f1_macro", "test/f2_ciw") if c in frame})
    lines = ["| " + " | ".join(columns.values()) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for _, row in frame.iterrows():
        cells = []
        for key in columns:
            value = row.get(key)
            if isinstance(value, float) and np.isnan(value):
                cells.append("")
            elif key == "params":
                cells.append(f"{int(value):,}")
            elif key.startswith("test/"):
                cells.append(f"{value:.4f}")
            elif isinstance(value, float):
                cells.append(f"{value:.2f}" if value < 100 else f"{value:.0f}")
            else:
                cells.append(str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\n{footer}\n"


def plot_accuracy_vs_latency(frame: pd.DataFrame, path: Path) -> Path | None:
    """Test metric against batch-1 P50 latency, one labelled point per model and backend."""
    metric = next((c for c in ("test/f2_ciw", "test/f1_macro") if c in frame and frame[c].notna().any()), None)
    if metric is None:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    rows = frame[frame[metric].notna()]
    ax.scatter(rows["latency_p50_ms"], rows[metric])
    for _, row in rows.iterrows():
        ax.annotate(f"{row['model']}\n{row['backend']}", (row["latency_p50_ms"], row[metric]), fontsize=7)
    ax.set_xlabel("batch-1 latency P50 (ms)")
    ax.set_ylabel(metric)
    ax.set_title("accuracy against latency")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120))
    plt.close(fig)
    return path


# the serving rows' end-to-end images: synthetic pipe scenes the size of a CCTV frame
BENCH_JPEGS, BENCH_SIZE = 64, (640, 480)


def bench_jpegs(folder: Path, count: int = BENCH_JPEGS) -> Path:
    """``count`` synthetic 640x480 JPEGs in ``folder`` (made once; kept for a rerun)."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = SyntheticSpec(width=BENCH_SIZE[0], height=BENCH_SIZE[1])
    for index in range(count):
        path = folder / f"{index + 1:04d}.jpg"
        if not path.is_file():
            rng = np.random.default_rng([7, index])
            codes, water = sample_labels(rng, spec.defect_rate)
            pixels = render_image(rng, codes, water, spec)
            atomic_write(path, lambda tmp, pixels=pixels: Image.fromarray(pixels).save(tmp, "JPEG", quality=90))
    return folder


def serving_python(serve_python: str | None) -> str:
    """The Python the serving rows run in: ``serve_python``, else ``.venv-serve`` where ``make
    serve-venv`` made it, else this one (torch installed but never imported there)."""
    if serve_python:
        return str(Path(serve_python).expanduser())
    made = Path(__file__).resolve().parents[1] / ".venv-serve" / "bin" / "python"
    return str(made) if made.is_file() else sys.executable


def cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo``), else what ``platform`` knows of it."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            return next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        return cpu


def machine_line(settings: MeasureSettings) -> str:
    """Where the figures were measured."""
    cpu = cpu_model()
    threads = settings.num_threads or torch.get_num_threads()
    return (
        f"{cpu}, {os.cpu_count()} cores, {threads} threads, device {settings.device}; batch-1 latency over "
        f"{settings.timed_runs} runs after {settings.warmup} warm-up; images/s over "
        f"{settings.throughput_runs} batches; each row in its own process"
        f"{'' if settings.retain_freed_memory else '; glibc default allocator'}. "
        ".onnx rows: the serving code alone (hybrid.serve, no torch imported), cold start = process start to "
        f"the first prediction, end-to-end img/s over {BENCH_JPEGS} 640x480 JPEGs (decoding and resizing "
        "included), peak RSS at batch 1 and at the largest batch, the install's size on disk."
    )


def benchmark(cfg: DictConfig) -> pd.DataFrame:
    """Measure every model file with every backend that reads it; write the tables and plot."""
    check_types(cfg, BenchmarkSchema, "", resolve=False)  # a typo'd or mistyped key stops here
    if OmegaConf.is_missing(cfg, "models") or not cfg.models:
        raise ConfigError(
            "models is required: python -m hybrid.jobs.benchmark models=[<run>/checkpoints/best.pt,model.onnx]"
        )
    job = typed_job(cfg, BenchmarkSchema, groups=BENCHMARK_GROUPS)  # the job's own keys, typed once
    models = [str(Path(str(m)).expanduser()) for m in job.models]
    backends = check_backends(job.backends)
    for path in models:
        if not Path(path).is_file():
            raise CheckpointError(f"models: {path}: no such file")
    settings = MeasureSettings(
        device=job.device,
        num_threads=job.num_threads,
        warmup=job.warmup,
        timed_runs=job.timed_runs,
        batch_sizes=tuple(job.batch_sizes),
        throughput_runs=job.throughput_runs,
        retain_freed_memory=job.retain_freed_memory,
    )
    out = Path(job.output).expanduser() if job.output else hydra_run_dir(cfg)
    images = Path(job.images).expanduser() if job.images else None
    python = serving_python(job.serve_python)
    rows, names = [], short_names(models)
    for path in models:
        facts = model_facts(path)
        metric = reported_test_metric(path, facts["task"])
        for backend in backends:
            if BACKENDS[backend].reads_onnx != is_onnx(path):
                continue
            log.info("measuring %s with %s", path, BACKENDS[backend].label)
            row = {"model": names[path]}
            if is_onnx(path):
                images = images or bench_jpegs(out / "jpegs")
                measured = measure_serving(path, backend, settings, images, python)
            else:
                measured = measure_apart(path, backend, settings)
            row.update({"backend": BACKENDS[backend].label, **facts, **measured})
            if metric:
                row[metric[0]] = metric[1]
            rows.append(row)
            log.info(
                "  P50 %.2f ms  P95 %.2f ms  P99 %.2f ms  %s  peak RSS %.0f MB%s",
                row["latency_p50_ms"], row["latency_p95_ms"], row["latency_p99_ms"],
                "  ".join(f"b{s}: {row[f'images_per_s_b{s}']:.1f} img/s" for s in settings.batch_sizes),
                row["peak_rss_mb"],
                f" ({row['serving_rss_mb']:.0f} MB serving)" if "serving_rss_mb" in row else
                f"; cold start {row['cold_start_s']:.2f} s, RSS at batch 1 {row['peak_rss_b1_mb']:.0f} MB, "
                f"install {row['install_mb']:.0f} MB",
            )  # fmt: skip
    if not rows:
        raise ConfigError(
            f"no backend of {backends} reads the given models (.pt: torch_*; .onnx: onnxruntime, openvino)"
        )
    frame = pd.DataFrame(rows)
    table = markdown(frame, machine_line(settings))
    atomic_write(out / "efficiency.csv", lambda tmp: frame.to_csv(tmp, index=False))
    atomic_write_text(out / "efficiency.md", table)
    plot = plot_accuracy_vs_latency(frame, out / "efficiency.png")
    log.info("efficiency:\n%s", table)
    log_results_table(cfg, out, "benchmark", ["benchmark"], "efficiency", frame, ("efficiency", plot) if plot else None)
    log.info("written to %s (efficiency.csv, efficiency.md%s)", out, ", efficiency.png" if plot else "")
    return frame


main = HydraJob("benchmark", benchmark)

if __name__ == "__main__":
    sys.exit(main())
