"""Throughput benchmark: hybrid's default path vs a seed-style path vs the model alone.

``make bench`` (or ``python bench/throughput.py --help`` for the knobs). On a generated dataset of
640x480 JPEGs it measures steady-state images/s of training and inference (batch 16, 480 px, patch
120, the default model) for

  (a) hybrid: the real DataModule / loader (uint8 decode + resize in workers) and the engine's
      train step / predict loop, with the default trainer config (bf16 autocast, channels_last);
  (b) seed-style: PIL + torchvision v1 transforms (Resize, RandomRotation, RandomAffine, flip,
      ColorJitter, ToTensor, Normalize) in the same number of workers, fp32 NCHW, a plain loop;
  (c) ceiling: the engine step on normalized random tensors already in memory, same precision
      and layout as (a);
  (d) the data path of (a) alone (loader + batch preparation, no model): where the time goes;
  (e) with ``--serve model.onnx`` (repeatable): infer.py's path serving that exported file (the
      same test loader, batches prepared on the CPU, the runtime of ``--serve-runtime``), and
  (f) that served model alone on ready batches: (d), (e) and (f) side by side show what bounds (e).

Rounds are interleaved (a, b, c, a, b, c, ...) so machine noise hits all three alike; each round
drops its first batches (warm-up, prefetch) and the medians are reported. Then an efficiency report
per model config: parameters, forward FLOPs per image (FlopCounterMode), batch-1 latency.
Results go to stdout and to ``<out>/results.json`` and ``<out>/results.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode
from torchvision import transforms as v1

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hybrid.data.loaders import DataModule, resolve_workers  # noqa: E402
from hybrid.data.sewerml import CSV_HEADER  # noqa: E402
from hybrid.data.synthetic import SyntheticSpec, render_image, sample_labels  # noqa: E402
from hybrid.deploy.serving import ServingOptions, load_served_model  # noqa: E402
from hybrid.engine.loop import StepSettings, predict, train_one_epoch  # noqa: E402
from hybrid.engine.losses import loss_function  # noqa: E402
from hybrid.engine.optim import build_optimizer, build_scheduler  # noqa: E402
from hybrid.engine.runtime import Runtime, autocast, retain_freed_memory  # noqa: E402
from hybrid.models import build_model, parameter_report  # noqa: E402

# Untimed batch-1 forwards first (oneDNN builds its kernels for a new shape on the first calls).
LATENCY_WARMUP = 3
# Model variants of the efficiency report (overrides of the default model config).
VARIANTS = {
    "default": [],
    "emb_dim=48": ["model.emb_dim=48"],
    "mobilenet_v3_small_feat3": ["model.backbone=mobilenet_v3_small_feat3"],
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line knobs (defaults keep the whole bench to a few minutes on 2 cores)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(ROOT / "outputs" / "bench"), help="results and the generated dataset")
    p.add_argument("--images", type=int, default=320, help="generated 640x480 JPEGs")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of a, b, c")
    p.add_argument("--train-batches", type=int, default=5, help="timed training batches per round and path")
    p.add_argument("--infer-batches", type=int, default=8, help="timed inference batches per round and path")
    p.add_argument("--warmup", type=int, default=2, help="batches dropped at the start of every round")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--img-size", type=int, default=480)
    p.add_argument("--patch-size", type=int, default=120)
    p.add_argument("--latency-runs", type=int, default=10, help="batch-1 forwards per model variant")
    p.add_argument(
        "--override", action="append", default=[], help="extra Hydra override for (a), e.g. trainer.compile=true"
    )
    p.add_argument("--skip-efficiency", action="store_true", help="only the throughput comparison")
    p.add_argument("--serve", action="append", default=[], help="an exported .onnx to add as rows (e) and (f)")
    p.add_argument("--serve-runtime", default=None, help="runtime of --serve files (default: infer.py's)")
    p.add_argument(
        "--allocator",
        choices=("retain", "default"),
        default="retain",
        help="retain: the glibc setting train.py / infer.py make (engine.runtime.retain_freed_memory), for every row",
    )
    return p.parse_args(argv)


# ---------------------------------------------------------------- data


def _render_one(job: tuple[Path, int, int, int, int]) -> dict:
    """Write pipe scene ``index`` as a JPEG under ``images`` (kept if already there); its CSV row."""
    images, index, width, height, quality = job
    spec = SyntheticSpec(width=width, height=height)
    rng = np.random.default_rng([7, index])
    codes, water = sample_labels(rng, spec.defect_rate)
    path = images / f"{index + 1:08d}.jpg"
    if not path.is_file():
        tmp = path.with_suffix(".tmp")
        Image.fromarray(render_image(rng, codes, water, spec)).save(tmp, "JPEG", quality=quality)
        os.replace(tmp, path)
    row = dict.fromkeys(CSV_HEADER, 0)
    row.update(Filename=path.name, WaterLevel=water, Defect=int(bool(codes)), ND=int(not codes))
    return row


def make_dataset(
    folder: Path, count: int, width: int = 640, height: int = 480, quality: int = 90, workers: int = 1
) -> Path:
    """``count`` synthetic pipe scenes as ``width`` x ``height`` JPEGs plus Sewer-ML CSVs (reused if
    present), rendered by ``workers`` processes."""
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    jobs = [(images, index, width, height, quality) for index in range(count)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            rows = list(pool.map(_render_one, jobs, chunksize=8))
    else:
        rows = [_render_one(job) for job in jobs]
    pd.DataFrame(rows, columns=CSV_HEADER).to_csv(folder / "labels.csv", index=False)
    return folder


def compose(overrides: list[str]):
    """The real train config (``conf/``) with ``overrides``, as train.py would compose it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose(config_name="train", overrides=overrides)


