"""The packed cache (``data.cache_format=packed`` / ``packed_jpg``): the samples of the per-file
caches, byte for byte, from a few large files; a pack cut short or not matching its index is named
and its images are read from their sources; an interrupted prepare keeps its finished packs."""

from __future__ import annotations

import json
import logging
import shutil
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from hybrid.data.loaders import DataModule, sample_rows
from hybrid.data.packed import DATA_SUFFIX, INDEX_SUFFIX, PACKS
from hybrid.engine.checkpoint import CheckpointRecord
from tests.conftest import EXACT_OVERRIDES, ROOT, compose_config, run_script, tiny_overrides
from tests.test_prepare import IMAGES, prepare_with
from tests.test_reliability import ENV, epochs_in, same_figures, signal_when, start_training

PACK_MB = "prepare.pack_mb=0.2"  # 64 px raw entries are 12 KB: several packs of the 98 images


def module(data_root, cache, fmt: str) -> DataModule:
    from hybrid.jobs.train import check_train_config

    cfg = compose_config(overrides=[*tiny_overrides(data_root), f"data.cache_dir={cache}", f"data.cache_format={fmt}"])
    return DataModule(check_train_config(cfg).data, 0)


def entries_of(data: DataModule, split: str) -> list:
    dataset = data.dataset(split)
    return [dataset.cached.lookup(i) for i in range(len(dataset))]


@pytest.mark.parametrize(("packed", "twin"), [("packed", "npy"), ("packed_jpg", "jpg")])
def test_packed_samples_are_the_per_file_caches_bytes(tiny_data, tmp_path, packed, twin):
    prepare_with(tiny_data, tmp_path / twin, f"data.cache_format={twin}")
    done = prepare_with(tiny_data, tmp_path / packed, f"data.cache_format={packed}", PACK_MB, "prepare.num_workers=2")
    assert done == {"written": IMAGES, "kept": 0, "unreadable": 0}
    packs = sorted((tmp_path / packed / PACKS).rglob(f"*{DATA_SUFFIX}"))
    assert len(packs) >= (3 if packed == "packed" else 1) and not list((tmp_path / packed).glob("*.npy"))
    files, packs = module(tiny_data, tmp_path / twin, twin), module(tiny_data, tmp_path / packed, packed)
    for split in ("train", "val", "test"):
        ours, theirs = entries_of(packs, split), entries_of(files, split)
        assert all(e is not None for e in ours) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs, strict=True):
            assert torch.equal(a.image(), b.image())
            if twin == "jpg":  # the same JPEG bytes (data.decode=cuda hands them to nvJPEG)
                assert torch.equal(a.jpeg(), b.jpeg())
            else:
                assert a.jpeg() is None and b.jpeg() is None


def test_a_rerun_keeps_finished_packs_and_caches_changed_sources_again(tiny_data, tmp_path):
    cache = tmp_path / "cache"
    prepare_with(tiny_data, cache, "data.cache_format=packed", PACK_MB)
    packs = sorted((cache / PACKS).rglob(f"*{INDEX_SUFFIX}"))
    lost = np.load(packs[-1])  # as if the run had been interrupted while filling the last pack
    packs[-1].unlink()
    again = prepare_with(tiny_data, cache, "data.cache_format=packed", PACK_MB)
    assert again == {"written": len(lost), "kept": IMAGES - len(lost), "unreadable": 0}
    assert prepare_with(tiny_data, cache, "data.cache_format=packed", PACK_MB)["written"] == 0
    source = next(tiny_data.rglob(lost["name"][0].decode()))
    source.touch()  # a changed image is cached again (in a new pack, whose entry wins)
    assert prepare_with(tiny_data, cache, "data.cache_format=packed", PACK_MB)["written"] == 1
    # other settings in the same folder: their own packs, and the rebuild drops the old ones
    assert prepare_with(tiny_data, cache, "data.cache_format=packed_jpg")["written"] == IMAGES
    assert [folder.name.split("-")[0] for folder in (cache / PACKS).iterdir()] == ["packed_jpg"]
    assert all(entry.jpeg() is not None for entry in entries_of(module(tiny_data, cache, "packed_jpg"), "test"))


