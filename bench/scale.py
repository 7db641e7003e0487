"""``make scale``: all of Sewer-ML, measured on this machine without the data.

    python bench/scale.py [--rows 1170175] [--prepare-images 2000] [--loader-images 1000] [--rounds 3]
                          [--out bench/results]

1. **A Sewer-ML-sized tree**: ``--rows`` file names in Sewer-ML's style (8-digit ``.png`` names in
   folders of 100,000, as its extracted archives come), each a hard link to one of ``--sources``
   synthetic 640x480 JPEGs (no real data is needed; the names, not the pixels, are what scale), and
   ``SewerML_Train.csv`` / ``SewerML_Val.csv`` with the official header and seeded labels, split
   as Sewer-ML's 1,040,129 / 130,046. Kept in ``--tree`` and reused by a rerun; a second tree of
   ``--small-rows`` names is the baseline the memory is compared with.
2. **Startup and memory** (``bench/first_step.py``): ``hybrid train experiment=sewerml_multilabel``
   on each tree, 2 loader workers; seconds from the command (imports excluded) to the first batch,
   the image index's and the CSVs' share of them, and RSS / PSS of the training process and its
   workers at that moment.
3. **Prepare on 1 core and on every core**: ``hybrid prepare``'s cache builder
   (``hybrid.data.cache_builder.cache_entries``) over ``--prepare-images`` names of the tree at
   ``--img-size``, into a fresh npy cache each time, with ``prepare.num_workers=1`` and ``auto``;
   images/s of each, their ratio, and the hours they extrapolate to for the 1.3 M images of
   Sewer-ML at 16 and 64 cores (linear in the cores, at this machine's per-core rate).
4. **Loader images/s** by source: the training and the evaluation loaders (2 workers) over
   ``--loader-images`` names, from the JPEG files, the npy cache and the packed cache (each
   prepared first, then read warm from the page cache: this measures the loader's own cost, not a
   cluster file system's); ``--rounds`` interleaved passes, the median of each kept.

Writes ``<out>/scale_<machine>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
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
    parser.add_argument("--small-rows", type=int, default=2000, help="names in the baseline tree (memory)")
    parser.add_argument("--prepare-images", type=int, default=2000, help="images each prepare run caches")
    parser.add_argument("--loader-images", type=int, default=1000, help="images each loader reads")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved passes of each loader (median kept)")
    parser.add_argument("--img-size", type=int, default=480, help="the cache's image side (model.img_size)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"), help="folder for scale_<machine>.*")
    return parser.parse_args(argv)


def build_tree(tree: Path, rows: int, sources: int) -> dict:
    """The tree of ``rows`` hard links and its two CSVs (reused when it already has ``rows`` names)."""
    import pandas as pd

    from hybrid.data.sewerml import CSV_HEADER
    from hybrid.jobs.benchmark import bench_jpegs

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
    from hybrid.data.cache_builder import cache_entries, resolve_prepare_workers
    from hybrid.data.schema import DataSchema

    folder = tree / "images" / "part_00"
    items = [(path.name, str(path)) for path in sorted(folder.iterdir())[:count]]
    with tempfile.TemporaryDirectory(dir=tree.parent) as cache_dir:
        data = DataSchema(root=str(tree), cache_dir=cache_dir, img_size=img_size, in_channels=3)
        settings = cache_settings(data, tree)
        processes = resolve_prepare_workers(workers)
        started = time.perf_counter()
        outcomes = [outcome for _, _, outcome, *_ in cache_entries(items, settings, rebuild=False, workers=processes)]
        elapsed = time.perf_counter() - started
    assert outcomes.count("written") == len(items), outcomes[:3]
    return len(items) / elapsed


def first_step(tree: Path, out: Path) -> dict:
    """``bench/first_step.py`` on a tree: command to first batch, and memory then."""
    record = out / f"first_step_{tree.name}.json"
    command = [sys.executable, str(ROOT / "bench" / "first_step.py"), str(record), "experiment=sewerml_multilabel",
               f"data.root={tree}", "data.num_workers=2", "logger=none", f"hydra.run.dir={out / f'run_{tree.name}'}"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if not record.is_file():
        raise SystemExit(f"bench/first_step.py failed on {tree}:\n{done.stderr[-3000:]}")
    return json.loads(record.read_text())


def train_config(tree: Path, img_size: int, *overrides: str):
    """The typed ``data`` settings of ``hybrid train experiment=sewerml_multilabel`` on ``tree``."""
    from hydra import compose, initialize_config_dir

    from hybrid.jobs.train import check_train_config

    with initialize_config_dir(config_dir=str(ROOT / "hybrid" / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=sewerml_multilabel", f"data.root={tree}",
                                           f"model.img_size={img_size}", "data.num_workers=2", *overrides])  # fmt: skip
    return check_train_config(cfg).data


def loader_rates(tree: Path, img_size: int, work: Path, rounds: int) -> dict:
    """Images/s of the training and evaluation loaders over ``tree``'s training split, per source:
    each source prepared first, then ``rounds`` interleaved passes (files, npy, packed, files, ...),
    the median of each kept."""
    from hybrid.data.cache_builder import PrepareOptions, prepare_cache
    from hybrid.data.loaders import DataModule

    sources = {"JPEG files": ["data.use_cache=false"], "npy cache": ["data.cache_format=npy"],
               "packed cache": ["data.cache_format=packed"]}  # fmt: skip
    modules = {}
    for source, overrides in sources.items():
        data = train_config(tree, img_size, f"data.cache_dir={work / source.split()[0]}", *overrides)
        if data.use_cache:
            prepare_cache(data, PrepareOptions(num_workers="auto"), progress=False)
        module = DataModule(data, 0)
        dataset = module.dataset("train")
        if data.use_cache:
            assert all(dataset.cached.lookup(i) is not None for i in range(len(dataset))), source
        modules[source] = (module, dataset)
    passes = {source: {"train": [], "eval": []} for source in sources}
    for _ in range(rounds):
        for source, (module, dataset) in modules.items():
            for kind, split in (("train", "train"), ("eval", "val")):
                started, images = time.perf_counter(), 0
                for batch in module.loader(split, dataset):
                    images += len(batch["target"])
                passes[source][kind].append(images / (time.perf_counter() - started))
    return {
        source: {kind: float(np.median(rates)) for kind, rates in kinds.items()} for source, kinds in passes.items()
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    tree = Path(args.tree)
    record = build_tree(tree, args.rows, args.sources)
    small = tree.parent / f"tree_{args.small_rows}"
    small_record = build_tree(small, args.small_rows, args.sources)
    loader_tree = tree.parent / f"tree_{args.loader_images}"
    build_tree(loader_tree, args.loader_images, args.sources)
    from hybrid.data.loaders import available_cpus
    from hybrid.jobs.benchmark import cpu_model

    work = Path(tempfile.mkdtemp(dir=tree.parent))
    try:
        startup = {"sewerml": first_step(tree, work), "small": first_step(small, work)}
        cores = available_cpus()
        one = prepare_rate(tree, args.prepare_images, args.img_size, 1)
        every = prepare_rate(tree, args.prepare_images, args.img_size, "auto")
        loaders = loader_rates(loader_tree, args.img_size, work, args.rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    per_core = every / cores
    hours = {n: SEWERML_IMAGES / (per_core * n) / 3600 for n in (16, 64)}
    result = {
        "machine": f"{cpu_model()}, {cores} cores",
        "tree": record,
        "startup": {"train_rows": record["train_rows"], "small_rows": args.small_rows,
                    "small_train_rows": small_record["train_rows"], **startup},
        "prepare": {"images": args.prepare_images, "img_size": args.img_size, "format": "npy",
                    "images_per_s_1_process": one, f"images_per_s_{cores}_processes": every,
                    "speedup": every / one, "hours_for_sewerml_16_cores": hours[16],
                    "hours_for_sewerml_64_cores": hours[64], "hours_for_sewerml_1_core": SEWERML_IMAGES / one / 3600},
        "loader": {"images": args.loader_images, "img_size": args.img_size, "workers": 2, "rounds": args.rounds,
                   "images_per_s": loaders},
    }  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    machine = platform.machine()
    (out / f"scale_{machine}.json").write_text(json.dumps(result, indent=2))
    lines = report(args, result, cores)
    (out / f"scale_{machine}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def report(args: argparse.Namespace, result: dict, cores: int) -> list[str]:
    """The result as the Markdown the docs include."""
    tree, prep, startup = result["tree"], result["prepare"], result["startup"]
    one, every = prep["images_per_s_1_process"], prep[f"images_per_s_{cores}_processes"]
    per_core = every / cores
    big, small = startup["sewerml"], startup["small"]
    lines = [
        f"`python bench/scale.py --rows {args.rows}` on {result['machine']}: a tree of {tree['rows']:,} "
        f"Sewer-ML-style names (hard links to {tree['sources']} synthetic 640x480 JPEGs).",
        "",
        "**Startup** (`hybrid train experiment=sewerml_multilabel`, 2 loader workers, imports excluded):",
        "",
        "| training rows | command to first batch | of which: image index, CSVs | main RSS | main PSS | "
        "each worker's PSS |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for rows, run in ((startup["train_rows"], big), (startup["small_train_rows"], small)):
        workers = ", ".join(f"{pss:.0f}" for pss in run["workers_pss_mib"][-2:])
        lines.append(
            f"| {rows:,} | {run['command_to_first_batch_s']:.1f} s | {run['index_s']:.1f} s, {run['csv_s']:.1f} s | "
            f"{run['main_rss_mib']:.0f} MiB | {run['main_pss_mib']:.0f} MiB | {workers} MiB |"
        )
    lines += [
        "",
        f"Main-process RSS at the first batch: **+{big['main_rss_mib'] - small['main_rss_mib']:.0f} MiB** for "
        f"all of Sewer-ML's training rows over a {startup['small_rows']:,}-name tree.",
        "",
        f"**Prepare** (`hybrid prepare`'s builder, {prep['images']} images at {prep['img_size']} px, npy):",
        "",
        "| prepare | images/s | Sewer-ML's 1.3 M images |",
        "|---|---:|---:|",
        f"| 1 process | {one:.1f} | {SEWERML_IMAGES / one / 3600:.1f} h |",
        f"| {cores} processes (`prepare.num_workers=auto`) | {every:.1f} ({every / one:.2f}x) | "
        f"{SEWERML_IMAGES / every / 3600:.1f} h |",
        f"| 16 cores, extrapolated | {per_core * 16:.0f} | {prep['hours_for_sewerml_16_cores']:.2f} h |",
        f"| 64 cores, extrapolated | {per_core * 64:.0f} | {prep['hours_for_sewerml_64_cores']:.2f} h |",
        "",
        "Extrapolated linearly from this machine's rate per core, as if every core and the disk kept up.",
        "",
        f"**Loaders** ({result['loader']['images']} images at {prep['img_size']} px, 2 workers, warm page cache; "
        f"median of {result['loader']['rounds']} interleaved passes):",
        "",
        "| source | training loader (augmented) | evaluation loader |",
        "|---|---:|---:|",
    ]
    for source, rate in result["loader"]["images_per_s"].items():
        lines.append(f"| {source} | {rate['train']:.0f} img/s | {rate['eval']:.0f} img/s |")
    return lines


if __name__ == "__main__":
    main()
