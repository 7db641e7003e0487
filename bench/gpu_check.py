"""``make gpu-check``: prove the CUDA path on a GPU machine and measure it, in a few minutes.

On a machine whose Python already has torch and torchvision (a CUDA image; no package registry
needed) it:

1. installs the project's other dependencies from the wheel folder ``make wheels`` filled
   (``.wheels/``, carried along) into a private folder, unless they are importable already;
2. runs the tests marked ``cuda`` (``pytest -m cuda``): bf16 and fp16 + scaler steps, channels-last,
   resume and inference on CUDA, SyncBatchNorm, torchrun over NCCL, ONNX Runtime's CUDA provider
   where installed, GPU JPEG decoding against the CPU path;
3. measures train and infer images/s at 480 px / patch 120 with ``data.num_workers=auto``: fed from
   640x480 JPEGs (decoded by the workers, and by the GPU with ``data.decode=cuda``), from the
   prepared cache, and the model alone (the ceiling), at batch 64 and 128, compile off (and on for
   the cache and the ceiling); with the efficiency (end to end / ceiling) and peak CUDA memory;
4. writes everything to ``<out>/gpu_check.json`` and ``<out>/gpu_check.md``.

Without CUDA it says so in one line and exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
# The project's dependencies a CUDA image lacks (make wheels builds them; pure Python).
NEEDED_MODULES = ("hydra", "omegaconf", "antlr4")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(ROOT / "outputs" / "gpu_check"), help="results (json, md, test log)")
    p.add_argument("--data", default=None, help="the generated dataset and its cache (default: <out>/data)")
    p.add_argument("--wheels", default=str(ROOT / ".wheels"), help="the folder make wheels filled")
    p.add_argument("--images", type=int, default=1024, help="generated 640x480 JPEGs")
    p.add_argument("--batches", type=int, default=8, help="timed batches per measurement")
    p.add_argument("--warmup", type=int, default=3, help="untimed batches before each measurement")
    p.add_argument("--batch-sizes", default="64,128")
    p.add_argument("--skip-tests", action="store_true")
    p.add_argument("--skip-compile", action="store_true")
    p.add_argument("--sources", default="", help="measure only these sources (names as in the table, ';'-separated)")
    return p.parse_args(argv)


def refuse(message: str) -> None:
    """The one-line refusal, then exit 1."""
    print(f"gpu-check: {message}", file=sys.stderr)
    raise SystemExit(1)


def require_cuda():
    """torch, with a CUDA device, or the one-line refusal."""
    try:
        import torch
    except ImportError:
        refuse(f"torch is not importable by {sys.executable}; run it with the Python that has torch")
    if not torch.cuda.is_available():
        refuse(
            f"no CUDA device (torch {torch.__version__}, torch.cuda.is_available() is False); run it on a GPU machine"
        )
    return torch


def ensure_dependencies(wheels: Path, target: Path) -> list[str]:
    """Make hydra & co. importable (here and in subprocesses): from ``wheels`` into ``target``."""
    missing = [name for name in NEEDED_MODULES if not _importable(name)]
    paths = [str(ROOT)]
    if missing:
        files = sorted(str(p) for p in wheels.glob("*.whl"))
        if not files:
            refuse(f"{', '.join(missing)} missing and no wheels in {wheels}: run `make wheels` where pip works first")
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
             "--disable-pip-version-check", "--upgrade", "--target", str(target), *files],
            check=True,
        )  # fmt: skip
        paths.append(str(target))
    for path in reversed(paths):
        sys.path.insert(0, path)
    os.environ["PYTHONPATH"] = os.pathsep.join([*paths, *filter(None, [os.environ.get("PYTHONPATH")])])
    return missing


def _importable(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def run_cuda_tests(out: Path) -> dict:
    """``pytest -m cuda``; its summary line and counts."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "cuda", "-p", "no:cacheprovider", "-q", "-rs", "tests/"],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "WANDB_MODE": "disabled"},
    )  # fmt: skip
    (out / "cuda_tests.log").write_text(done.stdout + done.stderr)
    print(done.stdout[-4000:], flush=True)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-500:]
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|error|errors|deselected)", summary)}
    return {"returncode": done.returncode, "summary": summary, **counts, "seconds": time.perf_counter() - started}


