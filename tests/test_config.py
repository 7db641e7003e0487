"""Composition of the real configs, overrides, and the one-line errors for bad combinations."""

from __future__ import annotations

import os

import pytest

from hybrid.errors import ConfigError
from hybrid.jobs.schema import check_train_config
from tests.conftest import compose_config, run_script


def test_defaults_match_the_seed():
    cfg = compose_config()
    m = cfg.model
    assert (m.img_size, m.patch_size, m.featured_patch_dim, m.emb_dim) == (480, 120, 32, 24)
    assert m.backbone == "resnet18_layer1" and m.pretrained is False
    assert cfg.data.batch_size == 16 and cfg.data.task == "binary"
    assert list(cfg.data.mean) == [0.523, 0.453, 0.345] and list(cfg.data.std) == [0.210, 0.199, 0.154]
    assert cfg.trainer.monitor == "val/f1_macro"
    assert cfg.logger.backend == "wandb"
    # hyperparameters are interpolated into the _target_ blocks
    assert m.encoder._target_ == "hybrid.models.PatchConvEncoder"
    assert m.decoder.emb_dim == 24 and m.encoder.patch_size == 120


@pytest.mark.parametrize(
    "override, key",
    [
        ("model.emb_dim=48", "decoder.emb_dim"),
        ("model.featured_patch_dim=16", "encoder.featured_patch_dim"),
        ("model.num_heads=4", "decoder.num_heads"),
        ("model.patch_size=60", "encoder.patch_size"),
        ("model.backbone=efficientnet_b0_feat2", "encoder.backbone"),
        ("model.in_channels=1", "encoder.in_channels"),
    ],
)
def test_top_level_override_reaches_block(override, key):
    value = override.split("=")[1]
    cfg = compose_config(overrides=[override])
    assert str(cfg.model[key.split(".")[0]][key.split(".")[1]]) == value


def test_data_follows_model_input():
    cfg = compose_config(overrides=["model.img_size=240", "model.in_channels=1"])
    assert cfg.data.img_size == 240 and cfg.data.in_channels == 1


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["model.img_size=500", "model.patch_size=120"],
            "model.img_size=500 is not covered by patches of model.patch_size=120",
        ),
        (["model.patch_size=100", "model.patch_stride=30"], "model.img_size=480 is not covered"),
        (["model.emb_dim=25"], "model.emb_dim=25 is not divisible by model.num_heads=2"),
        (["model.backbone=vgg16"], "model.backbone='vgg16' is unknown"),
        (["model.in_channels=2"], "model.in_channels must be 1 or 3"),
        (["model.positional_encoding=rope"], "model.positional_encoding='rope'"),
        (["data=sewerml", "data.root=/nonexistent/sewer-ml"], "data.root=/nonexistent/sewer-ml does not exist"),
        (["data.task=regression"], "data.task='regression' is unknown"),
        (["data.sampling_ratio=1.5"], "data.sampling_ratio for train must be in (0, 1]"),
        (["trainer.precision=16"], "trainer.precision=16"),
        (["trainer.monitor=val/f2_ciw"], "trainer.monitor='val/f2_ciw' does not apply"),
        (["trainer.scheduler.name=step"], "trainer.scheduler.name='step'"),
        (["trainer.class_weighting=positive_ratio"], "positive_ratio applies to data.task=multilabel only"),
        (["trainer.monitor=val/loss", "trainer.tune_threshold=true"], "cannot tune for trainer.monitor=val/loss"),
        (["data.task=multilabel", "data.label_columns=[a,b]", "trainer.monitor=val/f2_ciw"], "needs Sewer-ML codes"),
        # types, from each group's schema
        (["trainer.lr=abc"], "trainer.lr='abc': expected a number"),
        (["trainer.tune_threshold=maybe"], "trainer.tune_threshold='maybe'; choose false, true or per_class"),
        (["data.batch_size=many"], "data.batch_size='many': expected an integer"),
        (["model.emb_dim=wide"], "model.emb_dim='wide': expected an integer"),
        (["data.augment.rotation=x"], "data.augment.rotation='x': expected a number"),
        (["data.label_columns=[a,b]"], "data.task=binary reads one label column"),
        # keys added with a typo (Hydra itself refuses unknown keys without the +)
        (["+model.embdim=48"], "model.embdim is not a key of model; did you mean model.emb_dim?"),
        (["+trainer.scheduler.nme=x"], "trainer.scheduler.nme is not a key of trainer.scheduler; did you mean"),
        (["+data.augment.rotate=3"], "did you mean data.augment.rotation?"),
        (["+seeed=3"], "seeed is not a key of the config; did you mean seed?"),
        (["+logger.projct=x"], "logger.projct is not a key of logger; did you mean logger.project?"),
        (["logger.backend=tensorboard"], "logger.backend='tensorboard'; choose one of ['wandb', 'none']"),
    ],
)
def test_bad_combinations_name_the_key(overrides, message):
    with pytest.raises(ConfigError) as err:
        check_train_config(compose_config(overrides=overrides))
    assert message in str(err.value)


