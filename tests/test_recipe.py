"""Training recipe options: schedule-free optimizer, weight EMA, mixup / CutMix, gradient
accumulation, early stopping."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import t
from torch import nn

from hybrid.data.mixing import BatchMixer, MixSettings
from hybrid.data.schema import DataSchema, MixAlphaSchema, data_settings
from hybrid.engine.checkpoint import CheckpointRecord
from hybrid.engine.loop import StepSettings, train_one_epoch
from hybrid.engine.optim import build_optimizer, evaluation_weights
from hybrid.engine.runtime import Runtime
from hybrid.errors import ConfigError
from tests.conftest import ROOT, compose_config, run_script, tiny_overrides
from tests.test_reliability import same_figures


def trainer_cfg(*overrides: str):
    return compose_config(overrides=list(overrides)).trainer


def test_schedule_free_switches_to_its_average_for_evaluation_and_back():
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    optimizer = build_optimizer(
        model, trainer_cfg("trainer.optimizer=schedulefree_adamw", "trainer.scheduler.name=none")
    )
    for _ in range(5):
        optimizer.zero_grad()
        model(torch.randn(8, 4)).pow(2).mean().backward()
        optimizer.step()
    training = model.weight.detach().clone()
    with evaluation_weights(optimizer):
        assert not optimizer.param_groups[0]["train_mode"]
        averaged = model.weight.detach().clone()
    assert not torch.equal(averaged, training)  # evaluation sees other weights than the steps move
    assert torch.allclose(model.weight, training, atol=1e-7) and optimizer.param_groups[0]["train_mode"]
    with pytest.raises(ConfigError, match=r"schedulefree_adamw needs trainer.scheduler.name=none"):
        build_optimizer(model, trainer_cfg("trainer.optimizer=schedulefree_adamw"))


@pytest.mark.slow  # exact resume itself is guarded quick by the SIGINT test (test_reliability)
def test_schedule_free_and_ema_resume_exactly(tiny_data, tmp_path):
    recipe = [*tiny_overrides(tiny_data), "data.batch_size=4", "trainer.optimizer=schedulefree_adamw",
              "trainer.scheduler.name=none", "trainer.ema.decay=0.9"]  # fmt: skip
    whole, part = tmp_path / "whole", tmp_path / "part"
    assert run_script("train.py", *recipe, "trainer.max_epochs=2", f"hydra.run.dir={whole}").returncode == 0
    assert run_script("train.py", *recipe, "trainer.max_epochs=1", f"hydra.run.dir={part}").returncode == 0
    resumed = run_script(
        "train.py", *recipe, "trainer.max_epochs=2", f"ckpt_path={part}/checkpoints/last.pt", f"hydra.run.dir={part}"
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    same_figures(whole, part)  # epoch 2's training loss (every step of it) and validation, to the bit
    a, b = (CheckpointRecord.load(run / "checkpoints" / "last.pt") for run in (whole, part))
    assert all(torch.equal(a.ema[k], b.ema[k]) for k in a.ema) and all(
        torch.equal(a.model[k], b.model[k]) for k in a.model
    )
    history = pd.read_csv(whole / "history.csv")
    assert "val/ema/f1_macro" in history and "val/ema/loss" in history
    # best.pt serves the EMA weights (trainer.ema.best=ema), picked by their validation figure
    best = CheckpointRecord.load(whole / "checkpoints" / "best.pt")
    assert all(torch.equal(best.model[k], best.ema[f"module.{k}"]) for k in best.model)
    assert best.best_value == history["val/ema/f1_macro"].max()


def mix(mixup_alpha=0.0, cutmix_alpha=0.0) -> MixSettings:
    """The mixing view of data settings at their defaults but for the two alphas."""
    return MixSettings.of(DataSchema(mixup=MixAlphaSchema(mixup_alpha), cutmix=MixAlphaSchema(cutmix_alpha)))


def test_mixup_targets_sum_to_one_and_multilabel_mixes_per_label():
    torch.manual_seed(0)
    images = torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1).expand(4, 3, 8, 8).contiguous()
    mixer = BatchMixer(mix(mixup_alpha=0.4), num_classes=3)
    mixed, targets = mixer(images, torch.tensor([0, 1, 2, 2]))
    assert torch.allclose(targets.sum(dim=1), torch.ones(4))
    lam = targets[0, 0].item()  # image 0 (class 0) mixed with image 3 (class 2)
    assert targets[0, 2].item() == pytest.approx(1 - lam) and mixed[0, 0, 0, 0].item() == pytest.approx(3 * (1 - lam))
    multi = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [0.0, 1.0]])
    _, mixed_rows = BatchMixer(mix(mixup_alpha=0.4), num_classes=None)(images, multi)
    lam = mixed_rows[0, 0].item()  # row 0 [1, 0] with row 3 [0, 1]
    assert mixed_rows[0].tolist() == pytest.approx([lam, 1 - lam])
    assert mixed_rows[1].tolist() == pytest.approx([lam, lam])  # row 1 [1, 1] with row 2 [0, 0]


def test_cutmix_weight_is_the_pasted_share():
    torch.manual_seed(1)
    images = torch.zeros(2, 1, 10, 10)
    images[1] = 1.0
    mixed, targets = BatchMixer(mix(cutmix_alpha=1.0), num_classes=2)(images, torch.tensor([0, 1]))
    pasted = mixed[0].mean().item()  # image 0 is 0 outside the box, 1 inside it
    assert targets[0].tolist() == pytest.approx([1 - pasted, pasted]) and 0 < pasted < 1
    with pytest.raises(ConfigError, match=r"data.mixup.alpha=-1.0: must be >= 0"):
        mix(mixup_alpha=-1.0)


def test_accumulated_gradients_equal_one_large_batch():
    torch.manual_seed(0)
    images, targets = torch.randn(8, 4), torch.randn(8, 1)
    runtime = Runtime("cpu", "32")

    def trained(batches, accumulate):
        torch.manual_seed(0)
        model = nn.Linear(4, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        loader = [{"image": x, "target": y, "skipped": []} for x, y in batches]
        train_one_epoch(
            model, loader, optimizer, scheduler, nn.MSELoss(), runtime, step=StepSettings(accumulate=accumulate)
        )
        return model.weight.detach(), scheduler.last_epoch

    (two_halves, steps_a), (whole, steps_b) = (
        trained([(images[:4], targets[:4]), (images[4:], targets[4:])], 2),
        trained([(images, targets)], 1),
    )
    assert torch.allclose(two_halves, whole, atol=1e-6) and steps_a == steps_b == 1
    _, steps = trained([(images[:3], targets[:3])] * 3, 2)  # 3 batches, 2 per step: the last step takes one
    assert steps == 2


def test_accumulation_syncs_ddp_gradients_once_per_optimizer_step():
    class Local(nn.Linear):  # stands in for DistributedDataParallel: counts the batches kept local
        kept_local = 0

        @contextlib.contextmanager
        def no_sync(self):
            Local.kept_local += 1
            yield

    torch.manual_seed(0)
    model = Local(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    loader = [{"image": torch.randn(2, 4), "target": torch.randn(2, 1), "skipped": []} for _ in range(5)]
    train_one_epoch(
        model, loader, optimizer, scheduler, nn.MSELoss(), Runtime("cpu", "32"), step=StepSettings(accumulate=2)
    )
    # steps after batches 2, 4 and 5 (the epoch's last): batches 1 and 3 keep their gradients local
    assert Local.kept_local == 2 and scheduler.last_epoch == 3


@pytest.mark.slow
def test_early_stopping_ends_a_run_that_stopped_improving(tiny_data, tmp_path):
    # lr 0: the weights never change, so the monitored value never beats epoch 1's
    result = run_script(
        "train.py", *tiny_overrides(tiny_data), "trainer.max_epochs=5", "trainer.lr=0", "trainer.early_stopping.patience=2",
        f"hydra.run.dir={tmp_path}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert pd.read_csv(tmp_path / "history.csv").epoch.tolist() == [1, 2, 3]
    assert (
        "early stopping after epoch 3: val/f1_macro has not improved for 2 epochs"
        in (tmp_path / "train.log").read_text()
    )
    assert json.loads((tmp_path / "metrics.json").read_text())["best_epoch"] == 1


def sweep(tiny_data, root, *swept: str):
    result = run_script(
        "train.py", "-m", *tiny_overrides(tiny_data), "trainer.max_epochs=1", *swept, f"hydra.sweep.dir={root}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        subprocess.run(
            [sys.executable, "-m", "hybrid.jobs.report", str(root), f"hydra.run.dir={root.parent / 'report_run'}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        ).returncode
        == 0
    )
    return pd.read_csv(root / "aggregate.csv"), (root / "aggregate.md").read_text()


@pytest.mark.parametrize(
    "swept",
    [
        pytest.param(("seed=0,1,2",), marks=pytest.mark.slow),
        pytest.param(("data.fold=0,1,2", "data.num_folds=3"), marks=pytest.mark.slow),
    ],
    ids=["seeds", "folds"],
)  # folds: the same aggregation (the fold split itself is tested in tests/test_data.py)
def test_repeated_runs_are_aggregated_and_trace_to_their_jobs(tiny_data, tmp_path, swept):
    aggregate, markdown = sweep(tiny_data, tmp_path, *swept)
    [row] = aggregate.to_dict("records")  # one configuration, three runs of it
    assert row["runs"] == 3 and row["jobs"] == "0 1 2"
    for metric in ("val/f1_macro_best", "test/f1_macro", "test/accuracy"):
        values = [json.loads((tmp_path / job / "metrics.json").read_text())[metric] for job in ("0", "1", "2")]
        assert row[f"{metric}/mean"] == pytest.approx(np.mean(values))
        assert row[f"{metric}/std"] == pytest.approx(np.std(values, ddof=1))
        half = t.ppf(0.975, 2) * np.std(values, ddof=1) / np.sqrt(3)
        assert (row[f"{metric}/ci95_low"], row[f"{metric}/ci95_high"]) == pytest.approx(
            (np.mean(values) - half, np.mean(values) + half)
        )
        assert f"{row[f'{metric}/mean']:.4f} ± {row[f'{metric}/std']:.4f}" in markdown
    assert (tmp_path / "aggregate.png").stat().st_size > 0


def test_aggregation_groups_by_everything_but_the_seed():
    from hybrid.reporting.statistics import aggregate_table

    table = pd.DataFrame({
        "job": [0, 1, 2, 3], "status": ["ok"] * 4, "seed": [0, 1, 0, 1], "model.emb_dim": [24, 24, 48, 48],
        "test/f1_macro": [0.5, 0.7, 0.8, 0.8],
    })  # fmt: skip
    frame = aggregate_table(table, ["seed", "model.emb_dim"], ["test/f1_macro"])
    assert frame["model.emb_dim"].tolist() == [24, 48] and frame.jobs.tolist() == ["0 1", "2 3"]
    assert frame["test/f1_macro/mean"].tolist() == pytest.approx([0.6, 0.8])
    assert frame["test/f1_macro/std"].tolist() == pytest.approx([np.std([0.5, 0.7], ddof=1), 0.0])
    assert aggregate_table(table, ["model.emb_dim"], ["test/f1_macro"]) is None  # nothing repeats
    failed = table.assign(status="failed")
    assert aggregate_table(failed, ["seed"], ["test/f1_macro"]) is None  # no empty configuration row


def test_intervals_over_two_seeds_stay_within_the_metrics_range():
    """Two seeds: Student's t is 12.7 standard errors wide. A share (F1) is clipped to [0, 1]; a
    figure with no such range (images/s) is not."""
    from scipy.stats import t

    from hybrid.reporting.statistics import aggregate_table

    table = pd.DataFrame({
        "job": [0, 1], "status": ["ok"] * 2, "seed": [0, 1], "test/f1_macro": [0.3, 0.9],
        "train/images_per_s": [100.0, 300.0],
    })  # fmt: skip
    [row] = aggregate_table(table, ["seed"], ["test/f1_macro", "train/images_per_s"]).to_dict("records")
    assert (row["test/f1_macro/ci95_low"], row["test/f1_macro/ci95_high"]) == (0.0, 1.0)
    half = t.ppf(0.975, 1) * np.std([100, 300], ddof=1) / np.sqrt(2)
    assert row["train/images_per_s/ci95_low"] == pytest.approx(200 - half) and 200 - half < 0


def test_balanced_sampling_sees_every_class_equally_often_and_repeats_exactly():
    from hybrid.data.samplers import TrainingSampler, balanced_weights

    class Skewed(torch.utils.data.Dataset):
        targets = np.array([0] * 900 + [1] * 100)

        def __len__(self):
            return len(self.targets)

    weights = balanced_weights(Skewed.targets)
    sampler = TrainingSampler(Skewed(), seed=3, rank=0, world_size=1, weights=weights)
    sampler.set_epoch(1)
    drawn = [i for i, _ in sampler]
    assert len(drawn) == 1000 and abs(np.mean(Skewed.targets[drawn]) - 0.5) < 0.06  # 10% -> about half
    again = TrainingSampler(Skewed(), seed=3, rank=0, world_size=1, weights=weights)
    again.set_epoch(1)
    again.skip_first(400)  # a resumed epoch continues with the same draws
    assert [i for i, _ in again] == drawn[400:]
    # multi-label: rare labels weigh more, an image without labels counts as the class "none"
    multi = balanced_weights(np.array([[1, 0], [1, 0], [1, 1], [0, 0]]))
    assert multi.tolist() == pytest.approx([1 / 3, 1 / 3, (1 / 3 + 1) / 2, 1.0])


@pytest.mark.parametrize(("length", "world_size"), [(10, 1), (10, 3), (7, 4), (9000, 2)])
def test_training_order_is_distributed_samplers_shuffle_held_in_one_array(length, world_size):
    """The training order kept as an array (not a list of Python ints per epoch) is exactly
    DistributedSampler's: its shuffle, padding and split over ranks, epoch by epoch."""
    from torch.utils.data import DistributedSampler

    from hybrid.data.samplers import TrainingSampler, sample_seeds

    data = list(range(length))
    for rank in range(world_size):
        ours = TrainingSampler(data, seed=5, rank=rank, world_size=world_size)
        theirs = DistributedSampler(data, num_replicas=world_size, rank=rank, shuffle=True, seed=5)
        for epoch in (1, 2):
            ours.set_epoch(epoch)
            theirs.set_epoch(epoch)
            pairs = list(ours)
            assert [i for i, _ in pairs] == list(theirs) and len(ours) == len(theirs)
            assert [s for _, s in pairs] == sample_seeds(5, epoch, np.array(list(theirs))).tolist()


