"""bench/realproxy.py: the real-image multi-label proxy is a function of its seed and sizes, byte
for byte, in Sewer-ML's CSV layout, with several codes on some images and none on others."""

from __future__ import annotations

import importlib.util

import pandas as pd

from hybrid.data.sewerml import CSV_HEADER, DEFECT_CODES
from tests.conftest import ROOT


def load_script():
    spec = importlib.util.spec_from_file_location("realproxy", ROOT / "bench" / "realproxy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_proxy_regenerates_byte_identical_files_for_a_seed(tmp_path):
    proxy = load_script()
    counts = {"train": 40, "val": 8, "test": 8}
    for run in ("a", "b", "other"):
        proxy.generate(tmp_path / run, counts, seed=1 if run == "other" else 0, size=48)
    files = sorted(path.relative_to(tmp_path / "a") for path in (tmp_path / "a").rglob("*") if path.is_file())
    assert len(files) == 3 + 56
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    train = pd.read_csv(tmp_path / "a" / "SewerML_Train.csv")
    assert tuple(train.columns) == CSV_HEADER and len(train) == 40
    codes = train[list(DEFECT_CODES)]
    assert (codes.sum(axis=1) == 0).any() and (codes.sum(axis=1) >= 2).any()  # none, and several
    assert (train.Defect == (codes.sum(axis=1) > 0)).all() and (train.ND == 1 - train.Defect).all()
    other = (tmp_path / "other" / "SewerML_Train.csv").read_bytes()
    assert other != (tmp_path / "a" / "SewerML_Train.csv").read_bytes()  # the seed matters
