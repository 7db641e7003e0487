"""``make bench-live``: what ``hybrid serve`` costs on a live stream, in CPU-seconds per
stream-second, against an earlier commit's, side by side in one run (docs/robot.md).

    python bench/live_cpu.py --model INT8.onnx [--baseline REF] [--rounds 2] [--seconds 20]

A synthetic 1280x720, 25 fps inspection video (x264) is sent in real time as MPEG-TS over UDP on
the loopback (``tests/stream_sender.py``, as ``ffmpeg -re -i pipe.mp4 -c copy -f mpegts URL``
would) to ``.venv-serve/bin/python -m hybrid.commands serve MODEL udp://... --fps 2``, the
current checkout's code and ``REF``'s (a ``git worktree``), alternately, ``--rounds`` times each.
The serving process's user+system CPU time (``/proc/<pid>/stat``, every thread) is read when the
sender starts and when it has sent its last packet plus one second, so start-up (imports, the
model's load) is left out; divided by the video's length. Each run's frames are counted from its
``frames.csv``. Writes ``--out``/live_cpu.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVE_PYTHON = ROOT / ".venv-serve" / "bin" / "python"
TICKS = os.sysconf("SC_CLK_TCK")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="the exported .onnx to serve (the int8 default model)")
    parser.add_argument("--baseline", default=None, help="a git commit to compare with (default: none)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the streamed video")
    parser.add_argument("--fps", type=float, default=2.0, help="hybrid serve --fps")
    parser.add_argument("--out", default=str(ROOT / "outputs" / "live_cpu"))
    parser.add_argument("--results", default=None, help="also write the table here (bench/results/...md)")
    return parser.parse_args(argv)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (``/proc/<pid>/stat`` fields 14, 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_video(folder: Path, seconds: float) -> Path:
    """The 1280x720, 25 fps synthetic video (made once, with the training install's generator)."""
    video = folder / "pipe_001.mp4"
    if not video.exists():
        code = (
            "from pathlib import Path; from hybrid.data.synthetic.pipe_videos import VideoSpec, generate; "
            f"generate(Path({str(folder)!r}), VideoSpec(videos=1, duration_s={seconds}, width=1280, height=720, fps=25.0))"
        )
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    return video


def one_run(code: Path, model: str, video: Path, fps: float, out: Path, seconds: float) -> dict:
    """Serve one real-time UDP stream of ``video`` with the code at ``code``; its CPU figures."""
    port = free_udp_port()
    env = {**os.environ, "PYTHONPATH": str(code)}
    serve = subprocess.Popen(
        [str(SERVE_PYTHON), "-m", "hybrid.commands", "serve", model, f"udp://127.0.0.1:{port}", "--out", str(out),
         "--fps", f"{fps:g}", "--timeout", "30"],
        cwd=code, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(4.0)  # imports and the model's load done, the port bound
    before = cpu_seconds(serve.pid)
    sender = subprocess.run(
        [sys.executable, "-m", "tests.stream_sender", str(video), f"udp://127.0.0.1:{port}?pkt_size=1316", "--realtime"],
        cwd=ROOT, check=True,
    )  # fmt: skip
    del sender
    time.sleep(1.0)
    after = cpu_seconds(serve.pid)
    serve.send_signal(signal.SIGINT)
    _, stderr = serve.communicate(timeout=60)
    frames = max(0, len((out / "frames.csv").read_text().splitlines()) - 1) if (out / "frames.csv").exists() else 0
    return {"cpu_s": after - before, "cpu_per_stream_s": (after - before) / seconds, "frames": frames,
            "stderr_tail": stderr.strip().splitlines()[-1:]}  # fmt: skip


def describe_model(path: str) -> str:
    """What the served file is, from its model card: ``the cats_hybrid model (480 px, 5.39 GFLOPs) in int8``."""
    from hybrid.serve.model_card import ModelCard

    card = ModelCard.read(path)
    name = card.config["model"]["name"]
    return f"the {name} model ({card.img_size} px, {card.flops_per_image / 1e9:.2f} GFLOPs) in {card.precision}"


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not SERVE_PYTHON.exists():
        sys.exit(f"{SERVE_PYTHON} is missing: run make serve-venv first")
    video = make_video(out / "video", args.seconds)
    codes = {"this checkout": ROOT}
    if args.baseline:
        worktree = out / f"baseline-{args.baseline}"
        if not worktree.exists():
            subprocess.run(["git", "worktree", "add", "--detach", str(worktree), args.baseline], cwd=ROOT, check=True)
        codes[f"baseline {args.baseline}"] = worktree
    runs: dict[str, list[dict]] = {name: [] for name in codes}
    for round_index in range(args.rounds):
        for name, code in codes.items():
            folder = out / "runs" / f"{name.replace(' ', '_')}-{round_index}"
            subprocess.run(["rm", "-rf", str(folder)], check=True)
            runs[name].append(one_run(code, args.model, video, args.fps, folder, args.seconds))
            print(name, runs[name][-1], flush=True)
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model_name = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if "Model name" in line), "?")
    rows = [
        (name, statistics.median(r["cpu_per_stream_s"] for r in results), [r["frames"] for r in results])
        for name, results in runs.items()
    ]
    lines = [
        f"Live `hybrid serve` on a {args.seconds:g} s 1280x720 25 fps x264 stream (MPEG-TS over UDP, real time), "
        f"`--fps {args.fps:g}`, {describe_model(args.model)}; {platform.machine()} {model_name}, "
        f"{os.cpu_count()} cores; median of {args.rounds} alternated runs (`bench/live_cpu.py`).",
        "",
        "| code | CPU-s per stream-s | frames scored per run |",
        "|---|---:|---|",
        *(f"| {name} | {value:.3f} | {', '.join(map(str, frames))} |" for name, value, frames in rows),
    ]
    if len(rows) == 2:
        lines += ["", f"Ratio: {rows[0][1] / rows[1][1]:.2f} of the baseline's."]
    table = "\n".join(lines) + "\n"
    (out / "live_cpu.md").write_text(table)
    (out / "live_cpu.json").write_text(json.dumps({"runs": runs, "args": vars(args)}, indent=1) + "\n")
    if args.results:
        Path(args.results).write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
