"""Tracking and sweeps: W&B runs per sweep job (read back with wandb's own reader), Optuna,
the sweep report, and a logger-free run that loads no network client."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hydra import compose, initialize_config_dir

from hybrid.data.labels import LabelSpec
from hybrid.data.loaders import DataModule
from hybrid.data.schema import data_settings
from hybrid.engine.outputs import plot_history
from hybrid.engine.runtime import Runtime
from hybrid.jobs.report import main as report_main
from hybrid.models import build_model
from hybrid.tracking.media import (
    attention_overlays,
    confusion_counts_inputs,
    overlay,
    precision_recall_points,
    select_samples,
)
from tests.conftest import CONF, compose_config, run_script, tiny_overrides

WANDB_CLI = Path(sys.executable).parent / "wandb"


def offline_env(tmp_path: Path) -> dict:
    """No credentials and W&B's own files under ``tmp_path``: what a user without an account has."""
    home = tmp_path / "home"
    return {
        "HOME": str(home),
        "WANDB_API_KEY": None,
        "WANDB_MODE": None,
        "NETRC": None,
        "WANDB_CONFIG_DIR": str(home / "config"),
        "WANDB_CACHE_DIR": str(home / "cache"),
        "WANDB_DATA_DIR": str(home / "data"),
    }


def environment(changes: dict) -> dict:
    """This process's environment with ``changes`` applied (``None`` removes a variable)."""
    merged = {**os.environ, "WANDB_SILENT": "true", **changes}
    return {k: v for k, v in merged.items() if v is not None}


