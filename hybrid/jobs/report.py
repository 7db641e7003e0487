"""Summarize a sweep: ``hybrid report sweep_dir=<sweep dir>`` (or ``python -m hybrid.jobs.report <sweep dir>``).

Reads every job dir of a multirun (``-m`` or ``hparams_search=optuna``) sweep and writes, into the
sweep dir, one table of each job's swept values and final metrics, best first (``report.md``,
``report.csv``), and ``report.png``: the monitored metric against each swept parameter. Jobs that
failed are listed last with the error their log ends on.

A sweep over architectures (``-m model=cats_hybrid,resnet18,...``, ``experiment=compare``; or any
sweep with ``compare=true``) also gets the accuracy-versus-cost table (``compare.md``, ``compare.csv``):
each job's model, parameters, GFLOPs, batch-1 latency of its best checkpoint measured as
``python -m hybrid.jobs.benchmark`` does (``latency_backend``, in a fresh process), monitored metric and
test figures; and ``pareto.png``: the test metric against latency and against parameters, the
Pareto front (no other job both cheaper and better) marked.

Jobs that differ only in ``seed`` or ``data.fold`` (``-m seed=0,1,2``, ``-m data.fold=0,1,2
data.num_folds=3``) repeat one configuration: ``aggregate.md`` / ``aggregate.csv`` give each
configuration's mean, standard deviation and 95% confidence interval (Student's t) per metric,
with the jobs each comes from, and ``aggregate.png`` the monitored metric with those intervals.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from hybrid.deploy.measure import BACKENDS, MeasureSettings, measure_apart, model_facts
from hybrid.engine.outputs import pyplot, save_figure
from hybrid.errors import ConfigError, HybridError
from hybrid.jobs.app import HydraJob
from hybrid.jobs.schema import ReportSchema
from hybrid.metrics import HEADLINE_METRICS, monitor_mode
from hybrid.tracking import log_results_table
from hybrid.util.hydra_job import override_key
from hybrid.util.typed_config import check_types

log = logging.getLogger("hybrid.jobs.report")


# Final figures shown after the monitored one, when a job's metrics.json has them.
REPORTED_METRICS = (
    "best_epoch",
    *(f"test/{name}" for name in HEADLINE_METRICS),
    *(f"test/tuned/{name}" for name in HEADLINE_METRICS),  # trainer.tune_threshold: beside the 0.5 figures
    "test/num_samples",
    "train/images_per_s",
)
PLOTS_PER_ROW = 4
# Overrides that repeat a configuration rather than change it: jobs differing only in these are aggregated.
REPEAT_KEYS = ("seed", "data.fold")
CONFIDENCE = 0.95


class ReportError(HybridError):
    """A sweep dir that cannot be reported on."""


def parse_override(override: str) -> tuple[str, str]:
    """``model.emb_dim=48`` -> ``("model.emb_dim", "48")`` (``+``/``~`` prefixes dropped)."""
    return override_key(override), override.partition("=")[2]


def last_error(job_dir: Path) -> str:
    """The last ERROR line of a job's log (what made it fail), or ``""``."""
    for log_file in sorted(job_dir.glob("*.log")):
        errors = [line for line in log_file.read_text(errors="replace").splitlines() if "[ERROR]" in line]
        if errors:
            return errors[-1].split(" - ", 1)[-1].strip()
    return ""


def read_job(job_dir: Path) -> dict:
    """One job: its overrides, monitored metric, final metrics and status."""
    overrides = OmegaConf.to_container(OmegaConf.load(job_dir / ".hydra" / "overrides.yaml"))
    config = OmegaConf.load(job_dir / ".hydra" / "config.yaml")
    metrics_path = job_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    return {
        "job": job_dir.name,
        "dir": job_dir,
        "model": str(config.model.name),
        "config": config,
        "overrides": dict(parse_override(o) for o in overrides),
        "monitor": str(config.trainer.monitor),
        "metrics": metrics,
        "status": "ok" if metrics else "failed",
        "error": "" if metrics else last_error(job_dir),
    }


