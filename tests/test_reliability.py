"""Scale-out and reliability: DDP under torchrun, resume after a kill, graceful SIGTERM, bad input,
NaN loss, foreign checkpoints, atomic checkpoint writes."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from hybrid.data.dataset import CsvImageDataset, read_label_csv
from hybrid.data.labels import resolve_label_spec
from hybrid.data.loaders import sample_rows
from hybrid.engine import checkpoint as checkpoint_module
from hybrid.engine.checkpoint import CheckpointRecord
from hybrid.engine.interrupt import GracefulInterrupt
from hybrid.engine.loop import NonFiniteLossError, train_one_epoch
from hybrid.engine.resume import resumed_config
from hybrid.engine.runtime import Runtime, rng_state, set_rng_state
from hybrid.errors import CheckpointError, ConfigError, DataError
from tests.conftest import EXACT_OVERRIDES, ROOT, compose_config, run_script, tiny_overrides
from tests.test_data import EVAL

ENV = {**os.environ, "WANDB_SILENT": "true"}


def start_training(*overrides: str, cwd: Path = ROOT) -> subprocess.Popen:
    """``train.py`` in the background (for signals), output captured."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *overrides],
        cwd=cwd,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for(condition, proc: subprocess.Popen, timeout: float = 300) -> None:
    """Poll ``condition`` until it holds; fail if the process ends first."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"training ended early:\n{proc.stdout.read()[-3000:]}"
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.05)


def signal_when(proc: subprocess.Popen, condition, signum: int) -> str:
    """Send ``proc`` ``signum`` once ``condition`` holds; its whole output when it has ended."""
    try:
        wait_for(condition, proc)
        proc.send_signal(signum)
        return proc.communicate(timeout=120)[0]
    finally:
        proc.kill()


def logged(log: Path, text: str):
    """A condition: the log file ``log`` shows ``text``."""
    return lambda: log.is_file() and text in log.read_text()


def epochs_in(history: Path) -> list[int]:
    try:
        return pd.read_csv(history).epoch.tolist() if history.is_file() else []
    except (pd.errors.EmptyDataError, pd.errors.ParserError):  # caught mid-write
        return []


# --- distributed data parallel -------------------------------------------------------------


def test_torchrun_two_processes_one_run_dir_every_test_image_once(tiny_data, tmp_path):
    # half of the 26 test images: 13, which two processes cannot split evenly
    ratio = "data.sampling_ratio={test: 0.5}"
    expected = sample_rows(pd.read_csv(tiny_data / "SewerML_Test.csv", dtype={"Filename": str}), 0.5, 42, "test")
    assert len(expected) % 2 == 1
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(ROOT / "train.py"), *tiny_overrides(tiny_data), "trainer=ddp", ratio],
        cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    runs = list((tmp_path / "outputs" / "train" / "runs").iterdir())
    assert len(runs) == 1, runs  # rank 1 made no run dir of its own
    assert [p.name for p in tmp_path.iterdir()] == ["outputs"]
    run = runs[0]
    assert len(list(tmp_path.rglob("metrics.json"))) == 1
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test/num_samples"] == len(expected) == 13
    predictions = pd.read_csv(run / "predictions.csv", dtype={"Filename": str})
    assert sorted(predictions.Filename) == sorted(expected.Filename)  # each once, none padded in
    assert epochs_in(run / "history.csv") == [1, 2]
    assert pd.read_csv(run / "history.csv")["val/num_samples"].tolist() == [24, 24]
    assert CheckpointRecord.load(run / "checkpoints" / "best.pt").world_size == 2
    assert output.count("epoch 1/2  train/loss") == 1  # progress from rank 0 only
    assert "DDP over gloo: 2 processes" in (run / "train.log").read_text()


def test_strategy_and_backend_are_checked():
    from hybrid.engine.schema import check_trainer_config

    cfg = compose_config(overrides=["trainer=ddp"])
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.max_epochs == 10  # extends the default trainer
    cfg.trainer.strategy = "horovod"
    with pytest.raises(ConfigError, match=r"trainer.strategy='horovod'"):
        check_trainer_config(cfg.trainer, cfg.data)
    cfg = compose_config(overrides=["trainer.backend=mpi"])
    with pytest.raises(ConfigError, match=r"trainer.backend='mpi'"):
        check_trainer_config(cfg.trainer, cfg.data)


def test_non_zero_ranks_get_no_run_dir_of_their_own():
    from hybrid.data.samplers import ShardSampler
    from hybrid.engine.distributed import DistInfo, worker_hydra_overrides

    assert worker_hydra_overrides(DistInfo(0, 0, 2)) == []
    assert "hydra.output_subdir=null" in worker_hydra_overrides(DistInfo(1, 1, 2))
    shards = [list(ShardSampler(13, r, 2)) for r in range(2)]
    assert sorted(shards[0] + shards[1]) == list(range(13))


# --- resume -------------------------------------------------------------------------------


@pytest.mark.slow  # resume from an epoch end; the SIGINT test guards exact resume in the quick suite
def test_sigkill_after_first_epoch_then_resume(tiny_data, tmp_path, uninterrupted):
    run = tmp_path / "run"
    overrides = EXACT_OVERRIDES(tiny_data)
    proc = start_training(*overrides, f"hydra.run.dir={run}")
    try:
        wait_for(lambda: 1 in epochs_in(run / "history.csv"), proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        proc.kill()
        proc.stdout.close()
    done = CheckpointRecord.load(run / "checkpoints" / "last.pt").epoch
    assert done in (1, 2)  # killed after last.pt of epoch 1 (maybe 2), before the run ended
    resumed = run_script(
        "train.py", *overrides, f"ckpt_path={run}/checkpoints/last.pt", f"hydra.run.dir={tmp_path / 'r'}"
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    history = pd.read_csv(run / "history.csv")
    assert history.epoch.tolist() == [1, 2, 3]  # every epoch exactly once
    best = CheckpointRecord.load(run / "checkpoints" / "best.pt")
    assert best.best_value == pytest.approx(history["val/f1_macro"].max())
    assert best.epoch == best.best_epoch == int(history["val/f1_macro"].idxmax()) + 1
    same_figures(run, uninterrupted)


def test_checkpoint_holds_rng_states_that_load_with_weights_only(tmp_path):
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    CheckpointRecord(rng=[rng_state()]).save(tmp_path / "c.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(CheckpointRecord.load(tmp_path / "c.pt").rng[0])  # weights_only=True inside
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_tracker_run_id_is_passed_on_resume(tiny_data, tmp_path, monkeypatch):
    from hybrid.jobs import train as train_module
    from hybrid.tracking import Tracker

    seen = {}

    class FakeWandb(Tracker):
        run_id = "abc123"

    def fake_build(cfg, run_dir, job_type, tags=(), monitor=None, resume_id=None):
        seen.setdefault("resume_ids", []).append(resume_id)
        return FakeWandb()

    monkeypatch.setattr(train_module, "build_tracker", fake_build)
    base = [*tiny_overrides(tiny_data), f"paths.output_dir={tmp_path}", "trainer.max_epochs=1"]
    train_module.train(compose_config(overrides=base))
    assert CheckpointRecord.load(tmp_path / "checkpoints" / "last.pt").tracker_run_id == "abc123"
    last = tmp_path / "checkpoints" / "last.pt"
    train_module.train(compose_config(overrides=[*base, f"ckpt_path={last}"]))  # nothing left but the test
    assert seen["resume_ids"] == [None, "abc123"]


# --- graceful interruption ------------------------------------------------------------------


@pytest.mark.slow
def test_sigterm_mid_epoch_saves_last_and_prints_the_resume_command(tiny_data, tmp_path):
    run = tmp_path / "run"
    # one image per step: 48 steps per epoch, so the signal lands inside the first epoch
    overrides = [*tiny_overrides(tiny_data), "data.batch_size=1", "trainer.max_epochs=1"]
    proc = start_training(*overrides, f"hydra.run.dir={run}")
    output = signal_when(proc, logged(run / "train.log", "epoch 1/1: 48 steps"), signal.SIGTERM)
    assert proc.returncode == 143, output[-3000:]
    last = run / "checkpoints" / "last.pt"
    assert f"Resume with: python {ROOT / 'train.py'} ckpt_path={last.resolve()}" in output
    assert "trainer.max_epochs=1" in output.split("Resume with:")[1]  # the original overrides
    assert "Traceback" not in output
    record = CheckpointRecord.load(last)
    assert record.interrupted_epoch == 1 and record.epoch == 0 and 1 <= record.interrupted_step < 48
    assert record.epoch_progress[0]["steps"] == record.interrupted_step == record.epoch_progress[0]["images"]
    assert not (run / "checkpoints" / "best.pt").exists() and not (run / "metrics.json").exists()
    refused = run_script("train.py", f"ckpt_path={last}", "model.img_size=480")  # would change the run
    errors = [line for line in (refused.stdout + refused.stderr).splitlines() if "ERROR" in line]
    assert refused.returncode == 2 and len(errors) == 1 and "model.img_size=480 (saved: 64)" in errors[0]
    assert not list((run / ".hydra").glob("resumed_*"))  # the refused attempt left no config folder
    # the printed command, with the original overrides (their saved values), resumes
    resumed = run_script("train.py", *overrides, f"ckpt_path={last}", f"hydra.run.dir={tmp_path / 'r'}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "continuing from there" in resumed.stdout + resumed.stderr
    assert f"epoch 1/1: {48 - record.interrupted_step} steps" in resumed.stdout + resumed.stderr  # the rest only
    assert epochs_in(run / "history.csv") == [1]
    assert json.loads((run / "metrics.json").read_text())["test/num_samples"] == 26


@pytest.mark.slow
def test_sigterm_stops_a_two_stage_run_in_its_stage_and_the_printed_command_finishes_it(tiny_data, tmp_path):
    """The signal reaches the running stage's job once: it checkpoints, the two-stage run stops with
    143 and its resume command, and that command resumes the stage and finishes the recipe."""
    run = tmp_path / "two_stage"
    overrides = ["experiment=sewerml_two_stage", "data=synthetic", *tiny_overrides(tiny_data), "data.batch_size=1"]
    proc = start_training(*overrides, "trainer.max_epochs=1", f"hydra.run.dir={run}")
    output = signal_when(proc, logged(run / "binary" / "train.log", "epoch 1/1: 48 steps"), signal.SIGTERM)
    assert proc.returncode == 143, output[-3000:]
    assert CheckpointRecord.load(run / "binary" / "checkpoints" / "last.pt").interrupted_epoch == 1
    assert not (run / "defect").exists() and "Traceback" not in output
    # the stage's own job says how to resume it alone; the run's last line, the whole recipe
    command = output.rsplit("Resume with: ", 1)[1].splitlines()[0].split()
    assert command[:2] == ["python", str(ROOT / "train.py")] and f"hydra.run.dir={run}" in command
    resumed = run_script(*command[1:])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "continuing from there" in (run / "binary" / "train.log").read_text()
    assert (run / "defect" / "metrics.json").is_file() and "test/sewerml/F2" in (run / "metrics.json").read_text()


TIMING = ("train/images_per_s",)  # the only figures an interruption may change


def same_figures(a: Path, b: Path) -> None:
    """``history.csv`` and ``metrics.json`` of two runs are equal, timing aside."""
    history_a, history_b = (pd.read_csv(run / "history.csv").drop(columns=list(TIMING)) for run in (a, b))
    pd.testing.assert_frame_equal(history_a, history_b, check_exact=True)
    metrics_a, metrics_b = (json.loads((run / "metrics.json").read_text()) for run in (a, b))
    for key in TIMING:
        metrics_a.pop(key), metrics_b.pop(key)
    assert metrics_a == metrics_b


def test_sigint_mid_epoch_then_resume_equals_the_uninterrupted_run(tiny_data, tmp_path, uninterrupted):
    run = tmp_path / "run"
    proc = start_training(*EXACT_OVERRIDES(tiny_data), f"hydra.run.dir={run}")
    # in epoch 2, once epoch 1 is on record
    output = signal_when(proc, lambda: 1 in epochs_in(run / "history.csv"), signal.SIGINT)
    assert proc.returncode == 130, output[-3000:]
    record = CheckpointRecord.load(run / "checkpoints" / "last.pt")
    assert record.interrupted_step is not None and record.interrupted_step < 12  # part-way through an epoch
    # resumed as docs/getting-started.md's "Everyday use" shows: the checkpoint alone, none of the run's overrides
    resumed = run_script("train.py", f"ckpt_path={run}/checkpoints/last.pt", f"hydra.run.dir={tmp_path / 'r'}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    same_figures(run, uninterrupted)
    # one run, one place: the resumed process logged into the original run dir and made no other
    assert not (tmp_path / "r").exists() and [p.name for p in tmp_path.iterdir()] == ["run"]
    log = (run / "train.log").read_text()
    assert log.index("epoch 1/3  train/loss") < log.index("==== resumed in") < log.index("epoch 3/3  train/loss")
    assert len(list((run / ".hydra").glob("resumed_*/config.yaml"))) == 1 and (run / ".hydra" / "config.yaml").is_file()


def test_signal_handlers_are_restored():
    before = signal.getsignal(signal.SIGTERM)
    with GracefulInterrupt() as interrupt:
        assert signal.getsignal(signal.SIGTERM) != before
        os.kill(os.getpid(), signal.SIGTERM)  # caught: only recorded
        assert interrupt.requested() and interrupt.exit_code == 143 and interrupt.signal_name == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) == before


# --- bad input ------------------------------------------------------------------------------


def corrupt_copy(tiny_data: Path, dest: Path, kinds: tuple[str, ...]) -> dict[str, str]:
    """A copy of the tiny dataset with one training image broken per kind; returns kind -> name."""
    shutil.copytree(tiny_data, dest)
    names = pd.read_csv(dest / "SewerML_Train.csv", dtype={"Filename": str}).Filename.tolist()
    broken = {}
    for kind, name in zip(kinds, names, strict=False):
        path = next(dest.rglob(name))
        if kind == "truncated":
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 2])
        elif kind == "empty":
            path.write_bytes(b"")
        elif kind == "missing":
            path.unlink()
        elif kind == "not_an_image":
            path.write_text("Filename,Defect\nthis is a CSV, not a PNG\n")
        broken[kind] = name
    return broken


KINDS = ("truncated", "empty", "missing", "not_an_image")


@pytest.mark.slow
def test_bad_images_are_skipped_counted_and_named(tiny_data, tmp_path):
    broken = corrupt_copy(tiny_data, tmp_path / "data", KINDS)
    overrides = [o for o in tiny_overrides(tiny_data) if not o.startswith("data.root=")]
    result = run_script(
        "train.py",
        *overrides,
        f"data.root={tmp_path / 'data'}",
        "trainer.max_epochs=1",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["data/skipped_images"] == 4
    skipped_line = next(li for li in (tmp_path / "run" / "train.log").read_text().splitlines() if "skipped 4" in li)
    assert all(name in skipped_line for name in broken.values())
    listed = pd.read_csv(tmp_path / "run" / "skipped.csv", dtype={"Filename": str}).set_index("Filename").reason
    assert listed.to_dict() == {name: "missing" if kind == "missing" else "unreadable" for kind, name in broken.items()}

    # infer.py on a folder holding the three unreadable files names each of them, and takes one image too
    folder = next((tmp_path / "data").rglob(broken["truncated"])).parent
    ckpt = tmp_path / "run" / "checkpoints" / "best.pt"
    inferred = run_script("infer.py", f"ckpt_path={ckpt}", f"input={folder}", f"hydra.run.dir={tmp_path / 'infer'}")
    assert inferred.returncode == 0, inferred.stderr[-3000:]
    line = next(li for li in (tmp_path / "infer" / "infer.log").read_text().splitlines() if "skipped 3" in li)
    unreadable = [broken[kind] for kind in ("truncated", "empty", "not_an_image")]
    assert all(name in line for name in unreadable)
    written = pd.read_csv(tmp_path / "infer" / "predictions.csv", dtype={"Filename": str})
    assert not set(written.Filename) & set(unreadable) and len(written) > 0
    assert sorted(pd.read_csv(tmp_path / "infer" / "skipped.csv", dtype={"Filename": str}).Filename) == sorted(
        unreadable
    )
    good = next(p for p in sorted(folder.iterdir()) if p.name not in broken.values())
    one = run_script("infer.py", f"ckpt_path={ckpt}", f"input={good}", f"hydra.run.dir={tmp_path / 'one'}")
    assert one.returncode == 0, one.stderr[-3000:]
    assert pd.read_csv(tmp_path / "one" / "predictions.csv", dtype={"Filename": str}).Filename.tolist() == [good.name]


@pytest.mark.parametrize("kind", KINDS)
def test_each_bad_image_kind_stops_with_its_name_under_error(tiny_data, tmp_path, kind):
    broken = corrupt_copy(tiny_data, tmp_path / "data", (kind,))[kind]
    spec = resolve_label_spec("binary", None, None)
    csv = tmp_path / "data" / "SewerML_Train.csv"
    frame = read_label_csv(csv, spec.label_columns)
    from hybrid.data.dataset import index_images

    index_images.cache_clear()
    skip = CsvImageDataset(frame, csv, tmp_path / "data", spec, EVAL, on_bad_image="skip")
    got = skip.missing + [it["bad"] for it in map(skip.__getitem__, range(len(skip))) if "bad" in it]
    assert got == [broken]
    with pytest.raises(DataError, match=broken):
        strict = CsvImageDataset(frame, csv, tmp_path / "data", spec, EVAL, on_bad_image="error")
        for i in range(len(strict)):
            strict[i]


def test_bad_image_under_error_exits_2_with_one_line(tiny_data, tmp_path):
    broken = corrupt_copy(tiny_data, tmp_path / "data", ("truncated",))["truncated"]
    overrides = [o for o in tiny_overrides(tiny_data) if not o.startswith(("data.root=", "data.num_workers="))]
    result = run_script(
        "train.py", *overrides, f"data.root={tmp_path / 'data'}", "data.on_bad_image=error",
        "data.num_workers=1", f"hydra.run.dir={tmp_path / 'run'}",
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    errors = [li for li in output.splitlines() if broken in li]
    assert len(errors) == 1 and "cannot read image" in errors[0], output[-3000:]
    assert "Traceback" not in output  # the DataLoader worker's traceback is not shown


# --- NaN loss -----------------------------------------------------------------------------


class NanModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(1, 2)

    def forward(self, x):
        return self.linear(x.mean(dim=(1, 2, 3))[:, None]) * float("nan")


def test_nan_loss_stops_before_the_weights_change():
    model = NanModel()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    batch = {"image": torch.ones(2, 3, 4, 4), "target": torch.tensor([0, 1]), "skipped": []}
    runtime = Runtime("cpu", 32)
    with pytest.raises(NonFiniteLossError, match="training loss became nan at step 1"):
        train_one_epoch(model, [batch], optimizer, scheduler, torch.nn.CrossEntropyLoss(), runtime)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_nan_loss_in_epoch_2_keeps_epoch_1_checkpoint(tiny_data, tmp_path, monkeypatch, caplog):
    from hybrid.engine import trainer as trainer_module
    from hybrid.jobs.train import train

    real = trainer_module.train_one_epoch
    epochs = []

    def nan_in_second_epoch(model, loader, optimizer, scheduler, criterion, *args, **kwargs):
        epochs.append(1)
        if len(epochs) == 2:  # the real loop, with a loss that turns NaN
            return real(model, loader, optimizer, scheduler, lambda out, t: criterion(out, t) * float("nan"), *args)
        return real(model, loader, optimizer, scheduler, criterion, *args, **kwargs)

    monkeypatch.setattr(trainer_module, "train_one_epoch", nan_in_second_epoch)
    cfg = compose_config(overrides=[*tiny_overrides(tiny_data), f"paths.output_dir={tmp_path}", "trainer.max_epochs=3"])
    last = tmp_path / "checkpoints" / "last.pt"
    with pytest.raises(NonFiniteLossError, match=rf"epoch 2: training loss became nan .*last good checkpoint {last}"):
        train(cfg)
    assert CheckpointRecord.load(last).epoch == 1 and CheckpointRecord.load(tmp_path / "checkpoints" / "best.pt")
    assert epochs_in(tmp_path / "history.csv") == [1]


# --- foreign checkpoints ---------------------------------------------------------------------


@pytest.mark.slow
def test_plain_state_dict_is_refused_by_train(tiny_data, tmp_path):
    from hybrid.models import build_model

    model = build_model(compose_config(overrides=tiny_overrides(tiny_data)).model, 2)
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    result = run_script(
        "train.py", *tiny_overrides(tiny_data), f"ckpt_path={tmp_path / 'plain.pt'}", f"hydra.run.dir={tmp_path / 'r'}"
    )
    assert result.returncode == 2
    assert f"ckpt_path={tmp_path / 'plain.pt'}: not a hybrid checkpoint" in result.stdout + result.stderr


class Payload:
    """Unpickling this would run code; ``weights_only=True`` must refuse it."""

    def __reduce__(self):
        return (Path.touch, (Path(os.environ["HYBRID_TEST_MARKER"]),))


def test_checkpoint_code_is_never_executed(tmp_path, monkeypatch):
    marker = tmp_path / "executed"
    monkeypatch.setenv("HYBRID_TEST_MARKER", str(marker))
    torch.save({"format": "hybrid-checkpoint", "model": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        CheckpointRecord.load(tmp_path / "evil.pt")
    assert not marker.exists()


def test_weights_that_do_not_fit_say_which():
    model = torch.nn.Sequential(torch.nn.Linear(2, 3))
    wrong_shape = CheckpointRecord(model={"0.weight": torch.zeros(4, 2), "0.bias": torch.zeros(4)})
    with pytest.raises(CheckpointError, match=r"do not fit the configured model \(size mismatch for 0.weight"):
        wrong_shape.load_weights_into(model, "x.pt")
    with pytest.raises(CheckpointError, match=r"Missing key\(s\) in state_dict: \"0.bias\""):
        CheckpointRecord(model={"0.weight": torch.zeros(3, 2)}).load_weights_into(model, "x.pt")


# --- atomic writes --------------------------------------------------------------------------


def test_failed_save_leaves_the_old_checkpoints_intact(tmp_path, monkeypatch):
    ckpts = tmp_path / "checkpoints"
    for name in ("best.pt", "last.pt"):
        CheckpointRecord(epoch=1, model={"w": torch.ones(3)}).save(ckpts / name)

    def dies_half_way(obj, path):
        Path(path).write_bytes(b"PK\x03\x04 half a file")
        raise OSError("No space left on device")

    monkeypatch.setattr(checkpoint_module.torch, "save", dies_half_way)
    for name in ("best.pt", "last.pt"):
        with pytest.raises(OSError, match="No space left"):
            CheckpointRecord(epoch=2, model={"w": torch.zeros(3)}).save(ckpts / name)
    monkeypatch.undo()
    for name in ("best.pt", "last.pt"):
        record = CheckpointRecord.load(ckpts / name)
        assert record.epoch == 1 and torch.equal(record.model["w"], torch.ones(3))


# --- a resumed run is the run it resumes ------------------------------------------------------

TRAINED_WITH = ["model.img_size=96", "data.sampling_ratio=0.3", "trainer.max_epochs=3"]


def saved_config(overrides: list[str]) -> dict:
    """The resolved config a run trained with ``overrides`` saves in its checkpoints."""
    cfg = compose_config(overrides=[*overrides, "paths.output_dir=/runs/a"])
    return OmegaConf.to_container(cfg, resolve=True)


def test_a_bare_resume_continues_with_the_saved_config():
    saved = saved_config(TRAINED_WITH)
    cfg = compose_config(overrides=["ckpt_path=/runs/a/checkpoints/last.pt", "paths.output_dir=/runs/a"])
    resumed = resumed_config(cfg, saved, ["ckpt_path=/runs/a/checkpoints/last.pt"], "/runs/a/checkpoints/last.pt")
    assert resumed.model.img_size == 96 and resumed.data.img_size == 96 and resumed.data.sampling_ratio == 0.3
    assert resumed.ckpt_path == "/runs/a/checkpoints/last.pt"
    assert OmegaConf.to_container(resumed.model) == saved["model"]


def test_a_resume_override_that_changes_the_run_is_refused_naming_both_values():
    saved = saved_config(TRAINED_WITH)
    given = ["ckpt_path=/c.pt", "model.img_size=480"]
    with pytest.raises(ConfigError, match=r"model.img_size=480 \(saved: 96\)") as err:
        resumed_config(compose_config(overrides=given), saved, given, "/c.pt")
    assert "init_from=/c.pt" in str(err.value)
    # the same value as saved is no change; a group choice is compared key by key
    same = ["ckpt_path=/c.pt", "model.img_size=96", "data.sampling_ratio=0.3", "trainer.max_epochs=3"]
    assert resumed_config(compose_config(overrides=same), saved, same, "/c.pt").model.img_size == 96
    other = ["ckpt_path=/c.pt", "model=resnet18"]
    with pytest.raises(ConfigError, match=r"model.name='resnet18' \(saved: 'cats_hybrid'\)"):
        resumed_config(compose_config(overrides=other), saved, other, "/c.pt")


def test_what_may_change_on_resume_is_applied_and_logged(caplog):
    saved = saved_config(TRAINED_WITH)
    given = ["ckpt_path=/c.pt", "trainer.max_epochs=5", "logger=none", "data.num_workers=0", "data.root=/staged"]
    with caplog.at_level("INFO", logger="hybrid.engine.resume"):
        resumed = resumed_config(compose_config(overrides=given), saved, given, "/c.pt")
    assert resumed.trainer.max_epochs == 5 and resumed.data.num_workers == 0 and resumed.data.root == "/staged"
    assert resumed.logger.backend == "none" and resumed.model.img_size == 96
    assert "resume: trainer.max_epochs 3 -> 5" in caplog.text