def read_offline_run(run_dir: Path) -> tuple[list[dict], dict]:
    """The records and the summary of the one offline W&B run in ``run_dir``, as wandb reads them
    (``wandb leet inspect``, the reader of its transaction log)."""
    [offline] = (run_dir / "wandb").glob("offline-run-*")

    def inspect(*flags: str) -> str:
        done = subprocess.run([str(WANDB_CLI), "leet", "inspect", *flags, str(offline)], capture_output=True,
                              text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    records = [json.loads(line) for line in inspect("--json").splitlines() if line.strip()]
    return records, json.loads(inspect("--summary", "--json"))


def of_type(records: list[dict], kind: str) -> list[dict]:
    return [r[kind] for r in records if r["type"] == kind]


@pytest.mark.slow  # offline W&B runs are guarded quick by test_pipeline; this adds the sweep grouping
def test_multirun_logs_one_wandb_run_per_job_in_one_group(tiny_data, tmp_path):
    overrides = [o for o in tiny_overrides(tiny_data) if o != "logger=none"]
    sweep = tmp_path / "sweep"
    result = run_script(
        "train.py", "-m", *overrides, "logger=wandb", "model.emb_dim=24,48", f"hydra.sweep.dir={sweep}",
        env=offline_env(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(p.parent for p in sweep.glob("*/metrics.json"))
    assert [p.name for p in jobs] == ["0", "1"]
    runs = []
    for job in jobs:
        records, summary = read_offline_run(job)
        [run] = of_type(records, "run")
        history = [h["item"] for h in of_type(records, "history")]
        curve = [item["val/f1_macro"] for item in history if "val/f1_macro" in item]
        metrics = json.loads((job / "metrics.json").read_text())
        runs.append((run, summary))
        # its own history of the monitored metric, one point per epoch, and the best in the summary
        assert len(curve) == 2
        assert summary["summary"]["val/f1_macro"]["max"] == pytest.approx(max(curve))
        assert summary["summary"]["val/f1_macro"]["max"] == pytest.approx(metrics["val/f1_macro_best"])
        assert summary["state"] == "finished"
        assert run["job_type"] == "train"
        assert summary["config"]["run"]["command"].endswith("model.emb_dim=24,48 " + f"hydra.sweep.dir={sweep}")
        assert "git_commit" in summary["config"]["run"]
        assert summary["summary"]["system/flops_per_image"] > 0
        # checkpoints as a model artifact with the best / latest aliases
        aliases = {a for art in of_type(records, "artifact") if art["type"] == "model" for a in art["aliases"]}
        assert {"best", "latest"} <= aliases
        # media: attention overlays per epoch, test confusion matrix, PR curves, sample table
        logged = {key.split(".")[0] for item in history for key in item}
        assert {"val/attention", "test/samples", "test/confusion_matrix_table", "test/pr_curve_table"} <= logged
    (first, first_summary), (second, second_summary) = runs
    assert first["run_id"] != second["run_id"]
    assert first["run_group"] and first["run_group"] == second["run_group"] == f"train-{sweep.name}"
    assert [first["display_name"], second["display_name"]] == ["model.emb_dim=24", "model.emb_dim=48"]
    assert first_summary["config"]["model"]["emb_dim"] == 24 and second_summary["config"]["model"]["emb_dim"] == 48
    assert "sweep" in first_summary["tags"]
    # the override reached the model: different decoder sizes in the logs
    sizes = [re.search(r"^\s+decoder\s+([\d,]+)$", (p / "train.log").read_text(), re.M).group(1) for p in jobs]
    assert sizes[0] != sizes[1]


@pytest.fixture(scope="module")
def optuna_sweep(tiny_data, tmp_path_factory):
    """Three Optuna trials on tiny data; ``num_heads=5`` cannot divide ``emb_dim``, so with this
    seed two trials fail and one completes."""
    sweep = tmp_path_factory.mktemp("optuna")
    result = run_script(
        "train.py", "hparams_search=optuna", *tiny_overrides(tiny_data), "trainer.max_epochs=1", "seed=1",
        "hydra.sweeper.n_trials=3", "model.num_layers=1", "model.num_heads=choice(1,5)", f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    return sweep, result


def test_optuna_optimizes_the_returned_metric_and_survives_failed_trials(optuna_sweep):
    sweep, result = optuna_sweep
    assert result.returncode == 0, result.stderr[-3000:]
    trials = sorted(p for p in sweep.iterdir() if (p / ".hydra").is_dir())
    assert len(trials) == 3
    done = [json.loads((p / "metrics.json").read_text()) for p in trials if (p / "metrics.json").exists()]
    assert 1 <= len(done) < 3  # a failed trial is recorded as failed; the study goes on
    assert "Failed experiment" in result.stdout + result.stderr
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(max(m["val/f1_macro_best"] for m in done))
    assert best["best_params"]["model.num_heads"] == 1


def test_report_rows_match_each_jobs_metrics(optuna_sweep):
    sweep, _ = optuna_sweep
    assert report_main([str(sweep), f"hydra.run.dir={sweep.parent / 'report_run'}"]) == 0
    table = pd.read_csv(sweep / "report.csv", dtype={"job": str})
    assert (sweep / "report.md").read_text().count("\n| ") == len(table) + 1  # header + one line per job
    assert (sweep / "report.png").is_file()
    assert len(table) == 3
    assert {"trainer.lr", "model.emb_dim", "model.num_heads"} <= set(table.columns)
    for row in table.itertuples(index=False):
        row = row._asdict()
        metrics_path = sweep / row["job"] / "metrics.json"
        if row["status"] == "ok":
            metrics = json.loads(metrics_path.read_text())
            for key in ("val/f1_macro_best", "test/f1_macro", "test/accuracy"):
                assert table.loc[table.job == row["job"], key].item() == pytest.approx(metrics[key])
        else:
            assert not metrics_path.exists()
            assert "not divisible by model.num_heads=5" in row["error"]
    statuses = table.status.tolist()
    assert statuses == sorted(statuses, key=lambda s: s != "ok")  # completed jobs first, best first
    scores = table.loc[table.status == "ok", "val/f1_macro_best"].tolist()
    assert scores == sorted(scores, reverse=True)


def test_report_names_a_missing_sweep_dir(tmp_path, capsys):
    assert report_main([str(tmp_path / "nope"), f"hydra.run.dir={tmp_path / 'report'}"]) == 2
    output = capsys.readouterr()
    assert "nope does not exist" in output.out + output.err  # Hydra's job log (stdout)


NETWORK_CLIENTS = ("wandb", "requests", "httpx", "urllib3", "sentry_sdk", "grpc", "aiohttp")
LOADED_CLIENTS = f"""
import atexit, runpy, sys
atexit.register(lambda: print("LOADED", sorted({{m.split('.')[0] for m in sys.modules}} & set({NETWORK_CLIENTS!r}))))
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.parametrize(
    ("logger", "expect_wandb"),
    [("logger=none", False), pytest.param("logger.mode=disabled", True, marks=pytest.mark.slow)],
)
def test_logger_none_imports_no_network_client(tiny_data, tmp_path, logger, expect_wandb):
    overrides = [o for o in tiny_overrides(tiny_data) if o != "logger=none"]
    if expect_wandb:
        overrides.append("logger=wandb")
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-c", LOADED_CLIENTS, str(CONF.parent / "train.py"), *overrides, logger,
         "trainer.max_epochs=1", f"hydra.run.dir={run_dir}"],
        capture_output=True, text=True, timeout=600, env=environment(offline_env(tmp_path)),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = re.search(r"^LOADED (.*)$", result.stdout, re.M).group(1)
    if expect_wandb:
        assert "wandb" in loaded  # the probe sees a client when one is loaded
    else:
        assert loaded == "[]"
        assert not list(run_dir.rglob("wandb*"))
    assert (run_dir / "training_curves.png").is_file()


def test_optuna_direction_follows_the_monitor():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        import hybrid.jobs.schema  # noqa: F401  (registers the resolver, as train.py does)

        for monitor, direction in (("val/f1_macro", "maximize"), ("val/loss", "minimize")):
            cfg = compose("train", [f"trainer.monitor={monitor}", "hparams_search=optuna"], return_hydra_config=True)
            assert cfg.hydra.sweeper.direction == direction
            assert cfg.hydra.sweeper.sampler.seed == cfg.seed
            assert set(cfg.hydra.sweeper.params) >= {
                "trainer.lr", "model.emb_dim", "model.num_heads", "model.num_layers",
                "model.featured_patch_dim", "model.patch_size", "model.dropout",
            }  # fmt: skip


def test_slurm_launcher_composes():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="optional extra: pip install -e .[slurm]")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", ["hydra/launcher=slurm", "hydra.launcher.partition=gpu"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher") and cfg.hydra.launcher.partition == "gpu"


def test_select_samples_puts_the_worst_first():
    errors = np.array([0.1, 0.9, 0.2, 0.8, 0.0, 0.5])
    rows = select_samples(errors, 4)
    assert rows[:2].tolist() == [1, 3] and len(set(rows.tolist())) == 4
    assert len(select_samples(errors, 50)) == 6


def test_precision_recall_points_skip_classes_without_positives():
    probs = np.array([[0.9, 0.1, 0.2], [0.2, 0.8, 0.1], [0.6, 0.4, 0.3]])
    targets = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0]])
    rows = precision_recall_points(probs, targets, ["RB", "OB", "PF"], single_label=False, max_points=2)
    assert {r[0] for r in rows} == {"RB", "OB"}
    assert all(len([r for r in rows if r[0] == c]) <= 2 for c in ("RB", "OB"))
    spec = LabelSpec("multilabel", ("RB", "OB", "PF"), ("RB", "OB", "PF"))
    true, predicted, names = confusion_counts_inputs(probs, targets, spec, threshold=0.5)
    assert names == ["Normal", "Defect"] and true == [1, 1, 1] and predicted == [1, 1, 1]


def test_overlay_colours_the_attended_patch(tmp_path):
    from PIL import Image

    image = Image.new("RGB", (64, 64), (128, 128, 128))
    heat = np.zeros((4, 4))
    heat[0, 3] = 1.0
    pixels = np.asarray(overlay(image, heat)).astype(int)
    assert pixels.shape == (64, 64, 3)
    hot, cold = pixels[:16, 48:].mean(axis=(0, 1)), pixels[48:, :16].mean(axis=(0, 1))
    assert np.abs(hot - cold).sum() > 100


def test_attention_overlays_on_validation_images(tiny_data):
    cfg = compose_config("train", tiny_overrides(tiny_data))
    data = DataModule(data_settings(cfg.data), 0)
    model = build_model(cfg.model, data.spec.num_labels)
    val = data.dataset("val")
    images = attention_overlays(model, data.loader("val", val), [0, 5], data.spec, Runtime("cpu", "32"), side=48)
    assert len(images) == 2
    assert images[0][0].size == (48, 48) and val.names[0] in images[0][1] and "predicted" in images[0][1]


def test_training_curves_plot(tmp_path):
    history = [{"epoch": e, "train/loss": 1 / e, "val/loss": 1.1 / e, "val/f1_macro": 0.5 + e / 10, "lr": 1e-3}
               for e in (1, 2, 3)]  # fmt: skip
    path = plot_history(tmp_path / "curves.png", history, "val/f1_macro")
    assert path.is_file() and path.stat().st_size > 1000
