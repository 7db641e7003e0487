"""``make bench-serve``: the serving install against the training install on one exported model,
side by side in one run, as the robot would run each (docs/robot.md).

    python bench/serving.py --ckpt <run>/checkpoints/best.pt [--out outputs/serving] [--images 64]

It exports the checkpoint to int8 and fp32 ``.onnx`` (kept in ``<out>/export_*``), makes
``--images`` synthetic 640x480 JPEGs and a synthetic inspection video, then runs each command as
its own process (wall time from start to exit; peak resident memory from ``/usr/bin/time``):

- ``infer.py ckpt_path=int8.onnx runtime=onnxruntime input=JPEGS`` against
  ``.venv-serve/bin/hybrid serve int8.onnx JPEGS`` at ``--batch 16`` and ``--batch 1``;
- predictions compared: int8 serve against int8 ``infer.py``, fp32 serve against
  ``infer.py ckpt_path=best.pt precision=32`` (max |delta p|, decisions);
- the video: ``events.json`` of ``hybrid serve`` against ``infer.py input=VIDEO`` on the int8
  file, and frame scores of the fp32 file against the checkpoint's;
- ``python -m hybrid.serve.measure_process`` in the serving install: cold start (process start to first
  prediction), batch-1 P50/P95/P99, peak RSS at batch 1 and 16; and the install's size.

Writes ``<out>/serving.json`` and ``<out>/serving.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SERVE_PYTHON = ROOT / ".venv-serve" / "bin" / "python"
TIME = "/usr/bin/time"  # GNU time: a child's own peak RSS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", required=True, help="a hybrid checkpoint (best.pt) of the model to serve")
    parser.add_argument("--out", default=str(ROOT / "outputs" / "serving"))
    parser.add_argument("--images", type=int, default=64, help="synthetic 640x480 JPEGs to predict")
    parser.add_argument("--video-s", type=float, default=30.0, help="length of the synthetic video")
    return parser.parse_args(argv)


def timed(arguments: list[str], log: Path) -> dict:
    """Run ``arguments`` as a child process under ``/usr/bin/time``; its wall time (s) and peak RSS
    (MB), output to ``log``. (Not this process's ``wait4``: a child's ``ru_maxrss`` keeps the
    peak of the process it was forked from, this one, across ``exec``; ``time`` forks it afresh.)"""
    if not Path(TIME).is_file():
        sys.exit(f"{TIME} is missing (Debian: apt-get install time)")
    rss = log.with_suffix(".rss")
    started = time.perf_counter()
    with open(log, "w") as handle:
        done = subprocess.run([TIME, "-f", "%M", "-o", str(rss), *map(str, arguments)], cwd=ROOT, stdout=handle,
                              stderr=subprocess.STDOUT)  # fmt: skip
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(map(str, arguments))} failed; see {log}")
    return {"wall_s": wall, "peak_rss_mb": int(rss.read_text().split()[-1]) / 1024}


def compare(served: Path, reference: Path, key: str = "Filename") -> dict:
    """Max |delta p| and the share of equal decisions of two predictions / frames tables."""
    a, b = pd.read_csv(served), pd.read_csv(reference)
    classes = [c for c in a.columns if c not in (key, "prediction", "video", "frame_index", "time_s")]
    a, b = a.sort_values(key).reset_index(drop=True), b.sort_values(key).reset_index(drop=True)
    assert (a[key] == b[key]).all(), f"{served} and {reference} list different rows"
    delta = float(np.abs(a[classes].to_numpy() - b[classes].to_numpy()).max())
    return {"max_delta_p": delta, "decisions_equal": float((a.prediction == b.prediction).mean()), "rows": len(a)}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not SERVE_PYTHON.is_file():
        sys.exit("no .venv-serve: run make serve-venv first")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    python, hybrid = sys.executable, str(SERVE_PYTHON.parent / "hybrid")
    infer = [python, str(ROOT / "infer.py"), "logger=none", "progress_bar=false"]
    int8, fp32 = out / "export_int8" / "model.onnx", out / "export_fp32" / "model.onnx"
    for path, precision in ((int8, "int8"), (fp32, "fp32")):
        if not path.is_file():
            timed([python, "-m", "hybrid.jobs.export", f"ckpt_path={args.ckpt}", f"precision={precision}",
                   f"hydra.run.dir={path.parent}"], out / f"export_{precision}.log")  # fmt: skip
    from hybrid.data.synthetic.pipe_videos import VideoSpec, generate
    from hybrid.jobs.benchmark import bench_jpegs

    jpegs = bench_jpegs(out / "jpegs", args.images)
    video = generate(out / "video", VideoSpec(videos=1, duration_s=args.video_s)) / "pipe_001.mp4"
    runs = {
        "infer_int8": [*infer, f"ckpt_path={int8}", "runtime=onnxruntime", f"input={jpegs}", f"hydra.run.dir={out / 'infer_int8'}"],
        "serve_int8_b16": [hybrid, "serve", str(int8), str(jpegs), "--out", str(out / "serve_int8_b16"), "--batch", "16"],
        "serve_int8_b1": [hybrid, "serve", str(int8), str(jpegs), "--out", str(out / "serve_int8_b1"), "--batch", "1"],
        "infer_pt32": [*infer, f"ckpt_path={args.ckpt}", "precision=32", f"input={jpegs}", f"hydra.run.dir={out / 'infer_pt32'}"],
        "serve_fp32": [hybrid, "serve", str(fp32), str(jpegs), "--out", str(out / "serve_fp32")],
        "infer_int8_video": [*infer, f"ckpt_path={int8}", "runtime=onnxruntime", f"input={video}", f"hydra.run.dir={out / 'infer_int8_video'}"],
        "serve_int8_video": [hybrid, "serve", str(int8), str(video), "--out", str(out / "serve_int8_video")],
        "infer_pt32_video": [*infer, f"ckpt_path={args.ckpt}", "precision=32", f"input={video}", f"hydra.run.dir={out / 'infer_pt32_video'}"],
        "serve_fp32_video": [hybrid, "serve", str(fp32), str(video), "--out", str(out / "serve_fp32_video")],
    }  # fmt: skip
    result = {"machine": machine(), "images": args.images, "video_s": args.video_s, "commands": {}}
    for name, arguments in runs.items():
        print(f"{name}: {' '.join(map(str, arguments))}", flush=True)
        result["commands"][name] = {**timed(arguments, out / f"{name}.log"), "command": arguments}
        if "video" not in name:
            result["commands"][name]["images_per_s"] = args.images / result["commands"][name]["wall_s"]
    result["parity"] = {
        "int8_serve_vs_infer": compare(out / "serve_int8_b16/predictions.csv", out / "infer_int8/predictions.csv"),
        "fp32_serve_vs_pt32": compare(out / "serve_fp32/predictions.csv", out / "infer_pt32/predictions.csv"),
        "video_events_json_equal": (out / "serve_int8_video/events.json").read_text()
        == (out / "infer_int8_video/events.json").read_text(),
        "video_fp32_frames_vs_pt32": compare(
            out / "serve_fp32_video/frames.csv", out / "infer_pt32_video/frames.csv", key="time_s"
        ),
    }
    from hybrid.deploy.measure import MeasureSettings, install_mb, serving_process

    settings = MeasureSettings(timed_runs=100, throughput_runs=10)
    for batch in (1, 16):
        result[f"serve_measure_b{batch}"] = serving_process(
            str(SERVE_PYTHON), str(int8), jpegs, "onnxruntime", batch, settings
        )

    result["install_mb"] = {"serve": install_mb(str(SERVE_PYTHON)), "training": install_mb(python)}
    (out / "serving.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    (out / "serving.md").write_text(markdown(result))
    print((out / "serving.md").read_text())


def machine() -> str:
    cpu = platform.machine()
    with open("/proc/cpuinfo") as handle:
        cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    return f"{cpu}, {os.cpu_count()} cores"


def markdown(result: dict) -> str:
    """The side-by-side table of ``serving.json``."""
    c, p = result["commands"], result["parity"]
    b1, b16 = result["serve_measure_b1"], result["serve_measure_b16"]
    lines = [
        f"Measured on {result['machine']}, one run each; {result['images']} synthetic 640x480 JPEGs, "
        f"a {result['video_s']:g} s synthetic video; wall time from process start to exit.",
        "",
        "| command | wall s | img/s (whole process) | peak RSS MB |",
        "|---|---|---|---|",
    ]
    for name, label in (
        ("infer_int8", "`infer.py ckpt_path=int8.onnx runtime=onnxruntime input=jpegs`"),
        ("serve_int8_b16", "`hybrid serve int8.onnx jpegs` (batch 16)"),
        ("serve_int8_b1", "`hybrid serve int8.onnx jpegs --batch 1`"),
        ("infer_int8_video", "`infer.py ckpt_path=int8.onnx runtime=onnxruntime input=video.mp4`"),
        ("serve_int8_video", "`hybrid serve int8.onnx video.mp4`"),
    ):
        rate = f"{c[name]['images_per_s']:.1f}" if "images_per_s" in c[name] else ""
        lines.append(f"| {label} | {c[name]['wall_s']:.2f} | {rate} | {c[name]['peak_rss_mb']:.0f} |")
    i8, f32, vf = p["int8_serve_vs_infer"], p["fp32_serve_vs_pt32"], p["video_fp32_frames_vs_pt32"]
    lines += [
        "",
        f"- serving install (int8, `python -m hybrid.serve.measure_process`): cold start {b1['cold_start_s']:.2f} s; "
        f"batch-1 P50 / P95 / P99 {b1['latency_p50_ms']:.2f} / {b1['latency_p95_ms']:.2f} / "
        f"{b1['latency_p99_ms']:.2f} ms; peak RSS {b1['peak_rss_mb']:.0f} MB at batch 1, "
        f"{b16['peak_rss_mb']:.0f} MB at batch 16; end to end {b16['end_to_end_images_per_s']:.1f} img/s at batch 16",
        f"- installs on disk: serving {result['install_mb']['serve']:.0f} MB, training {result['install_mb']['training']:.0f} MB",
        f"- int8: `hybrid serve` against `infer.py` on the same file: max |delta p| {i8['max_delta_p']:.2g}, "
        f"decisions equal on {100 * i8['decisions_equal']:.1f}% of {i8['rows']} images",
        f"- fp32 `.onnx` served against `infer.py ckpt_path=best.pt precision=32`: max |delta p| "
        f"{f32['max_delta_p']:.2g}, decisions equal on {100 * f32['decisions_equal']:.1f}%",
        f"- video: `events.json` of `hybrid serve` and `infer.py` on the int8 file "
        f"{'equal' if p['video_events_json_equal'] else 'DIFFERENT'}; fp32 frame scores against the checkpoint's: "
        f"max |delta p| {vf['max_delta_p']:.2g}, decisions equal on {100 * vf['decisions_equal']:.1f}% of {vf['rows']} frames",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