class SeedStyleDataset(Dataset):
    """The seed's data path: PIL decode, torchvision v1 transforms to a normalized float tensor."""

    def __init__(self, paths: list[str], targets: np.ndarray, transform: Callable):
        self.paths, self.targets, self.transform = paths, targets, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        image = Image.open(self.paths[i]).convert("RGB")
        return self.transform(image), int(self.targets[i])


def seed_transforms(cfg) -> tuple[Callable, Callable]:
    """Train and eval transforms as the seed wrote them (v1, on PIL images, float normalize)."""
    size, aug = (cfg.data.img_size, cfg.data.img_size), cfg.data.augment
    normalize = [v1.ToTensor(), v1.Normalize(list(cfg.data.mean), list(cfg.data.std))]
    train = v1.Compose(
        [
            v1.Resize(size),
            v1.RandomRotation(aug.rotation),
            v1.RandomAffine(0, scale=tuple(aug.scale)),
            v1.RandomHorizontalFlip(aug.hflip),
            v1.ColorJitter(aug.brightness, aug.contrast, aug.saturation),
            *normalize,
        ]
    )
    return train, v1.Compose([v1.Resize(size), *normalize])


def forever(loader) -> Iterator:
    """Batches of ``loader`` across epoch boundaries (workers persist, as in training)."""
    while True:
        yield from loader


# ---------------------------------------------------------------- the three paths


class Path3:
    """One benchmarked path: a training and an inference step source with their own state."""

    def __init__(self, name: str, train_round: Callable[[int], float], infer_round: Callable[[int], float]):
        self.name, self.train_round, self.infer_round = name, train_round, infer_round


