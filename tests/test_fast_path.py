"""The fast data path: uint8 batches, normalization on the batch, JPEG draft decode, the prepared
cache, precision checks. Nothing here is timed (see ``make bench`` for throughput)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from hybrid.data.batch import BatchPreparer
from hybrid.data.cache import open_cache
from hybrid.data.loaders import DataModule, resolve_workers
from hybrid.data.schema import data_settings
from hybrid.data.transforms import read_image
from hybrid.engine.runtime import Runtime
from hybrid.errors import ConfigError
from hybrid.jobs.prepare import prepare
from hybrid.jobs.schema import check_train_config
from hybrid.util.images import use_draft
from tests.conftest import compose_config, run_script, tiny_overrides

MEAN, STD = [0.523, 0.453, 0.345], [0.210, 0.199, 0.154]


def test_workers_ship_uint8_and_the_engine_gets_ready_batches(tiny_data):
    cfg = compose_config(overrides=tiny_overrides(tiny_data))
    data = DataModule(data_settings(cfg.data), seed=0, channels_last=True)
    for split in ("train", "test"):
        loader = data.loader(split)
        raw = next(iter(loader.loader))
        assert raw["image"].dtype == torch.uint8 and raw["image"].shape == (8, 3, 64, 64)
        ready = next(iter(loader))
        assert ready["image"].dtype == torch.float32 and ready["image"].shape == (8, 3, 64, 64)
        assert ready["image"].is_contiguous(memory_format=torch.channels_last)
    expected = BatchPreparer(MEAN, STD, 3)(raw["image"], torch.device("cpu"))
    torch.testing.assert_close(ready["image"], expected)  # test split: normalized, not jittered


@pytest.mark.parametrize("in_channels", [3, 1])
def test_batch_normalization_equals_float_transform(in_channels):
    images = torch.randint(0, 256, (4, in_channels, 20, 24), dtype=torch.uint8)
    mean = MEAN if in_channels == 3 else [sum(MEAN) / 3]
    std = STD if in_channels == 3 else [sum(STD) / 3]
    expected = v2.Normalize(mean, std)(v2.ToDtype(torch.float32, scale=True)(images))
    prepared = BatchPreparer(MEAN, STD, in_channels)(images, torch.device("cpu"), channels_last=True)
    assert prepared.dtype == torch.float32
    assert prepared.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(prepared, expected, atol=1e-5, rtol=1e-5)


def test_colour_jitter_runs_on_training_batches_only():
    images = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8)
    prep = BatchPreparer(MEAN, STD, 3, {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.0})
    cpu = torch.device("cpu")
    plain = prep(images, cpu)
    torch.manual_seed(0)
    jittered = prep(images, cpu, train=True)
    assert torch.equal(prep(images, cpu), plain) and not torch.allclose(jittered, plain)
    lowest, highest = prep(torch.zeros_like(images), cpu), prep(torch.full_like(images, 255), cpu)
    assert (jittered >= lowest - 1e-5).all() and (jittered <= highest + 1e-5).all()  # pixels stay in [0, 255]


@pytest.mark.parametrize("channels_last", [False, True])
def test_fused_jitter_equals_torchvision_step_by_step(channels_last):
    """The one-pass jitter is brightness, contrast then saturation as torchvision applies them
    (mid-range colours, so no step clips), then the normalization."""
    images = torch.randint(70, 150, (4, 3, 12, 10), dtype=torch.uint8)
    strengths = {"brightness": 0.3, "contrast": 0.3, "saturation": 0.3}
    prep = BatchPreparer(MEAN, STD, 3, strengths)
    torch.manual_seed(3)
    fused = prep(images, torch.device("cpu"), channels_last=channels_last, train=True)
    torch.manual_seed(3)  # the same per-image factors, drawn in the same order
    factors = [torch.empty(4, 1, 1).uniform_(0.7, 1.3).flatten() for _ in strengths]
    expected = []
    for i, image in enumerate(images.float() / 255):
        image = v2.functional.adjust_brightness(image, factors[0][i].item())
        image = v2.functional.adjust_contrast(image, factors[1][i].item())
        image = v2.functional.adjust_saturation(image, factors[2][i].item())
        expected.append(v2.functional.normalize(image, MEAN, STD))
    torch.testing.assert_close(fused, torch.stack(expected), atol=1e-4, rtol=1e-4)
    assert fused.is_contiguous(memory_format=torch.channels_last) == channels_last


def test_engine_refuses_batches_not_prepared_with_the_data_config():
    from hybrid.data.labels import resolve_label_spec
    from hybrid.engine.loop import predict

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(2))
    raw = {"image": torch.zeros(1, 3, 4, 4, dtype=torch.uint8), "target": torch.zeros(1, dtype=torch.long),
           "index": torch.zeros(1, dtype=torch.long), "skipped": []}  # fmt: skip
    with pytest.raises(ConfigError, match="mean/std"):
        predict(model, [raw], resolve_label_spec("binary", None, None), Runtime("cpu", "32"))


def _jpeg(path, size):
    gradient = np.linspace(0, 255, size[0] * size[1] * 3).reshape(size[1], size[0], 3).astype(np.uint8)
    Image.fromarray(gradient).save(path, "JPEG", quality=90)
    return str(path)


def test_jpeg_draft_only_when_source_is_twice_the_target(tmp_path, monkeypatch):
    from PIL import JpegImagePlugin

    calls = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(self, mode, size):
        calls.append(size)
        return original(self, mode, size)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    path = _jpeg(tmp_path / "big.jpg", (640, 480))
    assert read_image(path, 3, target=480).shape == (3, 480, 640) and calls == []  # 640x480 -> 480: no
    assert read_image(path, 3).shape == (3, 480, 640) and calls == []
    small = read_image(path, 3, target=200)  # 480 >= 2 * 200: decoded at half scale
    assert calls == [(200, 200)] and small.shape == (3, 240, 320)
    assert use_draft((640, 480), 240) and not use_draft((640, 480), 241) and not use_draft((640, 480), None)


def test_fp16_is_refused_on_cpu(tiny_data):
    with pytest.raises(ConfigError, match=r"trainer.precision=16 .*CUDA"):
        Runtime("cpu", 16, channels_last=True)
    cfg = compose_config(overrides=[*tiny_overrides(tiny_data), "trainer.precision=16", "trainer.device=cpu"])
    with pytest.raises(ConfigError, match=r"^trainer.precision=16"):
        check_train_config(cfg)


def test_new_defaults_and_workers(monkeypatch):
    import hybrid.data.loaders as loaders

    cfg = compose_config()
    assert str(cfg.trainer.precision) == "bf16" and cfg.trainer.channels_last and not cfg.trainer.compile
    monkeypatch.setattr(loaders, "available_cpus", lambda: 2)
    assert resolve_workers("auto") == 0 and resolve_workers(3) == 3
    monkeypatch.setattr(loaders, "available_cpus", lambda: 8)
    assert resolve_workers("auto") == 4
    with pytest.raises(ConfigError, match=r"data\.num_workers"):
        resolve_workers(-1)


def test_compiled_model_keeps_its_state_dict_keys():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
    keys = list(model.state_dict())
    compiled = Runtime("cpu", "32", channels_last=True, compile=True).prepare(model)
    assert list(compiled.state_dict()) == keys  # checkpoints stay loadable without torch.compile


def _data_overrides(data_root) -> list[str]:
    """The tiny run's ``data.*`` / ``model.*`` overrides (prepare.yaml has no trainer or logger)."""
    return [o for o in tiny_overrides(data_root) if o.startswith(("data.", "model."))]


