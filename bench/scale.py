"""``make scale``: all of Sewer-ML, measured on this machine without the data.

    python bench/scale.py [--rows 1170175] [--prepare-images 336] [--out bench/results]

1. **A Sewer-ML-sized tree**: ``--rows`` file names in Sewer-ML's style (8-digit ``.png`` names in
   folders of 100,000, as its extracted archives come), each a hard link to one of ``--sources``
   synthetic 640x480 JPEGs (no real data is needed; the names, not the pixels, are what scale), and
   ``SewerML_Train.csv`` / ``SewerML_Val.csv`` with the official header and seeded labels, split
   as Sewer-ML's 1,040,129 / 130,046. Kept in ``--tree`` and reused by a rerun.
2. **Prepare on 1 core and on every core**: ``hybrid prepare``'s cache builder
   (``hybrid.data.prepare.prepare_cache``) over the first ``--prepare-images`` names of the tree
   at ``--img-size``, into a fresh npy cache each time, with ``prepare.num_workers=1`` and
   ``auto``; images/s of each, their ratio, and the hours they extrapolate to for the 1.3 M images
   of Sewer-ML at 16 and 64 cores (linear in the cores, at this machine's per-core rate).

Writes ``<out>/scale_<machine>.json`` and ``.md``. The startup, memory and loader measurements the
"All of Sewer-ML" issue lists (command to first step, RSS / PSS of the workers, the packed cache's
images/s) are not in this version of the script.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SEWERML_TRAIN, SEWERML_VAL = 1_040_129, 130_046  # Sewer-ML's labelled rows (train, val)
SEWERML_IMAGES = 1_300_201  # train + val + test frames: what the extrapolated times are for
FOLDER_ROWS = 100_000  # names per folder, as Sewer-ML's archives extract


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=SEWERML_TRAIN + SEWERML_VAL, help="file names in the tree")
    parser.add_argument("--sources", type=int, default=336, help="distinct synthetic JPEGs the names link to")
    parser.add_argument("--tree", default=str(ROOT / "outputs" / "scale" / "tree"), help="where the tree is built")
    parser.add_argument("--prepare-images", type=int, default=336, help="images each prepare run caches")
    parser.add_argument("--img-size", type=int, default=480, help="the cache's image side (model.img_size)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"), help="folder for scale_<machine>.*")
    return parser.parse_args(argv)


def build_tree(tree: Path, rows: int, sources: int) -> dict:
    """The tree of ``rows`` hard links and its two CSVs (reused when it already has ``rows`` names)."""
    import pandas as pd

    from hybrid.benchmark import bench_jpegs
    from hybrid.data.sewerml import CSV_HEADER

    marker = tree / "tree.json"
    if marker.is_file() and json.loads(marker.read_text()).get("rows") == rows:
        return json.loads(marker.read_text())
    started = time.perf_counter()
    jpegs = sorted(bench_jpegs(tree.parent / "sources", sources).glob("*.jpg"))
    names = [f"{index + 1:08d}.png" for index in range(rows)]
    for start in range(0, rows, FOLDER_ROWS):
        folder = tree / "images" / f"part_{start // FOLDER_ROWS:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for offset, name in enumerate(names[start : start + FOLDER_ROWS]):
            link = folder / name
            if not link.exists():
                os.link(jpegs[(start + offset) % len(jpegs)], link)
    rng = np.random.default_rng(0)
    labels = (rng.random((rows, len(CSV_HEADER) - 1)) < 0.05).astype(np.int8)
    train_rows = round(rows * SEWERML_TRAIN / (SEWERML_TRAIN + SEWERML_VAL))
    for csv, part in (("SewerML_Train.csv", slice(0, train_rows)), ("SewerML_Val.csv", slice(train_rows, rows))):
        frame = pd.DataFrame(labels[part], columns=list(CSV_HEADER[1:]))
        frame.insert(0, "Filename", names[part])
        frame.to_csv(tree / csv, index=False)
    record = {"rows": rows, "sources": len(jpegs), "train_rows": train_rows, "build_s": time.perf_counter() - started}
    marker.write_text(json.dumps(record))
    return record


def prepare_rate(tree: Path, count: int, img_size: int, workers) -> float:
    """Images/s of the cache builder over the tree's first ``count`` names, into a fresh npy cache."""
    from hybrid.data.cache import cache_settings
    from hybrid.data.prepare import cache_entries, resolve_prepare_workers
    from hybrid.data.schema import DataSchema

    folder = tree / "images" / "part_00"
    items = [(path.name, str(path)) for path in sorted(folder.iterdir())[:count]]
    with tempfile.TemporaryDirectory(dir=tree.parent) as cache_dir:
        data = DataSchema(root=str(tree), cache_dir=cache_dir, img_size=img_size, in_channels=3)
        settings = cache_settings(data, tree)
        processes = resolve_prepare_workers(workers)
        started = time.perf_counter()
        outcomes = [outcome for _, _, outcome in cache_entries(items, settings, rebuild=False, workers=processes)]
        elapsed = time.perf_counter() - started
    assert outcomes.count("written") == len(items), outcomes[:3]
    return len(items) / elapsed


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    tree = Path(args.tree)
    record = build_tree(tree, args.rows, args.sources)
    from hybrid.benchmark import cpu_model
    from hybrid.data.loaders import available_cpus

    cores = available_cpus()
    one = prepare_rate(tree, args.prepare_images, args.img_size, 1)
    every = prepare_rate(tree, args.prepare_images, args.img_size, "auto")
    per_core = every / cores
    hours = {n: SEWERML_IMAGES / (per_core * n) / 3600 for n in (16, 64)}
    result = {
        "machine": f"{cpu_model()}, {cores} cores",
        "tree": record,
        "prepare": {"images": args.prepare_images, "img_size": args.img_size, "format": "npy",
                    "images_per_s_1_process": one, f"images_per_s_{cores}_processes": every,
                    "speedup": every / one, "hours_for_sewerml_16_cores": hours[16],
                    "hours_for_sewerml_64_cores": hours[64], "hours_for_sewerml_1_core": SEWERML_IMAGES / one / 3600},
    }  # fmt: skip
    machine = platform.machine()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"scale_{machine}.json").write_text(json.dumps(result, indent=2))
    lines = [
        f"`python bench/scale.py --rows {args.rows} --prepare-images {args.prepare_images}` on {result['machine']}: "
        f"a tree of {record['rows']:,} Sewer-ML-style names (hard links to {record['sources']} synthetic 640x480 "
        f"JPEGs); `hybrid prepare`'s builder caching {args.prepare_images} of them at {args.img_size} px (npy).",
        "",
        "| prepare | images/s | Sewer-ML's 1.3 M images |",
        "|---|---:|---:|",
        f"| 1 process | {one:.1f} | {SEWERML_IMAGES / one / 3600:.1f} h |",
        f"| {cores} processes (`prepare.num_workers=auto`) | {every:.1f} ({every / one:.2f}x) | "
        f"{SEWERML_IMAGES / every / 3600:.1f} h |",
        f"| 16 cores, extrapolated | {per_core * 16:.0f} | {hours[16]:.2f} h |",
        f"| 64 cores, extrapolated | {per_core * 64:.0f} | {hours[64]:.2f} h |",
        "",
        "Extrapolated linearly from this machine's rate per core, as if every core and the disk kept up.",
    ]
    (out / f"scale_{machine}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
