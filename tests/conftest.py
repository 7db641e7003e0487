"""Shared fixtures: a tiny synthetic dataset, the real configs composed with overrides, script runs."""

from __future__ import annotations

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


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """A generated tiny synthetic Sewer-ML dataset, shared by the session."""
    from hybrid.data.synthetic import SyntheticSpec, generate

    root = tmp_path_factory.mktemp("synthetic")
    return generate(root, SyntheticSpec(**TINY_SYNTHETIC), progress=False)


def compose_config(name: str = "train", overrides: list[str] | None = None):
    """Compose a real config from ``conf/`` the way the entry points do."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=name, overrides=overrides or [], return_hydra_config=False)


def run_script(
    script: str, *overrides: str, env: dict | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """Run ``train.py`` / ``infer.py`` as a user would; output captured as text.

    ``env`` entries override the environment; a ``None`` value removes the variable.
    """
    full_env = {**os.environ, "WANDB_SILENT": "true", **(env or {})}
    full_env = {k: v for k, v in full_env.items() if v is not None}
    return subprocess.run(
        [sys.executable, str(ROOT / script), *overrides],
        cwd=cwd or ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
