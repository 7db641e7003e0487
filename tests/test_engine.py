"""Engine pieces: schedules, metrics, checkpoints and resume."""

from __future__ import annotations

import itertools
import json
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from sklearn.metrics import f1_score

from hybrid.data.labels import resolve_label_spec
from hybrid.engine.checkpoint import CheckpointRecord
from hybrid.engine.optim import build_optimizer, build_scheduler
from hybrid.errors import CheckpointError
from hybrid.metrics import monitor_mode, single_label_metrics
from tests.conftest import compose_config, run_script, tiny_overrides


def lrs(name: str, epochs=4, steps=10, **extra) -> list[float]:
    cfg = compose_config(
        overrides=[f"trainer.scheduler.name={name}", f"trainer.max_epochs={epochs}", "trainer.lr=0.1"]
    ).trainer
    cfg = OmegaConf.merge(cfg, {"scheduler": extra})
    model = torch.nn.Linear(2, 2)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, steps)
    out = []
    for _ in range(epochs * steps):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def test_cosine_warms_up_then_decays():
    lr = lrs("cosine", warmup_epochs=1, min_lr_ratio=0.0)
    assert lr[0] == pytest.approx(0.01) and lr[9] == pytest.approx(0.1)
    assert all(a >= b for a, b in itertools.pairwise(lr[10:]))
    assert lr[-1] < 0.001


def test_cosine_restarts_go_back_up():
    lr = lrs("cosine_restarts", restart_epochs=1, restart_mult=1)
    assert lr[0] == pytest.approx(0.1) and lr[9] < 0.01 and lr[10] == pytest.approx(0.1)


def test_constant_schedule():
    assert set(lrs("none")) == {0.1}


def test_no_weight_decay_on_biases_and_norms():
    cfg = compose_config().trainer
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.LayerNorm(3))
    decay, no_decay = build_optimizer(model, cfg).param_groups
    assert len(decay["params"]) == 1 and len(no_decay["params"]) == 3 and no_decay["weight_decay"] == 0


def test_binary_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 2, 200)
    probs = rng.dirichlet([1, 1], 200)
    preds = probs.argmax(1)
    m = single_label_metrics(probs, targets, resolve_label_spec("binary", None, None))
    assert m["f1_normal"] == pytest.approx(f1_score(targets, preds, pos_label=0))
    assert m["f1_defect"] == pytest.approx(f1_score(targets, preds, pos_label=1))
    assert m["f1_macro"] == pytest.approx(f1_score(targets, preds, average="macro"))
    assert m["accuracy"] == pytest.approx((preds == targets).mean())
    assert m["support/Defect"] == targets.sum() and m["num_samples"] == 200


def test_class_never_predicted_scores_zero_not_nan():
    spec = resolve_label_spec("multiclass", ["label"], ["a", "b", "c"])
    m = single_label_metrics(np.array([[0.9, 0.1, 0.0]] * 3), np.array([0, 1, 2]), spec)
    assert m["f1/b"] == 0.0 and m["precision/c"] == 0.0 and "f1_normal" not in m


def test_monitor_mode():
    assert monitor_mode("val/loss") == "min" and monitor_mode("val/f1_macro") == "max"


def test_checkpoint_round_trip_and_foreign_files(tmp_path):
    CheckpointRecord(model={"w": torch.ones(2)}, class_names=["Normal", "Defect"]).save(tmp_path / "a.pt")
    record = CheckpointRecord.load(tmp_path / "a.pt")
    assert torch.equal(record.model["w"], torch.ones(2)) and record.class_names == ["Normal", "Defect"]
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]  # no temporary file left behind
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a hybrid checkpoint"):
        CheckpointRecord.load(tmp_path / "foreign.pt")
    (tmp_path / "junk.pt").write_text("junk")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        CheckpointRecord.load(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="no such file"):
        CheckpointRecord.load(tmp_path / "missing.pt")