def _prepare_cfg(data_root, cache_dir, *extra):
    return compose_config("prepare", [*_data_overrides(data_root), f"data.cache_dir={cache_dir}", *extra])


def test_prepare_is_resumable_and_keeps_labels_and_counts(tiny_data, tmp_path):
    csvs = {p.name: p.read_bytes() for p in tiny_data.glob("*.csv")}
    cfg = _prepare_cfg(tiny_data, tmp_path / "cache", "progress_bar=false")
    first = prepare(cfg)
    assert first == {"written": 48 + 24 + 26, "kept": 0, "unreadable": 0}
    (tmp_path / "cache" / "00000001.png.npy").unlink()  # as if interrupted before this one
    assert prepare(cfg) == {"written": 1, "kept": 97, "unreadable": 0}
    assert prepare(cfg)["written"] == 0
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert manifest["count"] == manifest["source_images"] == 98 and manifest["img_size"] == 64
    assert {p.name: p.read_bytes() for p in tiny_data.glob("*.csv")} == csvs
    cached_cfg = compose_config(overrides=[*tiny_overrides(tiny_data), f"data.cache_dir={tmp_path / 'cache'}"])
    data = DataModule(data_settings(cached_cfg.data), 0)
    assert data.cache is not None
    assert {s: len(data.dataset(s)) for s in ("train", "val", "test")} == {"train": 48, "val": 24, "test": 26}