def test_per_class_thresholds_are_tuned_by_hand_case():
    from hybrid.data.labels import resolve_label_spec
    from hybrid.metrics import multilabel_metrics, tune_thresholds_per_class

    spec = resolve_label_spec("multilabel", ["RB", "OB"], None)
    truth = np.array([[1, 0], [1, 0], [0, 1], [0, 0]], float)
    # RB's positives score 0.3 (a low threshold finds them); OB's negatives score 0.6 (a high one avoids them)
    probs = np.array([[0.3, 0.6], [0.3, 0.6], [0.1, 0.9], [0.1, 0.6]])
    thresholds = tune_thresholds_per_class(probs, truth, spec, "f2_ciw")
    assert 0.1 < thresholds[0] <= 0.3 and 0.6 < thresholds[1] <= 0.9
    tuned = multilabel_metrics(probs, truth, list(spec.class_names), np.array(thresholds))
    assert tuned["f2/RB"] == tuned["f2/OB"] == 1.0


@pytest.mark.slow
def test_per_class_thresholds_are_stored_and_served(tiny_data, tmp_path):
    run = tmp_path / "run"
    result = run_script(
        "train.py", "experiment=sewerml_multilabel", "data=synthetic", *tiny_overrides(tiny_data),
        "trainer.max_epochs=1", "trainer.tune_threshold=per_class", f"hydra.run.dir={run}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    best = CheckpointRecord.load(run / "checkpoints" / "best.pt")
    assert isinstance(best.threshold, list) and len(best.threshold) == 17
    metrics = json.loads((run / "metrics.json").read_text())
    assert [metrics[f"test/tuned/threshold/{c}"] for c in best.class_names] == best.threshold
    assert "test/tuned/f2_ciw" in metrics and "test/f2_ciw" in metrics  # beside the 0.5 figures
    served = run_script("infer.py", f"ckpt_path={run}/checkpoints/best.pt", f"hydra.run.dir={tmp_path / 'infer'}")
    assert served.returncode == 0, served.stderr[-3000:]
    assert pd.read_csv(tmp_path / "infer" / "predictions.csv").equals(pd.read_csv(run / "predictions.csv"))
    with pytest.raises(ConfigError, match=r"tune_threshold=per_class needs data.task=multilabel, not binary"):
        from hybrid.engine.schema import check_trainer_config

        cfg = compose_config(overrides=["trainer.tune_threshold=per_class"])
        check_trainer_config(cfg.trainer, data_settings(cfg.data))


def test_one_query_per_label_reads_each_logit_from_its_own_query():
    from hybrid.models import build_model

    seed_rule = build_model(compose_config(overrides=["model.img_size=64"]).model, 17)
    assert seed_rule.decoder.num_queries == 1 and isinstance(seed_rule.classifier.projection, nn.Linear)
    model = build_model(compose_config(overrides=["model.img_size=64", "model.num_queries=17"]).model, 17).eval()
    assert model.decoder.num_queries == 17
    features = torch.randn(2, 17 * 32)
    changed = features.clone()
    changed[:, 5 * 32 : 6 * 32] += 1.0  # query 5's features only
    before, after = model.classifier(features), model.classifier(changed)
    moved = (before - after).abs().amax(dim=0) > 0
    assert moved.tolist() == [i == 5 for i in range(17)]
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 17)
    with pytest.raises(ConfigError, match=r"model.num_queries=0: at least 1"):
        from hybrid.models.schema import check_model_config

        check_model_config(compose_config(overrides=["model.num_queries=0"]).model)


def test_drop_path_reaches_the_timm_backbones():
    from hybrid.models import build_model

    def drop_paths(rate: str) -> int:
        cfg = compose_config(overrides=["model=resnet18", "model.img_size=64", f"model.drop_path_rate={rate}"])
        return sum("DropPath" in type(m).__name__ for m in build_model(cfg.model, 2).modules())

    assert drop_paths("0.1") > 0 and drop_paths("0.0") == 0