def find_jobs(sweep_dir: Path) -> list[dict]:
    """Every job dir (holding ``.hydra/overrides.yaml``) directly under ``sweep_dir``, in job order."""
    if not sweep_dir.is_dir():
        raise ReportError(f"sweep dir {sweep_dir} does not exist")
    dirs = [d for d in sweep_dir.iterdir() if (d / ".hydra" / "overrides.yaml").is_file()]
    if not dirs:
        raise ReportError(f"{sweep_dir} holds no job dirs (<n>/.hydra/overrides.yaml); pass a multirun sweep dir")
    dirs.sort(key=lambda d: (not d.name.isdigit(), int(d.name) if d.name.isdigit() else 0, d.name))
    return [read_job(d) for d in dirs]


def swept_keys(jobs: list[dict]) -> list[str]:
    """Override keys whose value differs between jobs (all keys when there is one job)."""
    keys = list(dict.fromkeys(k for job in jobs for k in job["overrides"]))
    if len(jobs) == 1:
        return keys
    return [k for k in keys if len({job["overrides"].get(k) for job in jobs}) > 1]


def build_table(jobs: list[dict]) -> tuple[pd.DataFrame, str, list[str]]:
    """The report table, best job first; also the monitored metric column and the swept keys."""
    monitors = {job["monitor"] for job in jobs}
    if len(monitors) > 1:
        log.warning("jobs monitor different metrics %s; ranking by %s", sorted(monitors), jobs[0]["monitor"])
    monitor = jobs[0]["monitor"]
    best_column = f"{monitor}_best"
    keys = swept_keys(jobs)
    rows = []
    for job in jobs:
        row = {"job": job["job"], "status": job["status"]}
        row.update({k: job["overrides"].get(k, "") for k in keys})
        row[best_column] = job["metrics"].get(best_column, np.nan)
        row.update({m: job["metrics"].get(m, np.nan) for m in REPORTED_METRICS})
        row["error"] = job["error"]
        rows.append(row)
    table = pd.DataFrame(rows)
    table = table.dropna(axis=1, how="all")  # metrics no job has (e.g. f2_ciw of a binary task)
    for column in table.columns:
        table[column] = _tidy(table[column])
    if not table["error"].astype(bool).any():
        table = table.drop(columns="error")
    if best_column in table:
        table = table.sort_values(best_column, ascending=monitor_mode(monitor) == "min", na_position="last")
    return table.reset_index(drop=True), best_column, keys


