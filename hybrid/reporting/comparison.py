"""A sweep over architectures: accuracy against cost (``compare.md`` / ``.csv``: each job's model,
parameters, GFLOPs, batch-1 latency of its best checkpoint measured as ``hybrid benchmark`` does,
monitored metric and test figures) and ``pareto.png``: the test metric against latency and against
parameters, the Pareto front (no other job both cheaper and better) marked."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from hybrid.deploy.measure import BACKENDS, MeasureSettings, measure_apart, model_facts
from hybrid.engine.outputs import pyplot, save_figure
from hybrid.metrics import monitor_mode
from hybrid.reporting.figures import log_axis, score_limits
from hybrid.reporting.sweep_table import REPORTED_METRICS, ReportError, to_markdown, track_table

log = logging.getLogger("hybrid.jobs.report")  # the report job's log, as before the split


def is_comparison(jobs: list[dict]) -> bool:
    """Whether the jobs train more than one architecture."""
    return len({job["model"] for job in jobs}) > 1


def comparison_table(jobs: list[dict], backend: str, timed_runs: int) -> pd.DataFrame:
    """Per finished job: model, cost (parameters, GFLOPs, batch-1 latency of ``best.pt`` through
    ``backend``) and figures (monitored best, test headline metrics), best monitored first."""
    settings = MeasureSettings(warmup=5, timed_runs=timed_runs, batch_sizes=(), throughput_runs=0)  # latency only
    rows = []
    for job in jobs:
        checkpoint = job["dir"] / "checkpoints" / "best.pt"
        if job["status"] != "ok" or not checkpoint.is_file():
            continue
        # a run records its model's size (metrics.json, model/*); older runs' checkpoints are counted
        recorded = {"params": job["metrics"].get("model/params"), "gflops": job["metrics"].get("model/gflops")}
        facts = recorded if None not in recorded.values() else model_facts(str(checkpoint))
        log.info("measuring %s (job %s) with %s", job["model"], job["job"], BACKENDS[backend].label)
        latency = measure_apart(str(checkpoint), backend, settings)
        best = f"{job['monitor']}_best"
        row = {"job": job["job"], "model": job["model"], "params": facts["params"], "gflops": facts["gflops"]}
        row.update({"latency_p50_ms": latency["latency_p50_ms"], best: job["metrics"].get(best, np.nan)})
        row.update({m: job["metrics"][m] for m in REPORTED_METRICS if m.startswith("test/") and m in job["metrics"]})
        rows.append(row)
    if not rows:
        raise ReportError("no finished job with a checkpoints/best.pt to compare")
    table = pd.DataFrame(rows)
    best = next(c for c in table.columns if c.endswith("_best"))
    ascending = monitor_mode(best.removesuffix("_best")) == "min"
    return table.sort_values(best, ascending=ascending).reset_index(drop=True)


def pareto_front(cost: pd.Series, score: pd.Series) -> pd.Series:
    """Which rows no other row beats on both: lower-or-equal cost and higher-or-equal score, one
    of them strictly."""
    front = []
    for i in cost.index:
        dominated = ((cost <= cost[i]) & (score >= score[i]) & ((cost < cost[i]) | (score > score[i]))).any()
        front.append(not dominated)
    return pd.Series(front, index=cost.index)


def pareto_figure(table: pd.DataFrame):
    """``pareto.png``: the test metric against latency and against parameters, Pareto front joined
    and ringed (``None`` without a test metric)."""
    metric = next((c for c in ("test/f2_ciw", "test/f1_macro") if c in table and table[c].notna().any()), None)
    if metric is None:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (cost, label) in zip(
        axes, (("latency_p50_ms", "batch-1 latency P50 (ms)"), ("params", "parameters")), strict=True
    ):
        front = pareto_front(table[cost], table[metric])
        ax.scatter(table[cost], table[metric], color="tab:blue")
        edge = table[front].sort_values(cost)
        ax.plot(
            edge[cost], edge[metric], color="tab:red", marker="o", fillstyle="none", markersize=12, label="Pareto front"
        )
        for _, row in table.iterrows():
            ax.annotate(row["model"], (row[cost], row[metric]), fontsize=8, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        log_axis(ax.xaxis, table[cost])
        ax.set_xlabel(label)
        ax.set_ylabel(metric)
        ax.set_ylim(*score_limits(table[metric]))
        ax.legend(fontsize=8)
    fig.suptitle("accuracy against cost")
    fig.tight_layout()
    return fig


def write_comparison(sweep_dir: Path, jobs: list[dict], backend: str, timed_runs: int) -> pd.DataFrame:
    """``compare.md``, ``compare.csv`` and ``pareto.png`` into ``sweep_dir``."""
    table = comparison_table(jobs, backend, timed_runs)
    table.to_csv(sweep_dir / "compare.csv", index=False)
    header = (
        f"# Accuracy against cost: {sweep_dir}\n\nBatch-1 latency: {BACKENDS[backend].label}, P50 of {timed_runs} "
        "runs in a fresh process (as python -m hybrid.jobs.benchmark measures); parameters and GFLOPs per image.\n\n"
    )
    (sweep_dir / "compare.md").write_text(header + to_markdown(table))
    plot = save_figure(pareto_figure(table), sweep_dir / "pareto.png")
    track_table(sweep_dir, jobs[0]["config"], "compare", table, plot)
    return table