def make_dataset(folder: Path, count: int) -> Path:
    """``count`` synthetic 640x480 JPEGs and a label CSV (throughput's layout), rendered in parallel."""
    import throughput

    return throughput.make_dataset(folder, count, workers=min(16, os.cpu_count() or 1))


def decode_parity(folder: Path) -> dict:
    """How far ``data.decode=cuda`` (nvJPEG) lands from the CPU path (PIL / libjpeg): per-value
    differences of the test batches, for JPEGs with 4:2:0 (PIL's default) and 4:4:4 chroma."""
    import numpy as np
    import pandas as pd
    from PIL import Image

    from hybrid.data.loaders import DataModule
    from hybrid.data.sewerml import CSV_HEADER
    from hybrid.data.synthetic import SyntheticSpec, render_image, sample_labels

    stats = {}
    for name, subsampling in (("4:2:0", 2), ("4:4:4", 0)):
        root = folder / f"parity_{name.replace(':', '')}"
        root.mkdir(parents=True, exist_ok=True)
        rows = []
        for index in range(32):
            rng = np.random.default_rng([5, index])
            codes, water = sample_labels(rng, 0.5)
            image = render_image(rng, codes, water, SyntheticSpec(width=640, height=480))
            Image.fromarray(image).save(root / f"{index:08d}.jpg", quality=90, subsampling=subsampling)
            rows.append({**dict.fromkeys(CSV_HEADER, 0), "Filename": f"{index:08d}.jpg"})
        pd.DataFrame(rows, columns=CSV_HEADER).to_csv(root / "labels.csv", index=False)
        overrides = [
            "data=csv", f"data.root={root}", "data.test_csv=labels.csv", "data.train_csv=labels.csv",
            "data.valid_csv=labels.csv", "model.img_size=480", "model.patch_size=120", "data.batch_size=32",
            "data.num_workers=0", "data.use_cache=false",
        ]  # fmt: skip
        cpu = next(iter(DataModule(compose_config([*overrides, "data.decode=cpu"]).data, 0).loader("test").loader))
        loader = DataModule(compose_config([*overrides, "data.decode=cuda"]).data, 0, device="cuda").loader("test")
        raw = next(iter(loader.loader))
        gpu, _ = loader.decoder(raw["encoded"], raw["decoded"])
        difference = (cpu["image"].float() - gpu.cpu().float()).abs()
        stats[name] = {
            "max": difference.max().item(),
            "mean": difference.mean().item(),
            "within_1": (difference <= 1).float().mean().item(),
            "within_2": (difference <= 2).float().mean().item(),
        }
    print(f"decode parity (640x480 JPEG -> 480 px, nvJPEG vs PIL): {json.dumps(stats)}", flush=True)
    return stats


def compose_config(overrides: list[str], name: str = "train"):
    """A real config from ``conf/`` (``train`` or ``prepare``), as the entry points compose it."""
    from hydra import compose, initialize_config_dir

    import hybrid.jobs.schema  # noqa: F401  (registers the config resolvers, as train.py does)

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


def jpg_cache_overrides(data_dir: Path) -> list[str]:
    """The ``jpg`` prepared cache, in its own folder (one manifest per folder)."""
    return ["data.cache_format=jpg", f"data.cache_dir={data_dir / '.cache' / 'jpg'}"]


def prepare_caches(data_dir: Path) -> None:
    """The npy (default) and jpg prepared caches at 480 px, as ``hybrid prepare`` builds them."""
    from hybrid.jobs.prepare import prepare

    overrides = [
        "data=csv",
        f"data.root={data_dir}",
        "model.img_size=480",
        "model.patch_size=120",
        "progress_bar=false",
    ]
    prepare(compose_config(overrides, name="prepare"))
    prepare(compose_config([*overrides, *jpg_cache_overrides(data_dir)], name="prepare"))


