"""Shared fixtures: a tiny synthetic dataset, the real configs composed with overrides, script runs."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
TINY_SYNTHETIC = {"num_train": 48, "num_val": 24, "num_test": 26, "width": 160, "height": 120, "workers": 1}


def tiny_overrides(data_root: Path) -> list[str]:
    """Overrides for a seconds-long run: tiny synthetic data, 64 px input, no W&B."""
    return [
        f"data.root={data_root}",
        *(f"data.synthetic.{k}={v}" for k, v in TINY_SYNTHETIC.items()),
        "data.num_workers=0",
        "data.batch_size=8",
        "model.img_size=64",
        "model.patch_size=16",
        "trainer.max_epochs=2",
        "trainer.progress_bar=false",
        "logger=none",
    ]


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` need an NVIDIA GPU: they skip elsewhere (CI), and run in ``make gpu-check``."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (run make gpu-check on a GPU machine)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """A generated tiny synthetic Sewer-ML dataset, shared by the session."""
    from hybrid.data.synthetic import SyntheticSpec, generate

    root = tmp_path_factory.mktemp("synthetic")
    return generate(root, SyntheticSpec(**TINY_SYNTHETIC), progress=False)


def import_job_modules() -> None:
    """Import the module of every ``hybrid <job>``: each registers its config schemas on import."""
    from hybrid.commands import JOBS

    for job in JOBS.values():
        importlib.import_module(job.module)


def compose_config(name: str = "train", overrides: list[str] | None = None):
    """Compose a real config from ``conf/`` the way the entry points do (importing every job's
    module first registers its schemas and resolvers, as running the job does)."""
    import_job_modules()

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=name, overrides=overrides or [], return_hydra_config=False)


def run_script(
    script: str, *overrides: str, env: dict | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """Run ``train.py`` / ``infer.py`` as a user would; output captured as text.

    ``env`` entries override the environment; a ``None`` value removes the variable.
    """
    return run_command([str(ROOT / script), *overrides], env=env, cwd=cwd)


def run_module(module: str, *overrides: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m <module>`` (``hybrid.jobs.export``, ``hybrid.jobs.benchmark``) as a user would."""
    return run_command(["-m", module, *overrides], env=env)


def run_command(arguments: list[str], env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """This Python with ``arguments``, in the repository root, output captured as text."""
    full_env = {**os.environ, "WANDB_SILENT": "true", **(env or {})}
    full_env = {k: v for k, v in full_env.items() if v is not None}
    return subprocess.run(
        [sys.executable, *arguments],
        cwd=cwd or ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="session")
def tiny_jpegs(tmp_path_factory) -> Path:
    """A Sewer-ML style dataset of 24 JPEG frames (160x120) and one PNG, all in one CSV."""
    import numpy as np
    import pandas as pd
    from PIL import Image

    from hybrid.data.sewerml import CSV_HEADER
    from hybrid.data.synthetic import SyntheticSpec, render_image, sample_labels

    root = tmp_path_factory.mktemp("jpegs")
    spec = SyntheticSpec(width=160, height=120)
    rows = []
    for index in range(25):
        rng = np.random.default_rng([3, index])
        codes, water = sample_labels(rng, spec.defect_rate)
        name = f"{index:08d}.{'png' if index == 7 else 'jpg'}"
        Image.fromarray(render_image(rng, codes, water, spec)).save(root / name, quality=90)
        row = dict.fromkeys(CSV_HEADER, 0)
        row.update(Filename=name, WaterLevel=water, Defect=int(bool(codes)), ND=int(not codes))
        rows.append(row)
    pd.DataFrame(rows, columns=CSV_HEADER).to_csv(root / "labels.csv", index=False)
    return root


FLOAT32 = ("trainer.precision=32", "trainer.channels_last=false")


@pytest.fixture(scope="session")
def trained(tiny_data, tmp_path_factory):
    """A tiny binary model trained in float32 (so its own test figures are the fp32 reference);
    exported and served by tests/test_deploy.py and tests/test_serve.py."""
    run_dir = tmp_path_factory.mktemp("deploy_train")
    result = run_script("train.py", *tiny_overrides(tiny_data), *FLOAT32, f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def export(checkpoint, out, *extra: str):
    """``python -m hybrid.jobs.export`` of ``checkpoint`` into ``out``: the model file and ``export.json``."""
    import json

    result = run_module("hybrid.jobs.export", f"ckpt_path={checkpoint}", f"hydra.run.dir={out}", *extra)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out / "model.onnx", json.loads((out / "export.json").read_text())


@pytest.fixture(scope="session")
def fp32_export(trained):
    """The fp32 export of :func:`trained`'s best checkpoint."""
    return export(trained / "checkpoints/best.pt", trained.parent / "export_fp32")


@pytest.fixture(scope="session")
def uninterrupted(tiny_data, tmp_path_factory) -> Path:
    """A three-epoch run with augmentation and a warmup-cosine schedule, never stopped."""
    run = tmp_path_factory.mktemp("uninterrupted")
    done = run_script("train.py", *EXACT_OVERRIDES(tiny_data), f"hydra.run.dir={run}")
    assert done.returncode == 0, done.stderr[-3000:]
    return run


def EXACT_OVERRIDES(data_root) -> list[str]:
    """The exact-resume tests' run (tests/test_reliability.py, tests/test_packed.py): three epochs,
    augmentation, a warmup-cosine schedule."""
    return [
        *tiny_overrides(data_root),
        "data.batch_size=4",
        "trainer.max_epochs=3",
        "trainer.scheduler.warmup_epochs=1",
    ]
