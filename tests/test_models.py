"""The model as the seed describes it: shapes, backbones, decoder options, parameter report."""

from __future__ import annotations

import inspect
import math
from dataclasses import fields
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig
from torchvision import models as tvm

from hybrid.errors import ConfigError, PretrainedWeightsError
from hybrid.models import BACKBONES, build_backbone, build_model, parameter_report
from hybrid.models.decoder import CatsDecoder, QueryAdaptiveMasking
from hybrid.models.schema import BUILT_SIZES, CONFIGURED, configured_arguments, default_arguments, public_path
from tests.conftest import compose_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def seed_model():
    return build_model(compose_config().model, num_labels=2).eval()


def test_seed_shape_table(seed_model):
    images = torch.randn(16, 3, 480, 480)
    with torch.no_grad():
        patches = seed_model.encoder(images)
        assert patches.shape == (16, 16, 32)
        decoded, attention = seed_model.decoder(patches, return_attention=True)
        assert decoded.shape == (16, 32)
        assert seed_model.classifier(decoded).shape == (16, 2)
    # the [B, 1, 24] query state after cross-attention is what the head maps to [B, 1, 32]
    assert seed_model.decoder.head.in_features == 24
    assert seed_model.decoder.num_queries == 1
    assert attention.shape == (16, 2, 1, 16)
    assert torch.allclose(attention.sum(-1), torch.ones(16, 2, 1))


def test_patchify_keeps_grid_order():
    cfg = compose_config(overrides=["model.img_size=64", "model.patch_size=32"]).model
    encoder = build_model(cfg, 2).encoder
    image = torch.arange(64 * 64, dtype=torch.float32).view(1, 1, 64, 64).expand(1, 3, 64, 64)
    patches = encoder.patchify(image)
    assert patches.shape == (4, 3, 32, 32)
    assert patches[1, 0, 0, 0] == 32  # top-right patch starts at column 32
    assert patches[2, 0, 0, 0] == 32 * 64  # bottom-left patch starts at row 32


@pytest.mark.parametrize("name", sorted(BACKBONES))
@pytest.mark.parametrize("in_channels", [3, 1])
def test_every_backbone_builds_and_runs(name, in_channels):
    cfg = compose_config(
        overrides=[
            f"model.backbone={name}",
            f"model.in_channels={in_channels}",
            "model.img_size=64",
            "model.patch_size=32",
        ]
    ).model
    model = build_model(cfg, num_labels=3).eval()
    with torch.no_grad():
        out = model(torch.randn(2, in_channels, 64, 64))
    assert out.shape == (2, 3)
    assert torch.isfinite(out).all()


def test_gray_first_conv_is_rgb_mean(tmp_path):
    net = tvm.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(net.state_dict(), path)
    front, _ = build_backbone("resnet18_layer1", pretrained=str(path), in_channels=1)
    assert front[0].in_channels == 1
    assert torch.allclose(front[0].weight, net.conv1.weight.mean(1, keepdim=True))


def test_pretrained_path_loads_those_weights(tmp_path):
    net = tvm.mobilenet_v3_small(weights=None)
    path = tmp_path / "mnv3.pth"
    torch.save(net.state_dict(), path)
    front, channels = build_backbone("mobilenet_v3_small_feat3", pretrained=str(path))
    assert channels == 24
    assert torch.equal(front[0][0].weight, net.features[0][0].weight)


def test_pretrained_true_offline_names_file_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(PretrainedWeightsError) as err:
        build_backbone("resnet18_layer1", pretrained=True)
    message = str(err.value)
    assert "resnet18-f37072fd.pth" in message
    assert str(tmp_path / "hub" / "checkpoints") in message


def test_pretrained_true_uses_cached_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    net = tvm.resnet18(weights=None)
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(net.state_dict(), cache / "resnet18-f37072fd.pth")
    front, _ = build_backbone("resnet18_layer2", pretrained=True)
    assert torch.equal(front[0].weight, net.conv1.weight)


def test_foreign_weights_file_is_rejected(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"something": torch.zeros(1)}, path)
    with pytest.raises(PretrainedWeightsError, match="not a resnet18 state dict"):
        build_backbone("resnet18_layer1", pretrained=str(path))


def test_unknown_backbone_lists_choices():
    with pytest.raises(ConfigError, match=r"model.backbone='vgg'.*resnet18_layer1"):
        build_backbone("vgg")


