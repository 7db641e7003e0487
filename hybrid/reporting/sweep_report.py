"""Every file of a sweep's report, written into the sweep dir (``report.md`` / ``.csv`` / ``.png``,
and the comparison and aggregate when the sweep calls for them), and the tables sent to the
tracker."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from hybrid.engine.outputs import save_figure
from hybrid.reporting.comparison import is_comparison, write_comparison
from hybrid.reporting.figures import parameters_figure
from hybrid.reporting.statistics import write_aggregate
from hybrid.reporting.sweep_table import build_table, find_jobs, to_markdown

log = logging.getLogger("hybrid.jobs.report")  # the report job's log, as before the split


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
