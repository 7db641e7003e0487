"""The synthetic Sewer-ML generator: format, label shape, determinism, reuse and stale folders."""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
from dataclasses import fields

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from hybrid.data.sewerml import CSV_HEADER, DEFECT_CODES
from hybrid.data.synthetic import (
    META_FILE,
    SPLIT_FILES,
    SyntheticSpec,
    ensure_synthetic_dataset,
    generate,
    render_image,
    sample_labels,
)
from hybrid.data.synthetic.pipe_videos import VideoSpec
from hybrid.util.cli import add_options, spec_from
from tests.conftest import TINY_SYNTHETIC, run_command


def digest(folder):
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*.png"))}


def test_format_is_sewer_ml(tiny_data):
    for split, name in SPLIT_FILES.items():
        frame = pd.read_csv(tiny_data / name, dtype={"Filename": str})
        assert tuple(frame.columns) == CSV_HEADER
        assert len(frame) == TINY_SYNTHETIC[f"num_{split}"]
        assert frame.Filename.str.fullmatch(r"\d{8}\.png").all()
        assert (frame.Defect == frame[list(DEFECT_CODES)].max(axis=1)).all()
        assert (frame.ND == 1 - frame.Defect).all()
        image = Image.open(tiny_data / split / frame.Filename.iloc[0])
        assert image.format == "PNG" and image.size == (TINY_SYNTHETIC["width"], TINY_SYNTHETIC["height"])
    names = pd.concat(pd.read_csv(tiny_data / n, dtype={"Filename": str}).Filename for n in SPLIT_FILES.values())
    assert names.is_unique


def test_label_statistics_are_shaped_like_sewer_ml():
    rng = np.random.default_rng(0)
    draws = [sample_labels(rng, 0.47)[0] for _ in range(20000)]
    defective = [codes for codes in draws if codes]
    assert 0.45 < len(defective) / len(draws) < 0.49
    assert 1.35 < np.mean([len(c) for c in defective]) < 1.6
    counts = pd.Series([c for codes in defective for c in codes]).value_counts()
    assert set(counts.index) == set(DEFECT_CODES)
    assert counts.iloc[0] > 10 * counts.iloc[-1]  # long tail
    assert {"AF", "OB", "FS"} <= set(counts.index[:5]) and "OP" in set(counts.index[-3:])


def test_deterministic_per_seed(tmp_path):
    spec = SyntheticSpec(num_train=6, num_val=2, num_test=2, width=96, height=72, workers=1)
    a, b = generate(tmp_path / "a", spec, progress=False), generate(tmp_path / "b", spec, progress=False)
    assert digest(a) == digest(b)
    assert (a / "SewerML_Train.csv").read_text() == (b / "SewerML_Train.csv").read_text()
    c = generate(tmp_path / "c", SyntheticSpec(**{**spec.__dict__, "seed": 1}), progress=False)
    assert digest(a) != digest(c)


def test_parallel_generation_matches_serial(tmp_path):
    spec = SyntheticSpec(num_train=8, num_val=2, num_test=2, width=96, height=72, workers=1)
    serial = generate(tmp_path / "serial", spec, progress=False)
    parallel = generate(tmp_path / "parallel", SyntheticSpec(**{**spec.__dict__, "workers": 2}), progress=False)
    assert digest(serial) == digest(parallel)


def test_defects_change_the_image():
    spec = SyntheticSpec(width=160, height=120)
    normal = render_image(np.random.default_rng(5), [], 0, spec)
    for code in DEFECT_CODES:
        with_defect = render_image(np.random.default_rng(5), [code], 0, spec)
        changed = np.abs(with_defect.astype(int) - normal.astype(int)).max(axis=2) > 40
        assert changed.mean() > 0.002, code


def test_reused_when_present_and_refused_when_stale(tmp_path):
    spec = SyntheticSpec(num_train=4, num_val=2, num_test=2, width=64, height=48, workers=1)
    root = ensure_synthetic_dataset(tmp_path, spec, progress=False)
    before = digest(root)
    stamp = (root / META_FILE).stat().st_mtime_ns
    ensure_synthetic_dataset(tmp_path, spec, progress=False)
    assert (root / META_FILE).stat().st_mtime_ns == stamp and digest(root) == before
    with pytest.raises(ValueError, match=r"made with other settings .*num_train"):
        ensure_synthetic_dataset(tmp_path, SyntheticSpec(**{**spec.__dict__, "num_train": 5}), progress=False)
    assert digest(root) == before  # nothing overwritten
    assert json.loads((root / META_FILE).read_text())["num_train"] == 4


def test_interrupted_generation_resumes(tmp_path):
    spec = SyntheticSpec(num_train=6, num_val=2, num_test=2, width=64, height=48, workers=1)
    full = digest(generate(tmp_path / "full", spec, progress=False))
    partial = generate(tmp_path / "partial", spec, progress=False)
    (partial / META_FILE).unlink()
    for path in list((partial / "train").glob("*.png"))[:3]:
        path.unlink()
    ensure_synthetic_dataset(partial, spec, progress=False)
    assert digest(partial) == full


@pytest.mark.parametrize(
    ("module", "spec_type"),
    [("hybrid.jobs.synthetic", SyntheticSpec), ("hybrid.jobs.synthetic_video", VideoSpec)],
)
def test_generator_help_describes_every_key(module, spec_type, capsys):
    assert importlib.import_module(module).main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for spec_field in fields(spec_type):
        default = spec_field.default
        shown = f"[{','.join(map(str, default))}]" if isinstance(default, tuple) else default
        assert f"{spec_field.name}={shown}" in text and " ".join(spec_field.metadata["help"].split()) in text


def test_the_video_generator_is_a_hydra_job_with_typed_keys(tmp_path):
    from hybrid.jobs.synthetic_video import main

    out = tmp_path / "videos"
    argv = [str(out), "videos=1", "duration_s=3", "width=96", "height=64", "vfr=true", "defect_s=[1,1.5]"]
    assert main([*argv, "normal_s=[1,1.5]", f"hydra.run.dir={tmp_path / 'run'}"]) == 0
    written = json.loads((out / "synthetic_video.json").read_text())
    assert written == {**vars(VideoSpec(videos=1, duration_s=3.0, width=96, height=64, vfr=True)),
                       "defect_s": [1.0, 1.5], "normal_s": [1.0, 1.5], "continuous_s": [8.0, 14.0]}  # fmt: skip
    assert (out / "pipe_001.mp4").is_file() and (tmp_path / "run" / ".hydra" / "config.yaml").is_file()


def test_a_generator_key_of_the_wrong_type_is_named(tmp_path):
    done = run_command(["-m", "hybrid.commands", "synthetic", str(tmp_path / "d"), "num_train=many"])
    assert done.returncode == 2 and "num_train='many': expected an integer" in done.stdout + done.stderr
    assert not (tmp_path / "d").exists()


def test_spec_from_reads_a_mapping_back_into_its_spec():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    add_options(parser, VideoSpec)
    args = vars(parser.parse_args(["o", "--videos", "3", "--defect-s", "1", "2", "--vfr"]))
    assert spec_from(VideoSpec, args) == VideoSpec(videos=3, defect_s=(1.0, 2.0), vfr=True)