@pytest.mark.parametrize("num_labels, queries", [(2, 1), (17, 1), (32, 1), (33, 2), (70, 3)])
def test_query_count_grows_with_labels(num_labels, queries):
    decoder = CatsDecoder(num_patches=16, grid_size=4, num_labels=num_labels, **default_arguments(CatsDecoder))
    assert decoder.num_queries == queries == math.ceil(num_labels / 32)
    assert decoder(torch.randn(3, 16, 32)).shape == (3, queries * 32)


@pytest.mark.parametrize("positional", ["learnable", "sincos2d", "none"])
@pytest.mark.parametrize("residual", [False, True])
def test_decoder_options(positional, residual):
    decoder = CatsDecoder(
        num_patches=16, grid_size=4, num_labels=2, **default_arguments(CatsDecoder, emb_dim=24, num_layers=3,
        positional_encoding=positional, residual_attention=residual),
    )  # fmt: skip
    decoder.eval()
    x = torch.randn(2, 16, 32)
    out, attention = decoder(x, return_attention=True)
    assert out.shape == (2, 32) and attention.shape == (2, 2, 1, 16)
    has_table = positional != "none"
    assert (decoder.positional_encoding.table is not None) == has_table
    # a positional code makes the output depend on where a patch sits
    swapped = decoder(x.flip(1))
    assert not torch.allclose(out, swapped, atol=1e-6) if has_table else torch.allclose(out, swapped, atol=1e-5)


def test_sincos_needs_width_divisible_by_four():
    with pytest.raises(ConfigError, match="emb_dim divisible by 4"):
        CatsDecoder(
            num_patches=16, grid_size=4, num_labels=2,
            **default_arguments(CatsDecoder, emb_dim=30, num_heads=3, positional_encoding="sincos2d"),
        )  # fmt: skip


def test_query_adaptive_masking_only_in_training():
    torch.manual_seed(0)
    qam = QueryAdaptiveMasking(0.2, 0.6)
    x = torch.ones(4000, 3, 8)
    qam.train()
    dropped = (qam(x)[..., 0] == 0).float().mean(0)
    assert torch.allclose(dropped, torch.tensor([0.2, 0.4, 0.6]), atol=0.03)
    assert torch.allclose(qam(x).mean(), torch.tensor(1.0), atol=0.03)  # rescaled like dropout
    qam.eval()
    assert torch.equal(qam(x), x)


def test_parameter_report_parts_add_up(seed_model):
    report = parameter_report(seed_model)
    enc = sum(v for k, v in report.items() if k.startswith("encoder/"))
    dec = sum(v for k, v in report.items() if k.startswith("decoder/"))
    assert enc == report["encoder"] and dec == report["decoder"]
    assert report["encoder"] + report["decoder"] + report["classifier"] == report["total"]
    assert report["total"] == sum(p.numel() for p in seed_model.parameters())
    assert report["decoder/queries"] == 32 and report["decoder/positional"] == 16 * 24


def test_emb_dim_override_reaches_the_model(seed_model):
    model = build_model(compose_config(overrides=["model.emb_dim=48", "model.num_layers=2"]).model, 2)
    assert model.decoder.W_feat2emb.out_features == 48
    assert len(model.decoder.layers) == 2
    assert parameter_report(model)["decoder"] != parameter_report(seed_model)["decoder"]


@pytest.mark.parametrize("target", list(CONFIGURED), ids=lambda target: target.__name__)
def test_constructors_take_what_the_config_gives(target):
    """A config-driven constructor declares no default of its own for what the config gives (the
    schema's default is the only one, so the two can neither restate nor contradict each other),
    and each such argument is a key of its schema."""
    parameters = inspect.signature(target).parameters
    own_defaults = {
        name: parameter.default
        for name, parameter in parameters.items()
        if name not in BUILT_SIZES and parameter.default is not inspect.Parameter.empty
    }
    assert own_defaults == {}, f"{target.__name__} restates its schema's defaults: {own_defaults}"
    keys = {schema_field.name for schema_field in fields(CONFIGURED[target].schema)}
    assert set(configured_arguments(target).values()) <= keys


def test_model_configs_write_no_link_lists():
    """The _target_ blocks are generated from the constructors (no ${..key} list kept by hand in
    conf/model), and every block a model config builds is one of the configured constructors."""
    written = {path.name: path.read_text() for path in (ROOT / "conf" / "model").glob("*.yaml")}
    assert written and not [name for name, text in written.items() if "${.." in text]
    targets = set()
    for name in ("cats_hybrid", "resnet18", "xie2019"):
        model = compose_config(overrides=[f"model={name}"]).model
        targets |= {block._target_ for block in model.values() if isinstance(block, DictConfig) and "_target_" in block}
    assert targets == {public_path(target) for target in CONFIGURED}