def _tidy(column: pd.Series) -> pd.Series:
    """Numbers as numbers (swept values arrive as text), whole numbers as integers."""
    numbers = pd.to_numeric(column, errors="coerce")
    if column.isna().all() or numbers[column.notna()].isna().any() or column.dtype == bool:
        return column
    known = numbers.dropna()
    return numbers.astype("Int64") if (known == known.round()).all() else numbers


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table (numbers to 4 decimals)."""

    def cell(value) -> str:
        if pd.isna(value):
            return ""
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def parameters_figure(table: pd.DataFrame, best_column: str, keys: list[str]):
    """``report.png``: ``best_column`` against each swept parameter but the repeat keys (numbers on
    a numeric axis, a log axis for ranges over decades such as the learning rate; anything else as
    categories); ``None`` without such a key, or without a finished job."""
    done = table[table["status"] == "ok"]
    keys = [k for k in keys if k not in REPEAT_KEYS]  # a seed repeats a configuration: aggregate.png shows it
    if not keys or done.empty:
        return None
    plt = pyplot()
    columns = min(len(keys), PLOTS_PER_ROW)
    rows = -(-len(keys) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.2 * rows), squeeze=False)
    for ax in axes.flat[len(keys) :]:
        ax.set_visible(False)
    for ax, key in zip(axes.flat, keys, strict=False):
        values = pd.to_numeric(done[key], errors="coerce")
        if values.notna().all():
            ax.scatter(values, done[best_column])
            if values.min() > 0 and values.max() / values.min() >= 100:
                ax.set_xscale("log")
                log_axis(ax.xaxis, values)
        else:
            categories = sorted(done[key].astype(str).unique())
            ax.scatter([categories.index(v) for v in done[key].astype(str)], done[best_column])
            ax.set_xticks(range(len(categories)), categories, rotation=30, ha="right")
        ax.set_xlabel(key)
        ax.set_ylabel(best_column)
        ax.set_ylim(*score_limits(done[best_column]))
    fig.tight_layout()
    return fig


# A score axis spans at least this much, so two jobs 0.002 apart do not fill the plot as if far apart.
MIN_SCORE_SPAN = 0.1


def score_limits(values: pd.Series) -> tuple[float, float]:
    """y-axis limits for ``values``: their range padded by 5%, widened to :data:`MIN_SCORE_SPAN`
    about its middle (kept inside [0, 1] when every value is)."""
    x = pd.to_numeric(values, errors="coerce").dropna()
    low, high = (float(x.min()), float(x.max())) if len(x) else (0.0, 1.0)
    pad = 0.05 * (high - low)
    low, high = low - pad, high + pad
    if high - low < MIN_SCORE_SPAN:
        middle = (low + high) / 2
        low, high = middle - MIN_SCORE_SPAN / 2, middle + MIN_SCORE_SPAN / 2
    if len(x) and x.min() >= 0 and x.max() <= 1:
        shift = max(0.0, -low) - max(0.0, high - 1)
        low, high = max(0.0, low + shift), min(1.0, high + shift)
    return low, high


def compact_number(value: float, _position=None) -> str:
    """An axis label: ``0.5``, ``20``, ``300k``, ``1.2M``."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def log_axis(axis, values: pd.Series) -> None:
    """A log scale with readable labels: plain numbers at 1-2-5 steps (decades only over wide
    ranges), and no labels on the minor ticks, which is what overlapped."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    x = pd.to_numeric(values, errors="coerce").dropna()
    decades = np.log10(x.max() / x.min()) if len(x) and x.min() > 0 else 0.0
    axis.set_major_locator(LogLocator(base=10, subs=(1.0,) if decades > 2 else (1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(compact_number))
    axis.set_minor_formatter(NullFormatter())


# Metrics that are shares (F-scores, accuracy, precision, recall, average precision, agreement)
# lie in [0, 1]: an interval of the mean is clipped to it (over 2 seeds Student's t is 12.7
# standard errors wide and would otherwise run past 1).
SHARE_METRICS = ("accuracy", "f1", "f2", "precision", "recall", "map", "ap@", "auc", "decision_agreement")


def metric_range(metric: str) -> tuple[float, float]:
    """The values ``metric`` can take: ``[0, 1]`` for a share (:data:`SHARE_METRICS`), else any."""
    name = metric.rsplit("/", 1)[-1]
    if name.startswith(SHARE_METRICS):
        return 0.0, 1.0
    return -np.inf, np.inf


def interval(values: pd.Series, bounds: tuple[float, float] = (-np.inf, np.inf)) -> dict[str, float]:
    """Mean, standard deviation (n - 1) and the :data:`CONFIDENCE` interval of the mean (Student's t;
    undefined from one value), clipped to ``bounds`` (the values the metric can take)."""
    from scipy.stats import t

    x = pd.to_numeric(values, errors="coerce").dropna().astype(float)
    n = len(x)
    mean = float(x.mean()) if n else np.nan
    std = float(x.std(ddof=1)) if n > 1 else np.nan
    half = float(t.ppf((1 + CONFIDENCE) / 2, n - 1) * std / np.sqrt(n)) if n > 1 else np.nan
    low, high = (float(np.clip(v, *bounds)) if not np.isnan(v) else v for v in (mean - half, mean + half))
    return {"n": n, "mean": mean, "std": std, "ci95_low": low, "ci95_high": high}


def aggregate_table(table: pd.DataFrame, keys: list[str], metrics: list[str]) -> pd.DataFrame | None:
    """One row per configuration (the swept values besides :data:`REPEAT_KEYS`) over its finished
    jobs: ``runs``, ``jobs`` and, per metric, ``<metric>/mean``, ``/std``, ``/ci95_low``,
    ``/ci95_high``; ``None`` when nothing repeats or no job finished."""
    if not any(k in REPEAT_KEYS for k in keys):
        return None
    config_keys = [k for k in keys if k not in REPEAT_KEYS]
    done = table[table["status"] == "ok"]
    if done.empty:  # every repeat failed: report.md lists the errors
        return None
    groups = done.groupby(config_keys, sort=False, dropna=False) if config_keys else [((), done)]
    rows = []
    for values, group in groups:
        values = values if isinstance(values, tuple) else (values,)
        group = group.sort_values("job")
        row = {**dict(zip(config_keys, values, strict=True)), "runs": len(group), "jobs": " ".join(map(str, group.job))}
        for metric in metrics:
            if metric in group:
                stats = interval(group[metric], metric_range(metric))
                row.update({f"{metric}/{k}": v for k, v in stats.items() if k != "n"})
        rows.append(row)
    return pd.DataFrame(rows) if rows else None


def aggregate_markdown(frame: pd.DataFrame, metrics: list[str]) -> str:
    """``mean ± std [low, high]`` per metric and configuration."""
    shown = frame[
        [
            c
            for c in frame.columns
            if "/" not in c or c.rsplit("/", 1)[-1] not in ("mean", "std", "ci95_low", "ci95_high")
        ]
    ].copy()
    for metric in metrics:
        if f"{metric}/mean" in frame:
            shown[metric] = [
                f"{m:.4f} ± {s:.4f} [{lo:.4f}, {hi:.4f}]" if pd.notna(s) else f"{m:.4f}"
                for m, s, lo, hi in frame[
                    [f"{metric}/{k}" for k in ("mean", "std", "ci95_low", "ci95_high")]
                ].itertuples(index=False)
            ]
    return to_markdown(shown)


def plot_aggregate(path: Path, frame: pd.DataFrame, table: pd.DataFrame, metric: str, keys: list[str]) -> Path | None:
    """``metric`` per configuration: each job a dot, the mean with its 95% interval as an error bar."""
    if f"{metric}/mean" not in frame:
        return None
    plt = pyplot()
    config_keys = [k for k in keys if k not in REPEAT_KEYS]
    labels = [" ".join(f"{k}={row[k]}" for k in config_keys) or "all" for _, row in frame.iterrows()]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.4 * len(frame) + 2), 3.8))
    for i, (_, row) in enumerate(frame.iterrows()):
        jobs = row["jobs"].split()
        values = table[table["job"].astype(str).isin(jobs)][metric]
        ax.scatter([i] * len(values), values, color="tab:grey", s=14, zorder=2)
        half = row[f"{metric}/mean"] - row[f"{metric}/ci95_low"]
        ax.errorbar(i, row[f"{metric}/mean"], yerr=None if pd.isna(half) else half, fmt="o", color="tab:red",
                    capsize=5, zorder=3)  # fmt: skip
    ax.set_xticks(range(len(frame)), labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(metric)
    ax.set_title(f"mean and {CONFIDENCE:.0%} interval over {' / '.join(k for k in keys if k in REPEAT_KEYS)}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_aggregate(sweep_dir: Path, jobs: list[dict], table: pd.DataFrame, best_column: str, keys: list[str]):
    """``aggregate.md``, ``aggregate.csv`` and ``aggregate.png`` when jobs repeat a configuration."""
    metrics = [
        c for c in (best_column, *REPORTED_METRICS) if c in table and c not in ("best_epoch", "test/num_samples")
    ]
    frame = aggregate_table(table, keys, metrics)
    if frame is None:
        return None
    frame.to_csv(sweep_dir / "aggregate.csv", index=False)
    header = (
        f"# Repeated runs: {sweep_dir}\n\nPer configuration over {' / '.join(k for k in keys if k in REPEAT_KEYS)}: "
        f"mean ± standard deviation [{CONFIDENCE:.0%} interval of the mean, Student's t]; `jobs` name the job dirs "
        "whose metrics.json each figure comes from.\n\n"
    )
    (sweep_dir / "aggregate.md").write_text(header + aggregate_markdown(frame, metrics))
    plot = plot_aggregate(sweep_dir / "aggregate.png", frame, table, best_column, keys)
    track_table(sweep_dir, jobs[0]["config"], "aggregate", frame, plot)
    return frame


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


def track_table(sweep_dir: Path, job_config, key: str, table: pd.DataFrame, plot: Path | None) -> None:
    """Under the sweep's ``logger=wandb``: a table (``compare``, ``aggregate``) and its plot as one
    ``report`` run in the sweep's W&B group (the group its jobs share, ``<task>-<sweep dir name>``,
    unless one was set)."""
    if job_config.logger.backend == "none":
        return
    cfg = OmegaConf.create(OmegaConf.to_container(job_config, resolve=False))
    cfg.paths.output_dir = str(sweep_dir)  # a job's saved config names it through ${hydra:...}
    cfg.logger.group = cfg.logger.group or f"{cfg.task_name}-{sweep_dir.name}"
    cfg.logger.name = f"report-{key}"
    log_results_table(cfg, sweep_dir, "report", [key], key, table, (f"{key}_plot", plot) if plot else None)


def write_report(
    sweep_dir: Path, *, compare: bool | None = None, backend: str = "torch_bf16_cl", timed_runs: int = 30
) -> pd.DataFrame:
    """Write ``report.md``, ``report.csv`` and ``report.png`` into ``sweep_dir`` (and the comparison
    of :func:`write_comparison` for a sweep over architectures, or with ``compare``); return the table."""
    sweep_dir = Path(sweep_dir)
    jobs = find_jobs(sweep_dir)
    if compare or (compare is None and is_comparison(jobs)):
        write_comparison(sweep_dir, jobs, backend, timed_runs)
    table, best_column, keys = build_table(jobs)
    table.to_csv(sweep_dir / "report.csv", index=False)
    failed = int((table["status"] != "ok").sum())
    header = f"# Sweep {sweep_dir}\n\n{len(table)} jobs ({failed} failed), ranked by `{best_column}`.\n\n"
    (sweep_dir / "report.md").write_text(header + to_markdown(table))
    save_figure(parameters_figure(table, best_column, keys), sweep_dir / "report.png")
    aggregate = write_aggregate(sweep_dir, jobs, table, best_column, keys)
    if aggregate is not None:
        log.info("repeated runs: %s", sweep_dir / "aggregate.md")
    return table


def run_report(cfg: DictConfig) -> pd.DataFrame:
    """The report job: ``cfg.sweep_dir``'s report, printed too."""
    check_types(cfg, ReportSchema, "", resolve=False)  # a typo'd or mistyped key stops here
    backends = [b for b in BACKENDS if b.startswith("torch")]
    if cfg.latency_backend not in backends:
        raise ConfigError(f"latency_backend={cfg.latency_backend}: choose one of {backends}")
    sweep_dir = Path(str(cfg.sweep_dir)).expanduser()
    compare = None if cfg.compare is None else bool(cfg.compare)
    table = write_report(sweep_dir, compare=compare, backend=str(cfg.latency_backend), timed_runs=int(cfg.timed_runs))
    print(to_markdown(table))
    log.info("report: %s (.csv, .png)", sweep_dir / "report.md")
    return table


# hybrid report DIR: a first word without `=` is the sweep dir
main = HydraJob("report", run_report, first_key="sweep_dir")

if __name__ == "__main__":
    sys.exit(main())
