"""Jobs that repeat one configuration (differing only in ``seed`` or ``data.fold``) aggregated: each
configuration's mean, standard deviation and 95% confidence interval (Student's t) per metric
(``aggregate.md`` / ``.csv``) and the monitored metric with those intervals (``aggregate.png``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from hybrid.engine.outputs import pyplot
from hybrid.reporting.sweep_table import REPORTED_METRICS, to_markdown, track_table

# Overrides that repeat a configuration rather than change it: jobs differing only in these are aggregated.
REPEAT_KEYS = ("seed", "data.fold")


CONFIDENCE = 0.95


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