def hybrid_path(cfg, model_factory, args) -> tuple[Path3, Path3, object]:
    """(a): DataModule loaders + the engine's train_one_epoch / predict; and (d): the same loaders
    and batch preparation without the model, i.e. what the data path alone can deliver."""
    runtime = Runtime.from_config(cfg.trainer)
    data = DataModule(cfg.data, int(cfg.seed), device=runtime.device, channels_last=runtime.channels_last)
    model = runtime.prepare(model_factory(cfg))
    train_set = data.dataset("train")
    criterion = loss_function(data.spec, cfg.trainer).to(runtime.device)
    optimizer = build_optimizer(model, cfg.trainer)
    scheduler = build_scheduler(optimizer, cfg.trainer, 10**6)
    train_batches = forever(data.loader("train", train_set))
    test_batches = forever(data.loader("test"))

    def train_round(n: int) -> float:
        clip = cfg.trainer.grad_clip
        warm = itertools.islice(train_batches, args.warmup)
        train_one_epoch(model, warm, optimizer, scheduler, criterion, runtime, step=StepSettings(grad_clip=clip))
        result = train_one_epoch(
            model,
            itertools.islice(train_batches, n),
            optimizer,
            scheduler,
            criterion,
            runtime,
            step=StepSettings(grad_clip=clip),
        )
        return result.images / result.seconds

    def infer_round(n: int) -> float:
        predict(model, itertools.islice(test_batches, args.warmup), data.spec, runtime)
        start = time.perf_counter()
        preds = predict(model, itertools.islice(test_batches, n), data.spec, runtime)
        return len(preds.indices) / (time.perf_counter() - start)

    def drain(batches) -> Callable[[int], int]:
        def steps(n: int) -> int:  # the loader hands over batches ready for the model: just count them
            return sum(len(b["image"]) for b in itertools.islice(batches, n))

        return steps

    loader_only = Path3("d_loader", timed(drain(train_batches), args.warmup), timed(drain(test_batches), args.warmup))
    return Path3("a_hybrid", train_round, infer_round), loader_only, runtime