def test_stale_cache_is_ignored(tiny_data, tmp_path, caplog):
    prepare(_prepare_cfg(tiny_data, tmp_path / "cache", "progress_bar=false", "data.cache_format=png"))
    npy = compose_config(overrides=[*tiny_overrides(tiny_data), f"data.cache_dir={tmp_path / 'cache'}"])
    assert open_cache(data_settings(npy.data), tiny_data) is None and "ignoring the image cache" in caplog.text
    png = compose_config(
        overrides=[*tiny_overrides(tiny_data), f"data.cache_dir={tmp_path / 'cache'}", "data.cache_format=png"]
    )
    assert open_cache(data_settings(png.data), tiny_data) is not None


def test_cache_is_used_transparently_with_identical_predictions(tiny_data, tmp_path):
    from hybrid.engine.loop import predict
    from hybrid.models import build_model

    cfg = compose_config(overrides=[*tiny_overrides(tiny_data), f"data.cache_dir={tmp_path / 'cache'}"])
    torch.manual_seed(0)
    model = build_model(cfg.model, 2)
    runtime = Runtime.from_config(cfg.trainer)
    model = runtime.prepare(model)
    plain = DataModule(data_settings(cfg.data), 0, channels_last=runtime.channels_last)
    assert plain.cache is None
    prepare(_prepare_cfg(tiny_data, tmp_path / "cache", "progress_bar=false"))
    cached = DataModule(data_settings(cfg.data), 0, channels_last=runtime.channels_last)
    assert cached.cache is not None
    reads = []
    read = cached.cache.read
    cached.cache.read = lambda path: reads.append(path) or read(path)
    a = predict(model, plain.loader("test"), plain.spec, runtime)
    b = predict(model, cached.loader("test"), cached.spec, runtime)
    assert len(reads) == 26  # every test image came from the cache
    assert a.indices.tolist() == b.indices.tolist() and a.targets.tolist() == b.targets.tolist()
    np.testing.assert_allclose(a.probs, b.probs, atol=1e-6)


@pytest.mark.slow
def test_infer_with_the_cache_gives_identical_predictions(tiny_data, tmp_path):
    cache = tmp_path / "cache"
    train_dir = tmp_path / "train"
    done = run_script("train.py", *tiny_overrides(tiny_data), "trainer.max_epochs=1", f"hydra.run.dir={train_dir}")
    assert done.returncode == 0, done.stderr[-2000:]
    ckpt = train_dir / "checkpoints" / "best.pt"
    plain = run_script("infer.py", f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path / 'plain'}", "progress_bar=false")
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert "using the image cache" not in plain.stderr + plain.stdout
    assert prepare(_prepare_cfg(tiny_data, cache, "progress_bar=false"))["written"] == 98
    cached = run_script(
        "infer.py", f"ckpt_path={ckpt}", f"data.cache_dir={cache}", f"hydra.run.dir={tmp_path / 'cached'}",
        "progress_bar=false",
    )  # fmt: skip
    assert cached.returncode == 0, cached.stderr[-2000:]
    assert "using the image cache" in cached.stderr + cached.stdout
    a = pd.read_csv(tmp_path / "plain" / "predictions.csv")
    b = pd.read_csv(tmp_path / "cached" / "predictions.csv")
    assert list(a.Filename) == list(b.Filename) and len(a) == 26
    np.testing.assert_allclose(a[["Normal", "Defect"]], b[["Normal", "Defect"]], atol=1e-5)
    assert list(a.prediction) == list(b.prediction)


@pytest.mark.parametrize("channels", [3, 1])
def test_uint8_affine_keeps_shape_and_dtype_and_is_random(channels):
    from hybrid.data.transforms import RandomAffineUint8

    image = torch.randint(0, 256, (channels, 40, 48), dtype=torch.uint8)
    affine = RandomAffineUint8(30, [0.8, 1.2])
    torch.manual_seed(0)
    out = affine(image)
    assert out.shape == image.shape and out.dtype == torch.uint8 and not torch.equal(out, affine(image))
    assert torch.equal(RandomAffineUint8(0, [1.0, 1.0])(image), image)  # the identity warp changes nothing