def measure(base: list[str], label: dict, args, ceiling: bool = False) -> dict:
    """Images/s of training and inference for one setting (median of two timed runs), the data path
    alone, and peak CUDA memory."""
    import statistics

    import throughput
    import torch

    from hybrid.models import build_model

    cfg = compose_config(base)
    torch.manual_seed(0)
    settings = argparse.Namespace(
        warmup=args.warmup, batch_size=int(cfg.data.batch_size), img_size=int(cfg.model.img_size)
    )

    def model_factory(c):
        return build_model(c.model, 2)

    throughput.reset_peak(torch.device("cuda"))
    if ceiling:
        runtime = throughput.Runtime.from_config(cfg.trainer)
        path, loader_only = throughput.ceiling_path(cfg, model_factory, runtime, settings), None
    else:
        path, loader_only, runtime = throughput.hybrid_path(cfg, model_factory, settings)
    started = time.perf_counter()
    row = dict(label)
    for mode, step in (("train", path.train_round), ("infer", path.infer_round)):
        row[f"{mode}_img_s"] = statistics.median(step(args.batches) for _ in range(2))
        if loader_only is not None:
            data_step = loader_only.train_round if mode == "train" else loader_only.infer_round
            row[f"{mode}_data_path_img_s"] = data_step(args.batches)
    row["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    row["seconds"] = time.perf_counter() - started
    print(f"  {json.dumps({k: round(v, 1) if isinstance(v, float) else v for k, v in row.items()})}", flush=True)
    return row


def throughput_rows(data_dir: Path, args, rows: list[dict], save) -> None:
    """Every measured setting into ``rows`` (``save()`` after each): sources x batch sizes, the
    ceilings, then the cache and the ceilings compiled (slowest to start, so last)."""
    jpeg = [
        "data=csv", f"data.root={data_dir}", "data.train_csv=labels.csv", "data.valid_csv=labels.csv",
        "data.test_csv=labels.csv", "model.img_size=480", "model.patch_size=120", "logger=none",
        "trainer.progress_bar=false", "trainer.scheduler.name=none", "trainer.device=cuda", "data.num_workers=auto",
    ]  # fmt: skip
    no_cache = ["data.use_cache=false"]
    sources = {
        "prepared cache (npy)": [],
        "JPEG, CPU decode": no_cache,
        "JPEG, GPU decode": [*no_cache, "data.decode=cuda"],
        "prepared cache (npy), GPU augment": ["data.decode=cuda"],
        "prepared cache (jpg), GPU decode": [*jpg_cache_overrides(data_dir), "data.decode=cuda"],
    }
    if args.sources:
        sources = {name: extra for name, extra in sources.items() if name in args.sources.split(";")}
    batches = [int(b) for b in args.batch_sizes.split(",")]
    # CUDA context, cuDNN and allocator warm-up, so the first setting measured is not penalized.
    measure([*jpeg, f"data.batch_size={batches[0]}"], {"source": "warm-up"}, args, ceiling=True)
    for compiled in [False] if args.skip_compile else [False, True]:
        for batch in batches:
            base = [*jpeg, f"data.batch_size={batch}", f"trainer.compile={str(compiled).lower()}"]
            common = {"batch": batch, "compile": compiled}
            rows.append(measure(base, {"source": CEILING, **common}, args, ceiling=True))
            save()
            for source, extra in sources.items():
                if compiled and source != "prepared cache (npy)":
                    continue
                rows.append(measure([*base, *extra], {"source": source, **common}, args))
                save()


CEILING = "model alone (ceiling)"


def add_efficiency(rows: list[dict]) -> None:
    """Each row's images/s over its ceiling's (same batch size and compile setting)."""
    for row in rows:
        ceiling = [
            r for r in rows if r["source"] == CEILING and (r["batch"], r["compile"]) == (row["batch"], row["compile"])
        ]
        for mode in ("train", "infer"):
            row[f"{mode}_efficiency"] = row[f"{mode}_img_s"] / ceiling[0][f"{mode}_img_s"] if ceiling else float("nan")


def markdown(results: dict) -> str:
    """The results as a markdown table, with the setup under it."""
    lines = [
        "| source | batch | compile | train img/s | infer img/s | train / ceiling | infer / ceiling "
        "| data path alone train / infer img/s | peak CUDA MB |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["throughput"]:
        data_path = (f"{r['train_data_path_img_s']:.0f} / {r['infer_data_path_img_s']:.0f}"
                     if "train_data_path_img_s" in r else "")  # fmt: skip
        lines.append(
            f"| {r['source']} | {r['batch']} | {'on' if r['compile'] else 'off'} | {r['train_img_s']:.0f} "
            f"| {r['infer_img_s']:.0f} | {r['train_efficiency']:.0%} | {r['infer_efficiency']:.0%} | {data_path} "
            f"| {r['peak_cuda_mb']:.0f} |"
        )
    s, t = results["setup"], results.get("tests", {})
    for chroma, d in results.get("decode_parity", {}).items():
        lines.append(
            f"\ndata.decode=cuda vs cpu, {chroma} JPEGs: {d['within_1']:.2%} of values within 1 level, "
            f"{d['within_2']:.2%} within 2, mean {d['mean']:.3f}, max {d['max']:.0f}"
        )
    lines += [
        "",
        f"{s['gpu']} ({s['gpu_memory_gb']:.0f} GB), {s['cpus']} CPU cores, torch {s['torch']} / torchvision "
        f"{s['torchvision']}, CUDA {s['cuda']}, {s['loader_workers']} loader workers (num_workers=auto), 480 px / patch "
        f"120, bf16 + channels-last; 640x480 JPEG sources. cuda tests: {t.get('summary', 'not run')}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch = require_cuda()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    installed = ensure_dependencies(Path(args.wheels), Path(os.environ.get("TMPDIR", "/tmp")) / "hybrid-gpu-check-site")
    sys.path.insert(0, str(BENCH))
    import torchvision

    from hybrid.data.loaders import resolve_workers

    props = torch.cuda.get_device_properties(0)
    results = {
        "setup": {
            "gpu": props.name, "gpu_memory_gb": props.total_memory / 1e9, "torch": torch.__version__,
            "torchvision": torchvision.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
            "cpus": os.cpu_count(), "loader_workers": resolve_workers("auto"), "installed_from_wheels": installed,
        },
    }  # fmt: skip
    print(f"gpu-check on {props.name}: torch {torch.__version__}, torchvision {torchvision.__version__}", flush=True)
    results["throughput"] = []

    def save() -> None:  # after every step, so a run stopped at its time limit still leaves its figures
        add_efficiency(results["throughput"])
        results["seconds"] = time.perf_counter() - started
        (out / "gpu_check.json").write_text(json.dumps(results, indent=2))
        (out / "gpu_check.md").write_text(markdown(results))

    if not args.skip_tests:
        results["tests"] = run_cuda_tests(out)
        save()
    results["decode_parity"] = decode_parity((Path(args.data) if args.data else out / "data").parent / "decode_parity")
    save()
    data_dir = make_dataset(Path(args.data) if args.data else out / "data", args.images)
    prepare_caches(data_dir)
    print(f"dataset and cache ready ({time.perf_counter() - started:.0f} s)", flush=True)
    throughput_rows(data_dir, args, results["throughput"], save)
    print("\n" + markdown(results) + f"\nwritten to {out / 'gpu_check.json'} and {out / 'gpu_check.md'} "
          f"({results['seconds']:.0f} s)")  # fmt: skip
    if results.get("tests", {}).get("returncode", 0) != 0:
        raise SystemExit(f"gpu-check: cuda tests failed ({results['tests']['summary']})")


if __name__ == "__main__":
    main()
