"""Progress in a log: lines at every tenth or every 30 s once work runs longer than 10 s; none for
short work; tqdm only on a terminal."""

from __future__ import annotations

import io
import logging

import pytest

from hybrid.util import progress as progress_module
from hybrid.util.progress import Progress


@pytest.fixture(autouse=True)
def not_a_terminal(monkeypatch):
    """Output goes to a log (as in a batch job), even under ``pytest -s`` on a terminal."""
    monkeypatch.setattr(progress_module.sys, "stderr", io.StringIO())


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_lines_every_tenth_after_the_quiet_start(monkeypatch, caplog):
    clock = Clock()
    monkeypatch.setattr(progress_module.time, "monotonic", clock)
    caplog.set_level(logging.INFO, logger="hybrid.progress")
    meter = Progress(100, "prepare", unit="img")
    assert meter.bar is None  # no terminal: log lines, no bar
    for _ in range(100):
        clock.now += 0.5  # 50 s in all
        meter.update()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "prepare: 20/100 img (20%), 10 s"  # nothing in the first 10 s
    assert lines[-1] == "prepare: 100/100 img (100%), 50 s" and len(lines) == 9


def test_a_line_every_30_s_without_a_total(monkeypatch, caplog):
    clock = Clock()
    monkeypatch.setattr(progress_module.time, "monotonic", clock)
    caplog.set_level(logging.INFO, logger="hybrid.progress")
    meter = Progress(None, "evaluate", unit="batch")
    for _ in range(10):
        clock.now += 10
        meter.update()
    assert [r.getMessage() for r in caplog.records] == [
        "evaluate: 3 batch, 30 s", "evaluate: 6 batch, 60 s", "evaluate: 9 batch, 90 s"
    ]  # fmt: skip


def test_short_or_disabled_work_stays_quiet(caplog):
    caplog.set_level(logging.INFO, logger="hybrid.progress")
    for enabled in (True, False):
        meter = Progress(5, "quick", enabled=enabled)
        for _ in range(5):
            meter.update()
    assert not caplog.records


def test_synthetic_generation_reports_progress_in_a_log(tmp_path, monkeypatch, caplog):
    from hybrid.data.synthetic import SyntheticSpec, generate

    monkeypatch.setattr(progress_module, "QUIET_SECONDS", 0.0)
    caplog.set_level(logging.INFO, logger="hybrid.progress")
    generate(tmp_path, SyntheticSpec(num_train=16, num_val=2, num_test=2, width=64, height=48, workers=1))
    lines = [r.getMessage() for r in caplog.records]
    assert lines[-1].startswith(f"generating synthetic Sewer-ML in {tmp_path}: 20/20 img (100%)") and len(lines) == 10
