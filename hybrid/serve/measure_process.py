"""What serving an exported model costs on the device, measured in a process of the serving
install alone (no torch): ``python -m hybrid.jobs.benchmark`` runs this for every ``.onnx`` row, once at
batch 1 and once per batch size, each in its own fresh process so each peak memory is that
batch's alone.

    python -m hybrid.serve.measure_process MODEL.onnx IMAGES --batch B [--runtime R] [--threads N]
        [--warmup W] [--runs N] [--started UNIX_TIME]

Prints one JSON object: ``cold_start_s`` (from ``--started``, the caller's clock just before it
started this process, to the first prediction of an image file), batch-1 ``latency_p50/95/99_ms``
of the model on a decoded image (normalization, the runtime, softmax), ``images_per_s`` of the
model at batch ``B`` and ``end_to_end_images_per_s`` over the JPEGs of ``IMAGES`` (decoding and
resizing included), ``peak_rss_mb``, and ``training_stack_imported`` (false, or the figures are
not the serving install's).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from hybrid.serve.model import Model
from hybrid.serve.runtimes import DEFAULT_RUNTIME
from hybrid.util.images import IMAGE_SUFFIXES
from hybrid.util.memory import peak_rss_mb


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m hybrid.serve.measure_process", description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("images", help="a folder of image files (the first ones are used)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--runtime", default=DEFAULT_RUNTIME)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--runs", type=int, default=100, help="timed batch-1 runs, or timed batches")
    parser.add_argument("--started", type=float, default=None, help="time.time() when the caller started this")
    return parser.parse_args(argv)


def measure(args: argparse.Namespace) -> dict:
    """The figures of one serving process (see the module's docstring)."""
    started = args.started if args.started is not None else time.time()
    files = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    model = Model(args.model, runtime=args.runtime, threads=args.threads)
    model.predict(files[:1], batch_size=1)
    row = {"cold_start_s": time.time() - started, "runtime": model.session.description, "batch": args.batch}
    batch = [model.load(path) for path in (files * args.batch)[: args.batch]]

    def seconds() -> float:
        began = time.perf_counter()
        model.predict(batch, batch_size=len(batch))
        return time.perf_counter() - began

    for _ in range(args.warmup if args.batch == 1 else 2):
        seconds()
    timed = np.array([seconds() for _ in range(args.runs)])
    if args.batch == 1:
        row.update({f"latency_p{q}_ms": float(np.percentile(1000 * timed, q)) for q in (50, 95, 99)})
    row["images_per_s"] = args.batch * len(timed) / float(timed.sum())
    began = time.perf_counter()
    model.predict_files(files, batch_size=args.batch)  # as hybrid serve FOLDER predicts them
    row["end_to_end_images_per_s"] = len(files) / (time.perf_counter() - began)
    row["end_to_end_images"] = len(files)
    row["peak_rss_mb"] = peak_rss_mb()
    row["training_stack_imported"] = sorted({"torch", "torchvision", "pandas", "hydra"} & set(sys.modules))
    return row


def main(argv: list[str] | None = None) -> None:
    print(json.dumps(measure(parse_args(argv))))


if __name__ == "__main__":
    main()