def seed_path(cfg, model_factory, args, workers: int) -> Path3:
    """(b): PIL + torchvision v1 transforms, float32 NCHW, a plain loop, same workers as (a)."""
    frame = pd.read_csv(Path(cfg.data.root) / "labels.csv")
    paths = [str(Path(cfg.data.root) / "images" / n) for n in frame.Filename]
    targets = frame.Defect.to_numpy()
    train_tf, eval_tf = seed_transforms(cfg)

    def loader(transform, shuffle):
        ds = SeedStyleDataset(paths, targets, transform)
        return DataLoader(
            ds, batch_size=args.batch_size, shuffle=shuffle, num_workers=workers, persistent_workers=workers > 0
        )

    model = model_factory(cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()
    train_batches, test_batches = forever(loader(train_tf, True)), forever(loader(eval_tf, False))

    def train_steps(n: int) -> int:
        model.train()
        seen = 0
        for images, labels in itertools.islice(train_batches, n):
            loss = criterion(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += len(images)
        return seen

    @torch.no_grad()
    def infer_steps(n: int) -> int:
        model.eval()
        seen = 0
        for images, _ in itertools.islice(test_batches, n):
            model(images).softmax(1)
            seen += len(images)
        return seen

    return Path3("b_seed", timed(train_steps, args.warmup), timed(infer_steps, args.warmup))


def ceiling_path(cfg, model_factory, runtime, args) -> Path3:
    """(c): the engine step on normalized random tensors in memory (no data loading at all)."""
    model = runtime.prepare(model_factory(cfg))
    from hybrid.data.labels import resolve_label_spec

    spec = resolve_label_spec("binary", None, None)
    criterion = loss_function(spec, cfg.trainer).to(runtime.device)
    optimizer = build_optimizer(model, cfg.trainer)
    scheduler = build_scheduler(optimizer, cfg.trainer, 10**6)
    shape = (args.batch_size, int(cfg.model.in_channels), args.img_size, args.img_size)
    images = torch.randn(shape).to(runtime.device)
    if runtime.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    batch = {
        "image": images,
        "target": torch.randint(0, 2, (args.batch_size,)),
        "index": torch.arange(args.batch_size),
        "skipped": [],
    }

    def train_round(n: int) -> float:
        clip = cfg.trainer.grad_clip
        train_one_epoch(
            model, [batch] * args.warmup, optimizer, scheduler, criterion, runtime, step=StepSettings(grad_clip=clip)
        )
        result = train_one_epoch(
            model, [batch] * n, optimizer, scheduler, criterion, runtime, step=StepSettings(grad_clip=clip)
        )
        return result.images / result.seconds

    def infer_round(n: int) -> float:
        predict(model, [batch] * args.warmup, spec, runtime)
        start = time.perf_counter()
        preds = predict(model, [batch] * n, spec, runtime)
        return len(preds.indices) / (time.perf_counter() - start)

    return Path3("c_ceiling", train_round, infer_round)


def served_paths(cfg, path: str, number: int, args) -> list[Path3]:
    """(e): infer.py's path serving an exported file, the test loader feeding the runtime; (f): the
    served model alone on a ready batch. Inference only (their training rounds are NaN)."""
    served = load_served_model(path, ServingOptions(runtime=args.serve_runtime))
    runtime = served.runtime
    data = DataModule(cfg.data, int(cfg.seed), device=runtime.device, channels_last=runtime.channels_last)
    test_batches = forever(data.loader("test"))
    shape = (args.batch_size, int(cfg.model.in_channels), args.img_size, args.img_size)
    ready = {
        "image": torch.randn(shape),
        "target": torch.zeros(args.batch_size, dtype=torch.long),
        "index": torch.arange(args.batch_size),
        "skipped": [],
    }

    def predicted(batches) -> int:
        return len(predict(served.model, batches, data.spec, runtime).indices)

    end_to_end = timed(lambda n: predicted(itertools.islice(test_batches, n)), args.warmup)
    alone = timed(lambda n: predicted([ready] * n), args.warmup)

    def no_training(n: int) -> float:
        return float("nan")

    print(f"(e{number})/(f{number}): {path} with {served.description}", flush=True)
    return [Path3(f"e{number}_served", no_training, end_to_end), Path3(f"f{number}_served_model", no_training, alone)]


def timed(steps: Callable[[int], int], warmup: int) -> Callable[[int], float]:
    """A round function: ``warmup`` untimed steps, then images/s over ``n`` timed ones."""

    def round_(n: int) -> float:
        steps(warmup)
        start = time.perf_counter()
        seen = steps(n)
        return seen / (time.perf_counter() - start)

    return round_


# ---------------------------------------------------------------- memory


def reset_peak(device: torch.device) -> None:
    """Start a new peak-memory window (CUDA allocator stats, or the process's RSS high-water mark)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # Linux: resets VmHWM


def peak_mb(device: torch.device) -> float:
    """Peak memory of the window: CUDA max allocated, or the main process's peak RSS (VmHWM)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- efficiency report


def efficiency(base: list[str], runtime, args) -> list[dict]:
    """Per model variant: parameters, forward GFLOPs per image, batch-1 latency (ms, median)."""
    rows = []
    half = f"model.patch_size={args.patch_size // 2}"  # 4x the patches: the cost of a finer grid
    for name, extra in {**VARIANTS, half.removeprefix("model."): [half]}.items():
        cfg = compose([*base, *extra])
        model = build_model(cfg.model, 2).eval()
        x = torch.randn(1, int(cfg.model.in_channels), int(cfg.model.img_size), int(cfg.model.img_size))
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x)
        model = runtime.prepare(model)
        x = x.to(runtime.device)
        if runtime.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        times = []
        with torch.no_grad():
            for i in range(args.latency_runs + LATENCY_WARMUP):
                start = time.perf_counter()
                with autocast(runtime.device, runtime.precision):
                    model(x)
                if runtime.device.type == "cuda":
                    torch.cuda.synchronize()
                if i >= LATENCY_WARMUP:
                    times.append(time.perf_counter() - start)
        rows.append(
            {
                "model": name,
                "params": parameter_report(model)["total"],
                "gflops_per_image": counter.get_total_flops() / 1e9,
                "latency_ms_batch1": 1000 * statistics.median(times),
            }
        )
        print(f"  {name:28s} {rows[-1]['params']:>9,d} params  {rows[-1]['gflops_per_image']:7.2f} GFLOPs  "
              f"{rows[-1]['latency_ms_batch1']:7.1f} ms (batch 1)", flush=True)  # fmt: skip
    return rows


# ---------------------------------------------------------------- main


def run(args: argparse.Namespace) -> dict:
    """Build the dataset and the three paths, run the interleaved rounds, report."""
    out = Path(args.out)
    started = time.perf_counter()
    retained = args.allocator == "retain" and retain_freed_memory()
    data_dir = make_dataset(out / "data", args.images)
    print(f"dataset: {args.images} 640x480 JPEGs in {data_dir} ({time.perf_counter() - started:.0f} s)", flush=True)
    base = [
        "data=csv",
        f"data.root={data_dir}",
        "data.train_csv=labels.csv",
        "data.valid_csv=labels.csv",
        "data.test_csv=labels.csv",
        f"data.batch_size={args.batch_size}",
        f"model.img_size={args.img_size}",
        f"model.patch_size={args.patch_size}",
        "logger=none",
        "trainer.progress_bar=false",
        "trainer.scheduler.name=none",
    ]
    cfg = compose([*base, *args.override])
    torch.manual_seed(0)

    def model_factory(c):
        return build_model(c.model, 2)

    workers = resolve_workers(cfg.data.num_workers)
    a, d, runtime = hybrid_path(cfg, model_factory, args)
    seed_cfg = compose([*base, "trainer.precision=32", "trainer.channels_last=false"])
    paths = [a, seed_path(seed_cfg, model_factory, args, workers), ceiling_path(cfg, model_factory, runtime, args), d]
    for number, served in enumerate(args.serve, start=1):
        paths += served_paths(cfg, served, number, args)
    print(
        f"torch {torch.__version__}, {runtime.device}, {torch.get_num_threads()} threads, {workers} loader workers, "
        f"(a)/(c) precision {runtime.precision}, channels_last {runtime.channels_last}, compile {runtime.compile}",
        flush=True,
    )
    speeds = {p.name: {"train": [], "infer": []} for p in paths}
    memory = {p.name: 0.0 for p in paths}
    for r in range(args.rounds):
        for p in paths:
            reset_peak(runtime.device)
            speeds[p.name]["train"].append(p.train_round(args.train_batches))
            speeds[p.name]["infer"].append(p.infer_round(args.infer_batches))
            memory[p.name] = max(memory[p.name], peak_mb(runtime.device))
            print(f"  round {r + 1}/{args.rounds} {p.name:10s} train {speeds[p.name]['train'][-1]:6.2f} img/s  "
                  f"infer {speeds[p.name]['infer'][-1]:6.2f} img/s", flush=True)  # fmt: skip
    results = summarize(speeds, memory, runtime, workers, args)
    results["setup"]["allocator"] = "glibc, freed blocks retained" if retained else "glibc default"
    results["setup"]["served"] = list(args.serve)
    if not args.skip_efficiency:
        print("efficiency (forward FLOPs per image; latency in the (a) precision/layout):", flush=True)
        results["efficiency"] = efficiency(base, runtime, args)
    results["seconds"] = time.perf_counter() - started
    write_results(out, results)
    return results


def summarize(speeds: dict, memory: dict, runtime, workers: int, args) -> dict:
    """Median images/s per path and mode, and the median of the per-round ratios a/b and a/c."""
    table = {}
    for mode in ("train", "infer"):
        a, b, c = (speeds[k][mode] for k in ("a_hybrid", "b_seed", "c_ceiling"))
        table[mode] = {
            "a_hybrid": statistics.median(a),
            "b_seed": statistics.median(b),
            "c_ceiling": statistics.median(c),
            "d_loader": statistics.median(speeds["d_loader"][mode]),
            "a_over_b": statistics.median(x / y for x, y in zip(a, b, strict=True)),
            "a_over_c": statistics.median(x / y for x, y in zip(a, c, strict=True)),
        }
        for name in speeds:
            if name[0] in "ef" and mode == "infer":  # served rows: inference only
                table[mode][name] = statistics.median(speeds[name][mode])
                table[mode][f"{name}_over_b"] = statistics.median(
                    x / y for x, y in zip(speeds[name][mode], b, strict=True)
                )
    return {
        "setup": {
            "torch": torch.__version__,
            "device": str(runtime.device),
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "loader_workers": workers,
            "precision": runtime.precision,
            "channels_last": runtime.channels_last,
            "compile": runtime.compile,
            "batch_size": args.batch_size,
            "img_size": args.img_size,
            "patch_size": args.patch_size,
            "rounds": args.rounds,
            "overrides": args.override,
        },
        "throughput": table,
        "per_round": speeds,
        "peak_memory_mb": memory,
        "memory_kind": "cuda max allocated" if runtime.device.type == "cuda" else "main process peak RSS",
    }


def markdown(results: dict) -> str:
    """The throughput table (and the efficiency table) as Markdown."""
    t, mem = results["throughput"], results["peak_memory_mb"]
    lines = [
        "| path | train img/s | infer img/s | peak memory (MB) |",
        "|---|---:|---:|---:|",
    ]
    names = {"a_hybrid": "(a) hybrid default", "b_seed": "(b) seed-style", "c_ceiling": "(c) model alone",
             "d_loader": "(d) hybrid data path alone"}  # fmt: skip
    for key, label in names.items():
        lines.append(f"| {label} | {t['train'][key]:.2f} | {t['infer'][key]:.2f} | {mem[key]:.0f} |")
    for number, path in enumerate(results["setup"].get("served", []), start=1):
        for key, label in ((f"e{number}_served", f"(e{number}) {path} served end to end"),
                           (f"f{number}_served_model", f"(f{number}) {path} alone")):  # fmt: skip
            lines.append(
                f"| {label} |  | {t['infer'][key]:.2f} ({t['infer'][key + '_over_b']:.2f}x b) | {mem[key]:.0f} |"
            )
    lines.append(f"| a / b | {t['train']['a_over_b']:.2f}x | {t['infer']['a_over_b']:.2f}x | |")
    lines.append(f"| a / c | {t['train']['a_over_c']:.0%} | {t['infer']['a_over_c']:.0%} | |")
    if results.get("efficiency"):
        lines += ["", "| model | params | GFLOPs / image | batch-1 latency (ms) |", "|---|---:|---:|---:|"]
        for row in results["efficiency"]:
            lines.append(
                f"| {row['model']} | {row['params']:,} | {row['gflops_per_image']:.2f} | {row['latency_ms_batch1']:.1f} |"
            )
    s = results["setup"]
    lines += [
        "",
        f"{s['device']} ({s['cpu']}, {s['cores']} cores), torch {s['torch']}, {s['threads']} threads, "
        f"{s['loader_workers']} loader workers, batch {s['batch_size']}, {s['img_size']} px / patch "
        f"{s['patch_size']}, (a)/(c) precision {s['precision']}, channels_last {s['channels_last']}, "
        f"compile {s['compile']}, allocator: {s.get('allocator', 'glibc default')}; medians of {s['rounds']} "
        "interleaved rounds.",
    ]
    return "\n".join(lines) + "\n"


def write_results(out: Path, results: dict) -> None:
    """``results.json`` and ``results.md`` under ``out``, and the table on stdout."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    table = markdown(results)
    (out / "results.md").write_text(table)
    print("\n" + table + f"\nwritten to {out / 'results.json'} and {out / 'results.md'} "
          f"({results['seconds']:.0f} s in all)")  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``make bench``."""
    args = parse_args(argv)
    if math.prod((args.rounds, args.train_batches, args.infer_batches)) <= 0:
        raise SystemExit("--rounds, --train-batches and --infer-batches must be positive")
    run(args)


if __name__ == "__main__":
    main()
