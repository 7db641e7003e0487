"""Summarize a sweep: ``python -m hybrid.report <sweep dir>``.

Reads every job dir of a multirun (``-m`` or ``hparams_search=optuna``) sweep and writes, into the
sweep dir, one table of each job's swept values and final metrics, best first (``report.md``,
``report.csv``), and ``report.png``: the monitored metric against each swept parameter. Jobs that
failed are listed last with the error their log ends on.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from hybrid.engine.outputs import pyplot
from hybrid.errors import HybridError
from hybrid.metrics import HEADLINE_METRICS, monitor_mode

log = logging.getLogger("hybrid.report")

# Final figures shown after the monitored one, when a job's metrics.json has them.
REPORTED_METRICS = (
    "best_epoch",
    *(f"test/{name}" for name in HEADLINE_METRICS),
    "test/num_samples",
    "train/images_per_s",
)
PLOTS_PER_ROW = 4


class ReportError(HybridError):
    """A sweep dir that cannot be reported on."""


def parse_override(override: str) -> tuple[str, str]:
    """``model.emb_dim=48`` -> ``("model.emb_dim", "48")`` (``+``/``~`` prefixes dropped)."""
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


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
        "overrides": dict(parse_override(o) for o in overrides),
        "monitor": str(OmegaConf.select(config, "trainer.monitor", default="val/f1_macro")),
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


def plot_against_parameters(path: Path, table: pd.DataFrame, best_column: str, keys: list[str]) -> Path | None:
    """``best_column`` against each swept parameter (numbers on a numeric axis, a log axis for
    ranges over decades such as the learning rate; anything else as categories)."""
    done = table[table["status"] == "ok"]
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
        else:
            categories = sorted(done[key].astype(str).unique())
            ax.scatter([categories.index(v) for v in done[key].astype(str)], done[best_column])
            ax.set_xticks(range(len(categories)), categories, rotation=30, ha="right")
        ax.set_xlabel(key)
        ax.set_ylabel(best_column)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(sweep_dir: Path) -> pd.DataFrame:
    """Write ``report.md``, ``report.csv`` and ``report.png`` into ``sweep_dir``; return the table."""
    sweep_dir = Path(sweep_dir)
    table, best_column, keys = build_table(find_jobs(sweep_dir))
    table.to_csv(sweep_dir / "report.csv", index=False)
    failed = int((table["status"] != "ok").sum())
    header = f"# Sweep {sweep_dir}\n\n{len(table)} jobs ({failed} failed), ranked by `{best_column}`.\n\n"
    (sweep_dir / "report.md").write_text(header + to_markdown(table))
    plot_against_parameters(sweep_dir / "report.png", table, best_column, keys)
    return table


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m hybrid.report <sweep dir>``."""
    parser = argparse.ArgumentParser(prog="python -m hybrid.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path, help="a multirun dir, e.g. outputs/train/multiruns/<time>")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        table = write_report(args.sweep_dir)
    except HybridError as err:
        log.error("%s", err)
        return 2
    print(to_markdown(table))
    log.info("report: %s (.csv, .png)", args.sweep_dir / "report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
