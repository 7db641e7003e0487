"""The multi-label preset's capacity, measured: a sweep of the decoder's width, heads, depth and
queries, 3 seeds each, on the real-image proxy (``bench/realproxy.py``) and on the synthetic set.

    python bench/capacity.py [--datasets realproxy synthetic] [--seeds 0 1 2] [--epochs 10] [--img-size 64]

Each row is one ``hybrid train -m experiment=sewerml_multilabel ... seed=0,1,2`` sweep under
``--out``/<dataset>-<size>px-<epochs>ep/<row>, aggregated by ``hybrid report`` (mean, std and the
95% interval of the mean over the seeds); the rows' parameters and GFLOPs are the runs' own
``model/params`` and ``model/gflops``. Writes ``bench/results/capacity_<dataset>.md`` (and
``.csv``; ``capacity_<dataset>_<N>epochs.*`` for another ``--epochs``). A finished row is reused by
a rerun (delete its folder to measure it again).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def capacity(patch_dim: int, emb_dim: int, heads: int, layers: int = 1, queries: int | None = None) -> tuple[str, ...]:
    """The overrides that pin all five knobs (so a row does not move when the preset does)."""
    return (f"model.featured_patch_dim={patch_dim}", f"model.emb_dim={emb_dim}", f"model.num_heads={heads}",
            f"model.num_layers={layers}", f"model.num_queries={'null' if queries is None else queries}")  # fmt: skip


# The capacities compared: (name, what it is, its overrides); the last row is the preset as shipped.
ROWS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("seed_rule", "the seed's rule: `featured_patch_dim` 32, `emb_dim` 24, 2 heads, 1 layer, 1 query",
     capacity(32, 24, 2)),
    ("queries17", "one query per code (`num_queries=17`)", capacity(32, 24, 2, queries=17)),
    ("wide", "wide: `featured_patch_dim=64 emb_dim=64 num_heads=4`", capacity(64, 64, 4)),
    ("wide_queries17", "wide + `num_queries=17`", capacity(64, 64, 4, queries=17)),
    ("wide_deep", "wide + `num_layers=2`", capacity(64, 64, 4, layers=2)),
    ("wider", "wider: `featured_patch_dim=96 emb_dim=96 num_heads=4`", capacity(96, 96, 4)),
    ("widest", "widest: `featured_patch_dim=128 emb_dim=128 num_heads=8`", capacity(128, 128, 8)),
    ("widest_deep", "widest + `num_layers=2`", capacity(128, 128, 8, layers=2)),
    ("shipped", "**the shipped preset** (`experiment=sewerml_multilabel` as it is)", ()),
)  # fmt: skip
METRICS = (("val/f2_ciw_best", "val F2-CIW (best)"), ("test/f1_macro", "test macro F1"),
           ("test/f2_ciw", "test F2-CIW"), ("test/f1_normal", "test F1-Normal"))  # fmt: skip
PROXY = ROOT / "outputs" / "realproxy"
EPOCHS = 10  # the sweep's schedule; another (--epochs) writes capacity_<dataset>_<N>epochs.*


def dataset_overrides(dataset: str) -> list[str]:
    """How ``hybrid train`` reads each dataset."""
    if dataset == "synthetic":
        return ["data=synthetic"]
    if not (PROXY / "SewerML_Test.csv").is_file():
        subprocess.run([sys.executable, str(ROOT / "bench" / "realproxy.py"), "--out", str(PROXY)], check=True)
    return ["data=csv", f"data.root={PROXY}", "data.train_csv=SewerML_Train.csv", "data.valid_csv=SewerML_Val.csv",
            "data.test_csv=SewerML_Test.csv"]  # fmt: skip


def sweep(dataset: str, row: tuple, args: argparse.Namespace) -> Path:
    """Run (or reuse) one row's seeds and aggregate them; returns the sweep folder."""
    name, _, overrides = row
    folder = Path(args.out) / f"{dataset}-{args.img_size}px-{args.epochs}ep" / name  # a rerun reuses only its own
    if not (folder / "aggregate.csv").is_file():
        command = [sys.executable, str(ROOT / "train.py"), "-m", "experiment=sewerml_multilabel",
                   *dataset_overrides(dataset), f"model.img_size={args.img_size}", f"trainer.max_epochs={args.epochs}",
                   "logger=none", "trainer.progress_bar=false", *overrides,
                   *([f"trainer.num_threads={args.threads}"] if args.threads else []),
                   f"seed={','.join(map(str, args.seeds))}", f"hydra.sweep.dir={folder}"]  # fmt: skip
        subprocess.run(command, check=True, cwd=ROOT)
        subprocess.run([sys.executable, "-m", "hybrid.jobs.report", str(folder)], check=True, cwd=ROOT)
    return folder