def test_patch_stride_allows_overlap():
    cfg = compose_config(overrides=["model.img_size=96", "model.patch_size=32", "model.patch_stride=16"])
    check_train_config(cfg)
    from hybrid.models import build_model

    assert build_model(cfg.model, 2).encoder.num_patches == 25


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.emb_dim=25", "model.emb_dim=25 is not divisible by model.num_heads=2"),
        ("trainer.lr=abc", "trainer.lr='abc': expected a number"),
        pytest.param("model.pretrained=true", "model.pretrained=true needs resnet18-", marks=pytest.mark.slow),
        pytest.param(
            "+model.embdim=48",
            "model.embdim is not a key of model; did you mean model.emb_dim?",
            marks=pytest.mark.slow,
        ),
        # Hydra's own refusals: the same line (no advice to append the key) and the same exit code
        ("model.embdim=48", "model.embdim is not a key of model; did you mean model.emb_dim?"),
        pytest.param(
            "data=nope",
            "Could not find 'data/nope' Available options in 'data': csv folder sewerml synthetic",
            marks=pytest.mark.slow,  # the same path as model.embdim=48 (Hydra's refusal), another message
        ),
    ],
)
def test_train_script_stops_with_one_line_before_any_work(tmp_path, override, message):
    run_dir = tmp_path / "run"
    result = run_script(
        "train.py",
        override,
        f"data.root={tmp_path / 'never-made'}",
        "logger=none",
        f"hydra.run.dir={run_dir}",
        env={"TORCH_HOME": str(tmp_path / "torch")},  # no cached weights
    )
    assert result.returncode == 2
    errors = [line for line in (result.stdout + result.stderr).splitlines() if "ERROR" in line]
    assert len(errors) == 1 and message in errors[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "never-made").exists()  # no dataset was generated
    assert not run_dir.exists()  # nor a run dir left in outputs/


@pytest.mark.slow
def test_a_refused_run_keeps_a_run_dir_that_holds_anything_else(tmp_path):
    """Only what this job's Hydra wrote is removed: a folder given as hydra.run.dir with a user's
    file in it stays, file included (this job's new .hydra/ goes); a .hydra/ that was there before
    stays too, even where Hydra has overwritten its files."""
    run_dir = tmp_path / "mine"
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("keep me")
    result = run_script("train.py", "trainer.lr=abc", "logger=none", f"hydra.run.dir={run_dir}")
    assert result.returncode == 2
    assert (run_dir / "notes.txt").read_text() == "keep me" and not (run_dir / ".hydra").exists()
    (run_dir / ".hydra").mkdir()
    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):  # an earlier run's, Hydra rewrites them in place
        (run_dir / ".hydra" / name).write_text("an earlier run's")
    os.utime(run_dir / ".hydra", (0, 0))  # made long before
    result = run_script("train.py", "trainer.lr=abc", "logger=none", f"hydra.run.dir={run_dir}")
    assert result.returncode == 2 and (run_dir / ".hydra" / "config.yaml").is_file()


def test_required_keys_left_unset_are_named(tmp_path):
    result = run_script("train.py", "data=csv", "logger=none", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2
    errors = [line for line in (result.stdout + result.stderr).splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "data.root must be set" in errors[0]
    result = run_script("infer.py", f"hydra.run.dir={tmp_path / 'infer'}")
    assert result.returncode == 2 and "ckpt_path is required" in result.stdout + result.stderr


def test_threshold_tuning_is_refused_only_where_argmax_decides():
    """A two-class single-label dataset with a negative class (a defect/normal folder: multiclass)
    has a threshold to tune; three classes, or two without a negative one, are refused in one line."""
    from hybrid.data.labels import LabelSpec
    from hybrid.metrics import check_threshold_classes, check_threshold_tuning

    check_threshold_tuning("multiclass", "val/f1_macro")  # decided once the classes are known
    check_threshold_classes(LabelSpec("multiclass", ("defect", "normal"), ("label",), "normal"), True)
    check_threshold_classes(LabelSpec("multiclass", ("a", "b", "c"), ("label",)), False)
    for spec in (LabelSpec("multiclass", ("a", "b", "c"), ("label",)), LabelSpec("multiclass", ("a", "b"), ("label",))):
        with pytest.raises(ConfigError, match=r"trainer.tune_threshold needs a threshold that decides: classes \["):
            check_threshold_classes(spec, True)