def test_a_pack_cut_short_or_not_matching_its_index_is_named_and_its_images_read_from_sources(
    tiny_data, tmp_path, caplog
):
    cache = tmp_path / "cache"
    prepare_with(tiny_data, cache, "data.cache_format=packed", PACK_MB)
    plain = module(tiny_data, tmp_path / "none", "npy").dataset("test")
    holding = {}  # pack data file -> its index, by name
    for index in sorted((cache / PACKS).rglob(f"*{INDEX_SUFFIX}")):
        data_file = index.with_name(index.name.removesuffix(INDEX_SUFFIX) + DATA_SUFFIX)
        holding[data_file] = {row["name"].decode(): row for row in np.load(index)}
    swapped = next(f for f, rows in holding.items() if plain.names[0] in rows)
    cut = next(f for f, rows in holding.items() if f != swapped and set(plain.names) & set(rows))
    cut.write_bytes(cut.read_bytes()[:-100])  # cut short: the index wants more bytes
    content = bytearray(swapped.read_bytes())
    entry = holding[swapped][plain.names[0]]
    start, end = int(entry["offset"]), int(entry["offset"] + entry["length"])
    content[start:end] = bytes(reversed(content[start:end]))  # same size, other bytes: the check of its ends finds it
    swapped.write_bytes(bytes(content))
    with caplog.at_level(logging.WARNING):
        packed = module(tiny_data, cache, "packed").dataset("test")
        assert f"ignoring the pack {cut}" in caplog.text
        samples = [packed[i]["image"] for i in range(len(packed))]
    assert f"ignoring the pack {swapped} from now on" in caplog.text and "does not match its index" in caplog.text
    assert caplog.text.count(str(swapped)) == 1  # one line, not one per image
    assert all(torch.equal(a, plain[i]["image"]) for i, a in enumerate(samples))  # the sources, where packs failed


@pytest.mark.slow
def test_training_from_the_packed_cache_gives_the_npy_caches_history(tiny_data, tmp_path):
    histories = []
    for fmt in ("npy", "packed"):
        prepare_with(tiny_data, tmp_path / fmt, f"data.cache_format={fmt}", PACK_MB)
        run_dir = tmp_path / f"run_{fmt}"
        done = run_script(
            "train.py", *tiny_overrides(tiny_data), f"data.cache_dir={tmp_path / fmt}", f"data.cache_format={fmt}",
            "data.num_workers=2", "seed=3", f"hydra.run.dir={run_dir}",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        assert f", {fmt})" in done.stderr + done.stdout  # "using the image cache in ... (N images, fmt)"
        histories.append(pd.read_csv(run_dir / "history.csv").drop(columns=["train/images_per_s"]))
    pd.testing.assert_frame_equal(histories[0], histories[1])
    shutil.rmtree(tmp_path / "npy")


@pytest.mark.slow
def test_sigint_mid_epoch_then_resume_from_the_packed_cache_equals_the_uninterrupted_run(
    tiny_data, tmp_path, uninterrupted
):
    """The exact-resume test of tests/test_reliability.py, read from packs: the same figures as the
    uninterrupted run from the sources (the packs hold the very pixels the loader would make)."""
    cache = tmp_path / "cache"
    prepare_with(tiny_data, cache, "data.cache_format=packed", PACK_MB)
    run = tmp_path / "run"
    packed = [f"data.cache_dir={cache}", "data.cache_format=packed"]
    proc = start_training(*EXACT_OVERRIDES(tiny_data), *packed, f"hydra.run.dir={run}")
    output = signal_when(proc, lambda: 1 in epochs_in(run / "history.csv"), signal.SIGINT)
    assert proc.returncode == 130, output[-3000:]
    assert CheckpointRecord.load(run / "checkpoints" / "last.pt").interrupted_step is not None
    resumed = run_script("train.py", f"ckpt_path={run}/checkpoints/last.pt")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert ", packed)" in (run / "train.log").read_text()  # "using the image cache in ... (N images, packed)"
    same_figures(run, uninterrupted)


@pytest.mark.slow
def test_torchrun_two_processes_evaluate_every_test_image_once_from_packs(tiny_data, tmp_path):
    cache = tmp_path / "cache"
    prepare_with(tiny_data, cache, "data.cache_format=packed", PACK_MB)
    expected = sample_rows(pd.read_csv(tiny_data / "SewerML_Test.csv", dtype={"Filename": str}), 0.5, 42, "test")
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(ROOT / "train.py"), *tiny_overrides(tiny_data), "trainer=ddp", "data.sampling_ratio={test: 0.5}",
         f"data.cache_dir={cache}", "data.cache_format=packed", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    run = tmp_path / "run"
    assert ", packed)" in (run / "train.log").read_text()
    assert json.loads((run / "metrics.json").read_text())["test/num_samples"] == len(expected) == 13
    predictions = pd.read_csv(run / "predictions.csv", dtype={"Filename": str})
    assert sorted(predictions.Filename) == sorted(expected.Filename)  # each once, none padded in