def cost(folder: Path) -> tuple[int, float]:
    """A row's parameters and GFLOPs, as its first run recorded them."""
    metrics = json.loads(next(folder.glob("*/metrics.json")).read_text())
    return int(metrics["model/params"]), float(metrics["model/gflops"])


def cell(frame: pd.Series, metric: str) -> str:
    values = [frame[f"{metric}/{k}"] for k in ("mean", "std", "ci95_low", "ci95_high")]
    return "{:.3f} ± {:.3f} [{:.3f}, {:.3f}]".format(*values)


def table(dataset: str, args: argparse.Namespace) -> pd.DataFrame:
    """One aggregated row per capacity of ``--rows``."""
    rows = []
    for row in (row for row in ROWS if row[0] in args.rows):
        folder = sweep(dataset, row, args)
        aggregate = pd.read_csv(folder / "aggregate.csv").iloc[0]
        params, gflops = cost(folder)
        rows.append({"row": row[0], "capacity": row[1], "params": params, "gflops": gflops, "runs": aggregate["runs"],
                     **{k: aggregate[k] for k in aggregate.index if "/" in k}})  # fmt: skip
    return pd.DataFrame(rows)


def markdown(dataset: str, frame: pd.DataFrame, args: argparse.Namespace) -> str:
    """The table the docs include."""
    what = {"realproxy": "the real-image proxy (`bench/realproxy.py`, 2,400 / 600 / 600 images)",
            "synthetic": "the synthetic set (`data=synthetic`, 2,000 / 400 / 400 images)"}[dataset]  # fmt: skip
    lines = [
        f"Capacity of the multi-label preset on {what}: `experiment=sewerml_multilabel model.img_size={args.img_size} "
        f"trainer.max_epochs={args.epochs} seed={','.join(map(str, args.seeds))}` (`python bench/capacity.py`); "
        "mean ± std over the seeds [95% interval of the mean].",
        "",
        "| capacity | parameters | GFLOPs | " + " | ".join(label for _, label in METRICS) + " |",
        "|---|---:|---:|" + "---|" * len(METRICS),
    ]
    for _, row in frame.iterrows():
        cells = " | ".join(cell(row, metric) for metric, _ in METRICS)
        lines.append(f"| {row['capacity']} | {row['params']:,} | {row['gflops']:.3f} | {cells} |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["realproxy", "synthetic"], choices=["realproxy", "synthetic"])
    parser.add_argument("--rows", nargs="+", default=[name for name, _, _ in ROWS], help="rows to measure")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--img-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="trainer.num_threads (e.g. 1: two datasets at once)")
    parser.add_argument("--out", default=str(ROOT / "outputs" / "capacity"), help="where the sweeps run")
    parser.add_argument("--results", default=str(ROOT / "bench" / "results"), help="where the tables go")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    for dataset in args.datasets:
        frame = table(dataset, args)
        stem = f"capacity_{dataset}" + ("" if args.epochs == EPOCHS else f"_{args.epochs}epochs")
        frame.to_csv(Path(args.results) / f"{stem}.csv", index=False)
        text = markdown(dataset, frame, args)
        (Path(args.results) / f"{stem}.md").write_text(text)
        print(text)


if __name__ == "__main__":
    main()
