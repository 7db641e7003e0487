"""``hybrid prepare`` on every core and across nodes: the pooled and the sharded forms write the
entries one process writes, byte for byte; the part finishing last (or ``prepare.finalize=true``)
makes the cache usable; an interrupted pooled run continues without redoing finished entries."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from hybrid.errors import ConfigError
from hybrid.jobs.prepare import prepare
from tests.conftest import ROOT, compose_config, run_command, tiny_overrides

IMAGES = 48 + 24 + 26  # the tiny synthetic dataset


def data_overrides(data_root) -> list[str]:
    """The tiny run's ``data.*`` / ``model.*`` overrides (prepare.yaml has no trainer or logger)."""
    return [o for o in tiny_overrides(data_root) if o.startswith(("data.", "model."))]


def prepare_with(data_root, cache, *extra) -> dict:
    overrides = [*data_overrides(data_root), f"data.cache_dir={cache}", "progress_bar=false", *extra]
    return prepare(compose_config("prepare", overrides))


def entries(cache) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(cache.glob("*.npy"))}


def test_a_pooled_run_writes_the_entries_of_one_process(tiny_data, tmp_path):
    done = {"written": IMAGES, "kept": 0, "unreadable": 0}
    assert prepare_with(tiny_data, tmp_path / "one", "prepare.num_workers=1") == done
    assert prepare_with(tiny_data, tmp_path / "pool", "prepare.num_workers=2") == done
    assert len(entries(tmp_path / "one")) == IMAGES and entries(tmp_path / "pool") == entries(tmp_path / "one")
    assert (tmp_path / "pool" / "manifest.json").read_text() == (tmp_path / "one" / "manifest.json").read_text()


@pytest.mark.slow
def test_pooled_and_sharded_runs_write_the_entries_of_one_process(tiny_data, tmp_path):
    done = {"written": IMAGES, "kept": 0, "unreadable": 0}
    assert prepare_with(tiny_data, tmp_path / "one", "prepare.num_workers=1") == done
    assert prepare_with(tiny_data, tmp_path / "pool", "prepare.num_workers=2") == done
    # three parts as the tasks of a SLURM array would run them, here by Hydra's basic launcher
    shards = run_command(
        ["-m", "hybrid.jobs.prepare", "-m", "prepare.shard=range(0,3)", "prepare.num_shards=3", "prepare.num_workers=2",
         *data_overrides(tiny_data), f"data.cache_dir={tmp_path / 'shards'}", "progress_bar=false",
         f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    )  # fmt: skip
    assert shards.returncode == 0, shards.stderr[-3000:]
    one = entries(tmp_path / "one")
    assert len(one) == IMAGES
    assert entries(tmp_path / "pool") == one and entries(tmp_path / "shards") == one
    manifests = [(tmp_path / name / "manifest.json").read_text() for name in ("one", "pool", "shards")]
    assert manifests[0] == manifests[1] == manifests[2]  # counts and source bytes summed over the parts
    assert sorted(p.name for p in (tmp_path / "shards" / "parts").iterdir()) == [f"{i}-of-3.json" for i in range(3)]


def test_the_part_finishing_last_or_finalize_writes_the_manifest(tiny_data, tmp_path):
    cache = tmp_path / "cache"
    counts = [prepare_with(tiny_data, cache, f"prepare.shard={i}", "prepare.num_shards=3")["written"] for i in (0, 2)]
    assert not (cache / "manifest.json").exists()  # a cache with a part missing is not used
    with pytest.raises(ConfigError, match=r"prepare.finalize: parts \[1\] of 3 are not done"):
        prepare_with(tiny_data, cache, "prepare.finalize=true", "prepare.num_shards=3")
    counts.append(prepare_with(tiny_data, cache, "prepare.shard=1", "prepare.num_shards=3")["written"])
    assert sum(counts) == IMAGES and (cache / "manifest.json").is_file()
    first = (cache / "manifest.json").read_text()
    assert prepare_with(tiny_data, cache, "prepare.finalize=true", "prepare.num_shards=3")["kept"] == IMAGES
    assert (cache / "manifest.json").read_text() == first
    with pytest.raises(ConfigError, match=r"prepare.shard=3: 0 to 2"):
        prepare_with(tiny_data, cache, "prepare.shard=3", "prepare.num_shards=3")
    with pytest.raises(ConfigError, match=r"prepare.num_workers=0: auto or a count"):
        prepare_with(tiny_data, cache, "prepare.num_workers=0")


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="a named pipe stands for a source still being copied")
def test_an_interrupted_pooled_run_continues_without_redoing_finished_entries(tiny_data, tmp_path):
    data, cache = tmp_path / "data", tmp_path / "cache"
    shutil.copytree(tiny_data, data)
    late = data / "zzzzzzzz.png"  # sorted last; reading a named pipe waits until someone writes it
    os.mkfifo(late)
    command = [sys.executable, "-m", "hybrid.jobs.prepare", *data_overrides(data), f"data.cache_dir={cache}",
               "prepare.num_workers=2", "progress_bar=false", f"hydra.run.dir={tmp_path / 'run'}"]  # fmt: skip
    job = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as in a terminal, even under a CI job
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while len(list(cache.glob("*.npy"))) < IMAGES and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.2)
    job.send_signal(signal.SIGINT)  # Ctrl-C while a worker waits on the last source
    output, _ = job.communicate(timeout=120)
    assert job.returncode == 130 and "prepare interrupted" in output, output[-3000:]
    finished = {path.name: path.stat().st_mtime_ns for path in cache.glob("*.npy")}
    assert len(finished) == IMAGES and not (cache / "manifest.json").exists()
    late.unlink()
    shutil.copy(next(data.rglob("00000001.png")), late)  # the source arrives
    assert prepare_with(data, cache, "prepare.num_workers=2") == {"written": 1, "kept": IMAGES, "unreadable": 0}
    assert {
        name: t for name, t in ((p.name, p.stat().st_mtime_ns) for p in cache.glob("*.npy")) if name in finished
    } == finished
    assert (cache / "manifest.json").is_file()
