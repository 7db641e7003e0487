"""End to end as a user runs it: train.py -> infer.py on tiny synthetic data, folders, multirun, W&B."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from tests.conftest import run_command, run_script, tiny_overrides

# Where a raw config may still go during training: the checks that type each group once, the model
# factory (``_target_`` blocks are Hydra's instantiation contract), the tracker (it records the
# whole config) and the run dir; the data layer, the engine and the losses get typed settings.
TRAIN_CONFIG_ENTRY_POINTS = {
    "hybrid.jobs.train", "hybrid.jobs.schema", "hybrid.util.typed_config", "hybrid.util.hydra_job", "hybrid.data.schema",
    "hybrid.engine.schema", "hybrid.models.schema", "hybrid.models.factory",
    "hybrid.tracking", "hybrid.tracking.registry", "hybrid.tracking.schema",
}  # fmt: skip


# Where a raw config may still go during infer: the conversions to typed settings, the tracker
# (it records the whole config), the run dir, and the model factory (``_target_`` blocks are
# Hydra's instantiation contract).
INFER_CONFIG_ENTRY_POINTS = {
    "hybrid.inference", "hybrid.inference.served_run", "hybrid.inference.schema", "hybrid.data.schema",
    "hybrid.util.typed_config", "hybrid.util.hydra_job", "hybrid.tracking", "hybrid.tracking.registry",
    "hybrid.models.schema", "hybrid.models.factory",
}  # fmt: skip


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    """One short training run (``hybrid train``, which ``train.py`` runs) shared by the tests below,
    run under ``tests.config_reach``: its last output line says where the raw config went."""
    run_dir = tmp_path_factory.mktemp("train")
    result = run_command(
        [
            "-m",
            "tests.config_reach",
            "hybrid.jobs.train:train",
            "train",
            *tiny_overrides(tiny_data),
            f"hydra.run.dir={run_dir}",
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, result


def test_training_writes_the_run_dir(trained, tiny_data):
    run_dir, _ = trained
    for name in ("checkpoints/best.pt", "checkpoints/last.pt", "metrics.json", "history.csv", "train.log",
                 "predictions.csv", "confusion_matrix.png", ".hydra/config.yaml"):  # fmt: skip
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("val/f1_macro_best", "test/accuracy", "test/f1_macro", "test/f1_normal", "test/f1_defect",
                "test/num_samples", "train/images_per_s", "data/skipped_images"):  # fmt: skip
        assert key in metrics, key
    assert metrics["test/num_samples"] == 26 and metrics["data/skipped_images"] == 0
    history = pd.read_csv(run_dir / "history.csv")
    assert history.epoch.tolist() == [1, 2]
    assert {"train/loss", "val/loss", "val/f1_macro", "val/accuracy", "lr"} <= set(history.columns)
    assert metrics["val/f1_macro_best"] == pytest.approx(history["val/f1_macro"].max())
    log = (run_dir / "train.log").read_text()
    assert re.search(r"decoder\s+11,632", log) and "encoder/cnn" in log and "total" in log


def test_infer_reproduces_the_test_metrics_exactly_with_typed_settings_only(trained):
    """``hybrid infer`` (which ``infer.py`` runs) re-scores the test split as training did, and,
    run under ``tests.config_reach``, hands the data and serving layers typed settings, not the raw
    config."""
    run_dir, _ = trained
    infer_dir = run_dir.parent / "infer"
    result = run_command(
        ["-m", "tests.config_reach", "hybrid.inference:infer", "infer",
         f"ckpt_path={run_dir}/checkpoints/best.pt", f"hydra.run.dir={infer_dir}", "progress_bar=false"]
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    reached = json.loads(result.stdout.strip().splitlines()[-1])
    assert "hybrid.inference" in reached and "hybrid.data.schema" in reached  # the profiler saw the job
    assert set(reached) <= INFER_CONFIG_ENTRY_POINTS, sorted(set(reached) - INFER_CONFIG_ENTRY_POINTS)
    trained_metrics = json.loads((run_dir / "metrics.json").read_text())
    inferred = json.loads((infer_dir / "metrics.json").read_text())
    test_keys = [k for k in trained_metrics if k.startswith("test/")]
    assert test_keys and {k: inferred[k] for k in test_keys} == {k: trained_metrics[k] for k in test_keys}
    assert inferred["infer/latency_ms_per_image"] > 0 and inferred["infer/peak_memory_mb"] > 0
    predictions = pd.read_csv(infer_dir / "predictions.csv")
    assert list(predictions.columns) == ["Filename", "Normal", "Defect", "prediction"]
    assert predictions.Filename.is_monotonic_increasing and len(predictions) == 26
    assert predictions.equals(pd.read_csv(run_dir / "predictions.csv"))
    assert (infer_dir / "confusion_matrix.png").is_file()


def test_training_hands_the_data_layer_and_the_engine_typed_settings_not_the_raw_config(trained):
    _, result = trained
    reached = json.loads(result.stdout.strip().splitlines()[-1])
    assert "hybrid.jobs.train" in reached and "hybrid.engine.schema" in reached  # the profiler saw the job
    assert set(reached) <= TRAIN_CONFIG_ENTRY_POINTS, sorted(set(reached) - TRAIN_CONFIG_ENTRY_POINTS)


@pytest.mark.slow
def test_infer_on_another_labelled_csv(trained, tiny_data):
    run_dir, _ = trained
    out = run_dir.parent / "infer_val"
    result = run_script(
        "infer.py", f"ckpt_path={run_dir}/checkpoints/best.pt", "data.test_csv=SewerML_Val.csv", f"hydra.run.dir={out}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((out / "metrics.json").read_text())["test/num_samples"] == 24


def test_folder_inference(trained, tiny_data):
    run_dir, _ = trained
    out = run_dir.parent / "infer_folder"
    result = run_script(
        "infer.py", f"ckpt_path={run_dir}/checkpoints/best.pt", f"input={tiny_data / 'val'}", f"hydra.run.dir={out}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    predictions = pd.read_csv(out / "predictions.csv", dtype={"Filename": str})
    assert sorted(predictions.Filename) == sorted(p.name for p in (tiny_data / "val").glob("*.png"))
    assert ((predictions.Normal + predictions.Defect) - 1).abs().max() < 1e-5
    assert set(predictions.prediction) <= {"Normal", "Defect"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert not any(k.startswith("test/") for k in metrics)


def test_foreign_checkpoint_is_refused(tmp_path):
    import torch

    path = tmp_path / "model.pt"
    torch.save({"state_dict": {}}, path)
    result = run_script("infer.py", f"ckpt_path={path}", f"hydra.run.dir={tmp_path / 'out'}")
    assert result.returncode == 2
    assert "not a hybrid checkpoint" in result.stdout + result.stderr


@pytest.mark.slow
def test_emb_dim_override_changes_logged_decoder_size(tiny_data, tmp_path):
    result = run_script(
        "train.py", *tiny_overrides(tiny_data), "model.emb_dim=48", "trainer.max_epochs=1", f"hydra.run.dir={tmp_path}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    decoder = re.search(r"^\s+decoder\s+([\d,]+)$", (tmp_path / "train.log").read_text(), re.M)
    assert decoder and decoder.group(1) != "11,632"


def test_wandb_runs_offline_without_credentials(tiny_data, tmp_path):
    env = {"HOME": str(tmp_path / "home"), "WANDB_API_KEY": None, "WANDB_MODE": None, "NETRC": None}
    overrides = [o for o in tiny_overrides(tiny_data) if o != "logger=none"]
    result = run_script(
        "train.py", *overrides, "logger=wandb", "trainer.max_epochs=1", f"hydra.run.dir={tmp_path / 'run'}", env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    offline = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and list(offline[0].glob("*.wandb"))
    assert "wandb sync" in (tmp_path / "run" / "train.log").read_text()


def test_logger_none_writes_no_wandb_files(trained):
    run_dir, _ = trained
    assert not (run_dir / "wandb").exists()
