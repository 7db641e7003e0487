"""A sweep's jobs as one table: each job dir's swept values (its overrides), monitored metric, final
figures and status (a failed job with the error its log ends on), best first."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from hybrid.errors import HybridError
from hybrid.metrics import HEADLINE_METRICS, monitor_mode
from hybrid.tracking import log_results_table
from hybrid.util.hydra_job import override_key

log = logging.getLogger("hybrid.jobs.report")  # the report job's log, as before the split

# Final figures shown after the monitored one, when a job's metrics.json has them.
REPORTED_METRICS = (
    "best_epoch",
    *(f"test/{name}" for name in HEADLINE_METRICS),
    *(f"test/tuned/{name}" for name in HEADLINE_METRICS),  # trainer.tune_threshold: beside the 0.5 figures
    "test/num_samples",
    "train/images_per_s",
)


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


def track_table(sweep_dir: Path, job_config, key: str, table: pd.DataFrame, plot: Path | None) -> None:
    """A table (``compare``, ``aggregate``) and its plot as one ``report`` run of the sweep's
    tracker (``logger=wandb``: in the sweep's W&B group, the group its jobs share,
    ``<task>-<sweep dir name>``, unless one was set; ``logger=none``: nothing)."""
    cfg = OmegaConf.create(OmegaConf.to_container(job_config, resolve=False))
    cfg.paths.output_dir = str(sweep_dir)  # a job's saved config names it through ${hydra:...}
    cfg.logger.group = cfg.logger.group or f"{cfg.task_name}-{sweep_dir.name}"
    cfg.logger.name = f"report-{key}"
    log_results_table(cfg, sweep_dir, "report", [key], key, table, (f"{key}_plot", plot) if plot else None)