@pytest.mark.slow  # exact resume runs in the default suite (tests/test_reliability.py)
def test_resume_continues_from_last(tiny_data, tmp_path):
    run_dir = tmp_path / "run"
    first = run_script("train.py", *tiny_overrides(tiny_data), "trainer.max_epochs=1", f"hydra.run.dir={run_dir}")
    assert first.returncode == 0, first.stderr[-2000:]
    resumed = run_script(
        "train.py", *tiny_overrides(tiny_data), "trainer.max_epochs=3",
        f"ckpt_path={run_dir}/checkpoints/last.pt", f"hydra.run.dir={tmp_path / 'second'}",
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert pd.read_csv(run_dir / "history.csv").epoch.tolist() == [1, 2, 3]
    assert CheckpointRecord.load(run_dir / "checkpoints" / "last.pt").epoch == 3
    assert "test/f1_macro" in json.loads((run_dir / "metrics.json").read_text())


def test_positive_ratio_and_effective_number_weights():
    from hybrid.data.labels import resolve_label_spec
    from hybrid.engine.losses import loss_function
    from hybrid.engine.schema import TrainerSchema

    spec = resolve_label_spec("multilabel", ["RB", "FS"], None)
    targets = np.array([[1, 0], [1, 0], [0, 1], [0, 0]], np.float32)
    bce = loss_function(spec, TrainerSchema(class_weighting="positive_ratio"), targets)
    assert torch.allclose(bce.pos_weight, torch.tensor([1.0, 3.0]))  # (N - N_c) / N_c
    effective = loss_function(
        spec, TrainerSchema(class_weighting="effective_number", effective_number_beta=0.9), targets
    )
    expected = np.array([(1 - 0.9) / (1 - 0.9**2), (1 - 0.9) / (1 - 0.9**1)])
    assert torch.allclose(effective.class_weight, torch.tensor(expected / expected.mean(), dtype=torch.float32))
    binary = resolve_label_spec("binary", None, None)
    weighted = TrainerSchema(class_weighting="effective_number", effective_number_beta=0.5)
    ce = loss_function(binary, weighted, np.array([0, 0, 0, 1]))
    assert ce.class_weight[1] > ce.class_weight[0]  # the rarer class weighs more


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's mallopt")
def test_glibc_keeps_freed_blocks_after_configure_process():
    """glibc accepts the setting (mallopt returns 1); the speed it buys is measured by
    python -m hybrid.jobs.benchmark retain_freed_memory=true|false, not here."""
    from hybrid.engine.runtime import retain_freed_memory

    assert retain_freed_memory() is True


def test_a_hook_hears_every_stage_adds_to_the_row_and_can_end_training(tiny_data, tmp_path, monkeypatch):
    """A hook added beside the default ones (checkpoints, stop signals) hears each stage of a fit in
    order; what it adds to a row reaches history.csv; its wants_to_stop ends training after that epoch."""
    from hybrid.engine import trainer as trainer_module
    from hybrid.engine.hooks import HookBase
    from hybrid.jobs.train import train

    class Recorder(HookBase):
        def __init__(self):
            self.stages = []

        def before_fit(self):
            self.stages.append("before_fit")

        def after_step(self):
            self.stages.append("step")

        def after_validation(self, epoch, row):
            self.stages.append(f"validation {epoch}")
            row["val/probe"] = 10.0 * epoch

        def after_record(self, record, *, improved):
            self.stages.append(f"record {record.epoch}")

        def after_epoch(self, epoch, row, *, improved):
            self.stages.append(f"epoch {epoch}")

        def wants_to_stop(self, epoch):
            return epoch == 2

        def after_fit(self):
            self.stages.append("after_fit")

    recorder = Recorder()
    defaults = trainer_module.default_hooks
    monkeypatch.setattr(trainer_module, "default_hooks", lambda *args: [*defaults(*args), recorder])
    cfg = compose_config(overrides=[*tiny_overrides(tiny_data), f"paths.output_dir={tmp_path}", "trainer.max_epochs=4"])
    train(cfg)
    steps = [stage for stage in recorder.stages if stage == "step"]
    assert steps and len(steps) % 2 == 0  # both epochs took the same optimizer steps
    per_epoch = len(steps) // 2
    expected = ["before_fit"]
    for epoch in (1, 2):
        expected += ["step"] * per_epoch + [f"validation {epoch}", f"record {epoch}", f"epoch {epoch}"]
    assert recorder.stages == [*expected, "after_fit"]
    history = pd.read_csv(tmp_path / "history.csv")
    assert history.epoch.tolist() == [1, 2] and history["val/probe"].tolist() == [10.0, 20.0]
    assert CheckpointRecord.load(tmp_path / "checkpoints" / "last.pt").epoch == 2
