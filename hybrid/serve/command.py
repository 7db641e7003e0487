"""``hybrid serve MODEL.onnx INPUT``: predictions for an image or a folder of images (recursively)
with the serving install alone (numpy, Pillow, onnxruntime): ``predictions.csv`` as ``infer.py``
writes it, and ``skipped.csv`` naming the images that could not be read. Videos and live sources
are the open part of the "On the robot" issue; until then ``infer.py input=VIDEO`` serves them."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from hybrid.decisions import decided_labels, positive_index, resolve_negative_class
from hybrid.errors import DataError, HybridError
from hybrid.predictions import FILE, SKIPPED_FILE, write_predictions, write_skipped
from hybrid.serve.model import Model
from hybrid.serve.runtimes import RUNTIMES
from hybrid.util.images import IMAGE_SUFFIXES

USAGE_ERROR = 2


def image_files(source: Path) -> list[tuple[str, Path]]:
    """``(name, path)`` of ``source`` (one image: its file name) or of every image under it (names
    relative to it, sorted), as ``infer.py input=`` names them."""
    if source.is_file():
        if source.suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(f"{source} is not an image ({', '.join(IMAGE_SUFFIXES)})")
        return [(source.name, source)]
    if not source.is_dir():
        raise DataError(f"{source}: no such file or folder")
    paths = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise DataError(f"{source} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return [(os.path.relpath(p, source), p) for p in paths]


def check_model_file(path: Path) -> None:
    """``hybrid serve`` takes an exported ``.onnx``; a training checkpoint gets the command that makes one."""
    if path.suffix.lower() == ".pt":
        raise DataError(
            f"{path} is a training checkpoint; export it first (in the training install): "
            f"python -m hybrid.export ckpt_path={path}, then hybrid serve <its model.onnx> ..."
        )


def parser() -> argparse.ArgumentParser:
    """The command line of ``hybrid serve``."""
    out = argparse.ArgumentParser(
        prog="hybrid serve",
        description="Predict with an exported .onnx (python -m hybrid.export), without the training stack.",
    )
    out.add_argument("model", help="the exported model file (model.onnx)")
    out.add_argument("input", help="an image, or a folder of images (searched recursively)")
    out.add_argument("--out", default=".", help="folder for predictions.csv and skipped.csv (default: .)")
    out.add_argument(
        "--threshold", type=float, default=None, help="decision threshold (default: the model's, tuned or 0.5)"
    )
    out.add_argument("--runtime", choices=sorted(RUNTIMES), default="onnxruntime", help="(default: onnxruntime)")
    out.add_argument("--threads", type=int, default=None, help="intra-op threads (default: the runtime's choice)")
    out.add_argument("--batch", type=int, default=16, help="images per forward pass (default: 16)")
    return out


def serve_images(model: Model, files: list[tuple[str, Path]], out: Path, threshold, batch: int) -> dict:
    """Predict ``files`` in batches, write ``predictions.csv`` (and ``skipped.csv``) into ``out``."""
    names, rows, skipped = [], [], {}
    pending, started = [], time.perf_counter()
    for name, path in files:
        try:
            pending.append(model.load(path))
            names.append(name)
        except DataError as err:
            skipped[name] = "unreadable"
            print(f"hybrid serve: {err}; skipped", file=sys.stderr)
        if len(pending) == batch:
            rows.append(model.predict(pending, batch_size=batch))
            pending = []
    if pending:
        rows.append(model.predict(pending, batch_size=batch))
    probs = np.concatenate(rows) if rows else np.zeros((0, len(model.class_names)), np.float32)
    card = model.card
    negative = resolve_negative_class(card.task, card.class_names, card.negative_class)
    decision = card.tuned_threshold if threshold is None else threshold
    decision = np.asarray(0.5 if decision is None else decision)
    predicted = decided_labels(
        probs, card.class_names, decision, single_label=model.single_label,
        positive=positive_index(card.class_names, negative),
    )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    write_predictions(out / FILE, names, probs, card.class_names, predicted)
    if skipped:
        write_skipped(out / SKIPPED_FILE, skipped)
    return {"images": len(names), "skipped": len(skipped), "seconds": time.perf_counter() - started}


def main(argv: list[str] | None = None) -> int:
    """Run ``hybrid serve``; a mistake (a missing file, a foreign model) ends in one line and exit code 2."""
    args = parser().parse_args(argv)
    try:
        model_path = Path(args.model).expanduser()
        check_model_file(model_path)
        files = image_files(Path(args.input).expanduser())
        model = Model(model_path, runtime=args.runtime, threads=args.threads)
        done = serve_images(model, files, Path(args.out).expanduser(), args.threshold, int(args.batch))
    except HybridError as err:
        print(f"hybrid serve: {err}", file=sys.stderr)
        return USAGE_ERROR
    print(
        f"hybrid serve: {done['images']} images in {done['seconds']:.2f} s with {model.session.description}; "
        f"{done['skipped']} skipped; predictions in {Path(args.out) / FILE}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
