"""The Makefile's README commands: what ``make quickstart`` would run."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.conftest import ROOT

EXPANSIONS = 300  # the clock must be able to tick between two lines of one expansion


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_every_quickstart_line_names_the_same_run_folder():
    """The run folder is fixed once per make run: a second ticking between the train and the infer
    line must not send infer.py to a folder with no best.pt."""
    folders_per_run = []
    for _ in range(EXPANSIONS):
        lines = subprocess.run(
            ["make", "-n", "quickstart"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
        folders_per_run.append(set(re.findall(r"outputs/quickstart/([0-9_-]+)", lines)))
    assert all(len(folders) == 1 for folders in folders_per_run)
