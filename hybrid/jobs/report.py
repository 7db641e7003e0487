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
with the jobs each comes from, and ``aggregate.png`` the monitored metric with those intervals."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from hybrid.deploy.measure import BACKENDS
from hybrid.errors import ConfigError
from hybrid.jobs.app import HydraJob
from hybrid.jobs.schema import ReportSchema
from hybrid.reporting.sweep_report import write_report
from hybrid.reporting.sweep_table import to_markdown
from hybrid.util.typed_config import check_types

log = logging.getLogger("hybrid.jobs.report")


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
