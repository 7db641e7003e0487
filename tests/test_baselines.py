"""Baselines in the same engine: every model config builds, trains, exports and is measured like
the hybrid; attention-pooled queries; init_from; the comparison sweep and its report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from hybrid.data.labels import resolve_label_spec
from hybrid.deploy.onnx_export import export_float32
from hybrid.engine.losses import loss_function
from hybrid.engine.schema import TrainerSchema
from hybrid.errors import ConfigError, PretrainedWeightsError
from hybrid.models import build_model, parameter_report
from hybrid.models.schema import check_model_config
from hybrid.reporting.comparison import pareto_front
from hybrid.serve.runtimes import OnnxRuntimeSession
from tests.conftest import compose_config, run_module, run_script, tiny_overrides

BASELINES = [
    "resnet18",
    "efficientnet_b0",
    "mobilenetv3_small_100",
    "mobilenetv4_conv_small",
    "deit_tiny",
    "mobilevit_xxs",
    "xie2019",
]


def tiny_baseline(name: str, *extra: str, img_size: int = 64):
    return compose_config(overrides=[f"model={name}", f"model.img_size={img_size}", *extra]).model


# The exporter takes 5-15 s per timm network: two run by default, every one under -m slow (the slow
# comparison test also exports every baseline through python -m hybrid.jobs.export).
QUICK_EXPORTS = ("resnet18", "xie2019")


@pytest.mark.parametrize(
    "name", [name if name in QUICK_EXPORTS else pytest.param(name, marks=pytest.mark.slow) for name in BASELINES]
)
def test_baseline_exports_at_fp32_parity(name, tmp_path):
    """hybrid's ONNX export of a baseline after a training step gives PyTorch's probabilities."""
    model = build_model(tiny_baseline(name), 2)
    loss = loss_function(resolve_label_spec("binary", None, None), TrainerSchema())(
        model(torch.randn(4, 3, 64, 64)), torch.arange(4) % 2
    )
    loss.backward()
    torch.optim.SGD(model.parameters(), lr=1e-3).step()
    model.eval()
    images = torch.randn(4, 3, 64, 64)
    path = export_float32(model, 3, 64, tmp_path / "model.onnx")
    with torch.no_grad():
        reference = model(images).softmax(1).numpy()
    exported = torch.from_numpy(OnnxRuntimeSession(str(path))(images.numpy())).softmax(1).numpy()
    assert np.abs(exported - reference).max() < 1e-4  # export's own fp32 criterion


@pytest.mark.parametrize("name", BASELINES)
def test_every_baseline_builds_and_trains(name):
    """Same contract as the hybrid: one training step moves the weights and the parameter report
    counts them."""
    model = build_model(tiny_baseline(name), 2)
    params = parameter_report(model)
    assert params["total"] == sum(p.numel() for p in model.parameters()) > 0
    images, targets = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 0, 1])
    before = [p.detach().clone() for p in model.parameters()]
    loss = loss_function(resolve_label_spec("binary", None, None), TrainerSchema())(model(images), targets)
    loss.backward()
    torch.optim.SGD(model.parameters(), lr=1e-3).step()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


@pytest.mark.parametrize("name", ["resnet18", "deit_tiny", "xie2019"])
def test_baselines_take_grayscale_input(name):
    model = build_model(tiny_baseline(name, "model.in_channels=1"), 17).eval()
    assert model(torch.randn(2, 1, 64, 64)).shape == (2, 17)


def test_baseline_input_rules_and_weights_stop_with_one_line():
    with pytest.raises(ConfigError, match=r"model.img_size=72: deit_tiny needs at least 32 px in multiples of 16"):
        check_model_config(tiny_baseline("deit_tiny", img_size=72))
    with pytest.raises(ConfigError, match=r"model.img_size=80: mobilevit_xxs needs at least 64 px in multiples of 32"):
        check_model_config(tiny_baseline("mobilevit_xxs", img_size=80))
    with pytest.raises(PretrainedWeightsError, match=r"local file only \(nothing is downloaded\)"):
        check_model_config(tiny_baseline("resnet18", "model.pretrained=true"))
    with pytest.raises(PretrainedWeightsError, match=r"model.pretrained=/nowhere/w.pth: no such file"):
        check_model_config(tiny_baseline("resnet18", "model.pretrained=/nowhere/w.pth"))


def test_a_local_weights_file_is_loaded_with_the_head_resized(tmp_path):
    import timm
    from safetensors.torch import save_file

    source = timm.create_model("resnet18", num_classes=1000)
    save_file(source.state_dict(), str(tmp_path / "resnet18.safetensors"))
    model = build_model(tiny_baseline("resnet18", f"model.pretrained={tmp_path / 'resnet18.safetensors'}"), 2)
    assert torch.equal(model.net.conv1.weight, source.conv1.weight)
    assert model.net.get_classifier().out_features == 2


def test_attention_pooling_adds_no_parameters_and_changes_the_queries():
    learned = build_model(compose_config(overrides=["model.img_size=64"]).model, 2)
    pooled = build_model(compose_config(overrides=["model.img_size=64", "model.query_init=attention_pooling"]).model, 2)
    assert parameter_report(pooled) == parameter_report(learned)
    pooled.load_state_dict(learned.state_dict())
    images = torch.randn(3, 3, 64, 64)
    learned.eval(), pooled.eval()
    with torch.no_grad():
        assert not torch.allclose(pooled(images), learned(images))
        patches = pooled.decoder.positional_encoding(pooled.decoder.W_feat2emb(pooled.encoder(images)))
        latent = pooled.decoder.W_feat2emb(pooled.decoder.learnable_queries)
        first = pooled.decoder.first_queries(latent, patches)
    # each image's first queries are a convex combination of its own patch embeddings
    assert first.shape == (3, 1, 24) and not torch.allclose(first[0], first[1])
    with pytest.raises(ConfigError, match=r"model\.query_init='mean'"):
        check_model_config(compose_config(overrides=["model.query_init=mean"]).model)


def test_the_hybrid_patch_follows_its_input_size():
    assert compose_config(overrides=["model.img_size=224"]).model.encoder.patch_size == 56
    assert compose_config(overrides=["model.img_size=64", "model.patch_size=8"]).model.encoder.patch_size == 8
    assert compose_config().model.patch_size == 120


@pytest.mark.slow  # init_from is also exercised by test_a_pruned_binary_model_fine_tunes_into_another_task
def test_init_from_keeps_every_weight_that_fits(tiny_data, tmp_path):
    """Binary -> multi-label fine-tuning: all but the classifier's projection come from the run
    (into a decoder with attention-pooled queries, which trains and has no weights of its own)."""
    binary = tmp_path / "binary"
    result = run_script("train.py", *tiny_overrides(tiny_data), "trainer.max_epochs=1", f"hydra.run.dir={binary}")
    assert result.returncode == 0, result.stderr[-3000:]
    tuned = tmp_path / "multilabel"
    result = run_script(
        "train.py", "experiment=sewerml_multilabel", "model=cats_hybrid", "data=synthetic", *tiny_overrides(tiny_data),
        "trainer.max_epochs=1", f"init_from={binary}/checkpoints/best.pt", "model.query_init=attention_pooling",
        f"hydra.run.dir={tuned}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    log = (tuned / "train.log").read_text()
    assert json.loads((tuned / "metrics.json").read_text())["test/num_samples"] == 26
    assert "56 of 58 weights loaded" in log
    assert (
        "2 weights do not fit and keep their initial values: classifier.projection.bias, classifier.projection.weight"
        in log
    )
    # the multi-label preset's wider decoder: its own layer sizes, and the weights that fit them
    wider = tmp_path / "wider"
    result = run_script(
        "train.py", "experiment=sewerml_multilabel", "data=synthetic", *tiny_overrides(tiny_data),
        "trainer.max_epochs=1", f"init_from={binary}/checkpoints/best.pt", f"hydra.run.dir={wider}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    log = (wider / "train.log").read_text()
    assert "another model config than this run's" in log and "weights do not fit" in log
    # a checkpoint's own config is recognized as this run's (so a pruned model's sizes do apply)
    own = OmegaConf.to_container(compose_config(overrides=tiny_overrides(tiny_data)).model, resolve=True)
    from hybrid.engine.checkpoint import CheckpointRecord

    assert CheckpointRecord.load(binary / "checkpoints" / "best.pt").config["model"] == own
    result = run_script(
        "train.py", *tiny_overrides(tiny_data), f"init_from={binary}/checkpoints/best.pt",
        f"ckpt_path={binary}/checkpoints/last.pt", f"hydra.run.dir={tmp_path / 'both'}",
    )  # fmt: skip
    assert result.returncode == 2 and "give one of them" in result.stdout + result.stderr


def test_pareto_front_keeps_what_nothing_beats():
    cost = pd.Series([1.0, 2.0, 3.0, 2.5])
    score = pd.Series([0.5, 0.7, 0.9, 0.6])
    assert pareto_front(cost, score).tolist() == [True, True, True, False]


def without_patch_size(overrides: list[str]) -> list[str]:
    """The tiny overrides minus the hybrid's patch size (baselines have none; the hybrid's follows
    ``model.img_size``)."""
    return [o for o in overrides if not o.startswith("model.patch_size")]


@pytest.fixture(scope="module")
def model_sweep(tiny_data, tmp_path_factory):
    """``train.py -m model=cats_hybrid,resnet18`` on the tiny data: job 0 the hybrid, job 1 ResNet-18."""
    sweep = tmp_path_factory.mktemp("models")
    result = run_script(
        "train.py", "-m", "model=cats_hybrid,resnet18", *without_patch_size(tiny_overrides(tiny_data)),
        "trainer.max_epochs=1", f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return sweep


@pytest.mark.slow
def test_a_sweep_over_models_gets_the_cost_table_and_pareto_plot(model_sweep):
    result = run_module(
        "hybrid.jobs.report", str(model_sweep), "timed_runs=3", f"hydra.run.dir={model_sweep.parent / 'report_run'}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(model_sweep / "compare.csv")
    assert sorted(table.model) == ["cats_hybrid", "resnet18"]
    hybrid, resnet = (table[table.model == m].iloc[0] for m in ("cats_hybrid", "resnet18"))
    assert hybrid.params == 171_346 and resnet.params > 10 * hybrid.params
    assert (table.latency_p50_ms > 0).all() and (table.gflops > 0).all()
    assert {"val/f1_macro_best", "test/f1_macro"} <= set(table.columns)
    assert (model_sweep / "pareto.png").is_file() and "| latency_p50_ms |" in (model_sweep / "compare.md").read_text()


@pytest.mark.parametrize("method", ["l1", "fpgm"])
def test_pruning_lands_within_5_percent_and_the_checkpoint_rebuilds_it(method, tmp_path):
    """In process: prune a ResNet-18 to half its FLOPs, save it as a checkpoint, and get the same
    network back from its recorded layer sizes (what infer / export / init_from do)."""
    from hybrid.deploy.serving import model_from_record
    from hybrid.engine.checkpoint import CheckpointRecord
    from hybrid.jobs.prune import prune_to
    from hybrid.models.factory import flops_per_image
    from hybrid.models.structure import module_shapes

    cfg = compose_config(overrides=["model=resnet18", "model.img_size=64"])
    model = build_model(cfg.model, 2).eval()
    target = flops_per_image(model, 64, 3) / 2
    reached = prune_to(model, method, "flops", target, 64, 3, steps=60)
    assert abs(reached / target - 1) <= 0.05 and reached == flops_per_image(model, 64, 3)
    config = {"model": OmegaConf.to_container(cfg.model, resolve=True)}
    record = CheckpointRecord(config=config, class_names=["Normal", "Defect"], task="binary", model=model.state_dict(),
                              structure=module_shapes(model))  # fmt: skip
    path = record.save(tmp_path / "pruned.pt")
    rebuilt = model_from_record(CheckpointRecord.load(path), str(path)).eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(rebuilt(images), model(images))
    assert parameter_report(rebuilt)["total"] == parameter_report(model)["total"] < 11_000_000


@pytest.mark.slow
@pytest.mark.parametrize("method", ["l1", "fpgm"])
def test_pruned_resnet18_lands_on_the_hybrid_flops_and_fine_tunes_infers_exports(method, model_sweep, tiny_data):
    out = model_sweep / f"pruned_{method}"
    result = run_module(
        "hybrid.jobs.prune", f"ckpt_path={model_sweep}/1/checkpoints/best.pt", f"method={method}",
        f"target.like={model_sweep}/0/checkpoints/best.pt", "steps=60", f"hydra.run.dir={out}",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((out / "prune.json").read_text())
    hybrid_flops = json.loads((model_sweep / "0" / "metrics.json").read_text())["model/gflops"] * 1e9
    assert report["target"] == pytest.approx(hybrid_flops) and abs(report["after"] / hybrid_flops - 1) <= 0.05
    assert report["params"] < report["before"] or report["measure"] == "flops"
    tuned = out / "tuned"
    result = run_script(
        "train.py", "model=resnet18", *without_patch_size(tiny_overrides(tiny_data)), "trainer.max_epochs=1",
        f"init_from={out}/pruned.pt", f"hydra.run.dir={tuned}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tuned / "metrics.json").read_text())
    assert metrics["model/params"] == report["params"] and "weights loaded" in (tuned / "train.log").read_text()
    assert (
        run_script("infer.py", f"ckpt_path={tuned}/checkpoints/best.pt", f"hydra.run.dir={out / 'i'}").returncode == 0
    )
    assert json.loads((out / "i" / "metrics.json").read_text())["test/f1_macro"] == metrics["test/f1_macro"]
    result = run_module("hybrid.jobs.export", f"ckpt_path={tuned}/checkpoints/best.pt", f"hydra.run.dir={out / 'e'}")
    assert (
        result.returncode == 0
        and json.loads((out / "e" / "export.json").read_text())["verify/max_abs_prob_delta"] <= 1e-4
    )


@pytest.mark.slow
def test_experiment_compare_runs_every_model_and_reports_them(tiny_data, tmp_path):
    result = run_script(
        "train.py", "experiment=compare", *without_patch_size(tiny_overrides(tiny_data)), f"hydra.sweep.dir={tmp_path}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    result = run_module(
        "hybrid.jobs.report",
        str(tmp_path),
        "timed_runs=3",
        f"hydra.run.dir={tmp_path.parent / (tmp_path.name + '_report')}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(tmp_path / "compare.csv")
    assert sorted(table.model) == sorted(["cats_hybrid", *BASELINES])
    for job in table.job:  # each checkpoint is served, exported and benchmarked by the same tools
        checkpoint = tmp_path / str(job) / "checkpoints" / "best.pt"
        assert (
            run_script("infer.py", f"ckpt_path={checkpoint}", f"hydra.run.dir={tmp_path / 'i' / str(job)}").returncode
            == 0
        )
        exported = run_module(
            "hybrid.jobs.export", f"ckpt_path={checkpoint}", f"hydra.run.dir={tmp_path / 'e' / str(job)}"
        )
        assert exported.returncode == 0, exported.stdout[-2000:]
        report = json.loads((tmp_path / "e" / str(job) / "export.json").read_text())
        assert report["verify/max_abs_prob_delta"] <= 1e-4
    result = run_module(
        "hybrid.jobs.benchmark", f"models=[{','.join(str(tmp_path / str(j) / 'checkpoints/best.pt') for j in table.job)}]",
        "backends=[torch_fp32]", "timed_runs=3", "batch_sizes=[2]", "throughput_runs=1", f"hydra.run.dir={tmp_path / 'b'}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(pd.read_csv(tmp_path / "b" / "efficiency.csv")) == len(table)


def test_the_comparison_goes_to_the_sweeps_wandb_group(tmp_path, monkeypatch, caplog):
    import logging

    from hybrid.reporting.sweep_table import track_table

    caplog.set_level(logging.INFO, logger="hybrid")
    monkeypatch.setenv("WANDB_SILENT", "true")
    sweep = tmp_path / "2026-01-01_00-00-00"
    sweep.mkdir()
    table = pd.DataFrame({"job": [0, 1], "model": ["cats_hybrid", "resnet18"], "latency_p50_ms": [5.6, 12.5]})
    track_table(sweep, compose_config(overrides=["logger=wandb"]), "compare", table, None)
    runs = list((sweep / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    tables = list(runs[0].rglob("compare_*.table.json"))
    assert tables and json.loads(tables[0].read_text())["data"][1][1] == "resnet18"
    assert "group train-2026-01-01_00-00-00)" in caplog.text  # the group the sweep's jobs share


def test_a_pruned_binary_model_fine_tunes_into_another_task(tmp_path):
    """init_from a pruned checkpoint of another task: the pruned sizes apply, the output layer
    keeps the new task's classes and takes the pruned input size, with fresh weights."""
    from hybrid.engine.checkpoint import CheckpointRecord
    from hybrid.jobs.prune import prune_to
    from hybrid.models.structure import module_shapes

    cfg = compose_config(overrides=["model=resnet18", "model.img_size=64"])
    binary = build_model(cfg.model, 2).eval()
    prune_to(binary, "l1", "params", parameter_report(binary)["total"] / 3, 64, 3, steps=30)
    record = CheckpointRecord(model=binary.state_dict(), structure=module_shapes(binary))
    multilabel = build_model(cfg.model, 17)
    left_out = record.load_fitting_weights(multilabel)
    assert left_out == ["net.fc.bias", "net.fc.weight"]
    assert multilabel.net.fc.in_features == binary.net.fc.in_features < 512 and multilabel.net.fc.out_features == 17
    assert torch.equal(multilabel.net.conv1.weight, binary.net.conv1.weight)
    assert multilabel(torch.randn(2, 3, 64, 64)).shape == (2, 17)
