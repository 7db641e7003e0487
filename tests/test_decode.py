"""``data.decode=cuda``: the loader workers ship JPEG bytes and the batch is decoded, resized and
augmented on the model's device. Its decoding runs on any device, so the parity with the CPU path
(PIL in the workers) is tested here on the CPU, and on the GPU in tests/test_cuda.py."""

from __future__ import annotations

import pytest
import torch

from hybrid.data.decode import check_decode
from hybrid.data.loaders import DataModule
from hybrid.data.schema import data_settings
from hybrid.errors import ConfigError
from tests.conftest import compose_config

IMG_SIZE = 96  # sources of 160x120 are under twice this size: the CPU path decodes them in full too


def data_config(root, decode: str, *extra: str):
    overrides = [
        "data=csv", f"data.root={root}", "data.train_csv=labels.csv", "data.valid_csv=labels.csv",
        "data.test_csv=labels.csv", f"model.img_size={IMG_SIZE}", "model.patch_size=24", "data.batch_size=25",
        "data.num_workers=0", f"data.decode={decode}", *extra,
    ]  # fmt: skip
    return data_settings(compose_config(overrides=overrides).data)


def decoded_batches(root, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The test split's uint8 images as the CPU path makes them, and as the device decoder does."""
    cpu = next(iter(DataModule(data_config(root, "cpu"), 0).loader("test").loader))["image"]
    loader = DataModule(data_config(root, "cuda"), 0, device=device).loader("test")
    raw = next(iter(loader.loader))
    assert sum(item is not None for item in raw["encoded"]) == 24  # the PNG was decoded by the worker
    images, bad = loader.decoder(raw["encoded"], raw["decoded"])
    assert bad == [] and images.dtype == torch.uint8
    return cpu, images


def test_device_decoding_matches_the_cpu_path_within_one_level(tiny_jpegs):
    cpu, device = decoded_batches(tiny_jpegs, torch.device("cpu"))
    assert cpu.shape == device.shape == (25, 3, IMG_SIZE, IMG_SIZE)
    assert (cpu.int() - device.int()).abs().max().item() <= 1


def test_device_decoded_batches_are_ready_and_predict_alike(tiny_jpegs):
    cpu_loader = DataModule(data_config(tiny_jpegs, "cpu"), 0).loader("test")
    device_loader = DataModule(data_config(tiny_jpegs, "cuda"), 0).loader("test")
    a, b = next(iter(cpu_loader)), next(iter(device_loader))
    assert b["image"].dtype == torch.float32 and b["index"].tolist() == a["index"].tolist()
    step = 1 / (255 * 0.154)  # one level of the channel with the smallest std, normalized
    assert (a["image"] - b["image"]).abs().max().item() <= step + 1e-5


def test_training_augmentations_run_on_decoded_batches(tiny_jpegs):
    loader = DataModule(data_config(tiny_jpegs, "cuda"), 0).loader("train")
    torch.manual_seed(0)
    first = next(iter(loader))
    assert first["image"].shape == (25, 3, IMG_SIZE, IMG_SIZE) and first["image"].dtype == torch.float32
    plain = next(iter(DataModule(data_config(tiny_jpegs, "cuda"), 0).loader("test")))
    order = first["index"].argsort()
    assert not torch.allclose(first["image"][order], plain["image"])  # warped, flipped, jittered


def test_an_undecodable_jpeg_is_skipped_by_name(tiny_jpegs, tmp_path):
    broken = tmp_path / "data"
    broken.mkdir()
    for path in tiny_jpegs.iterdir():
        (broken / path.name).write_bytes(path.read_bytes())
    (broken / "00000003.jpg").write_bytes(b"\xff\xd8\xff" + b"\x00" * 64)  # a JPEG header, then nothing
    batch = next(iter(DataModule(data_config(broken, "cuda"), 0).loader("test")))
    assert batch["skipped"] == ["00000003.jpg"] and len(batch["image"]) == 24 and 3 not in batch["index"].tolist()


def test_decode_values_are_checked():
    with pytest.raises(ConfigError, match=r"data.decode='gpu'; choose one of \['cpu', 'cuda'\]"):
        check_decode("gpu", torch.device("cpu"))
    with pytest.raises(ConfigError, match=r"data\.decode=cuda decodes on the GPU, but the model runs on cpu"):
        check_decode("cuda", torch.device("cpu"))


def test_batch_augment_is_the_identity_a_flip_or_a_warp():
    from hybrid.data.transforms import BatchAugment

    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    assert torch.equal(BatchAugment(0, (1.0, 1.0), hflip=0.0)(images), images)
    assert torch.equal(BatchAugment(0, (1.0, 1.0), hflip=1.0)(images), images.flip(-1))
    torch.manual_seed(0)
    warped = BatchAugment(30, (0.5, 0.6), hflip=0.5)(images)
    assert warped.dtype == torch.uint8 and warped.shape == images.shape and not torch.equal(warped, images)
    assert (warped[:, :, 0, 0] == 0).all() and (warped[:, :, -1, -1] == 0).all()  # shrunk: zero-filled corners
