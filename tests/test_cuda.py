"""The CUDA path, exercised on a real GPU (``make gpu-check``). Every test here is marked ``cuda``
and skips on a machine without one (see conftest.py), so CI on CPUs is unaffected."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from hybrid.data.loaders import DataModule
from hybrid.data.schema import data_settings
from hybrid.engine.checkpoint import CheckpointRecord
from hybrid.engine.loop import StepSettings, train_one_epoch
from hybrid.engine.losses import loss_function
from hybrid.engine.optim import build_optimizer, build_scheduler
from hybrid.engine.runtime import Runtime
from hybrid.models import build_model
from tests.conftest import ROOT, compose_config, run_script, tiny_overrides
from tests.test_decode import decoded_batches

pytestmark = pytest.mark.cuda

CUDA = ["trainer.device=cuda"]


@pytest.mark.parametrize("precision", ["bf16", "16"])
def test_training_steps_on_cuda(tiny_data, precision):
    cfg = compose_config(overrides=[*tiny_overrides(tiny_data), *CUDA, f"trainer.precision={precision}"])
    runtime = Runtime.from_config(cfg.trainer)
    data = DataModule(data_settings(cfg.data), 0, device=runtime.device, channels_last=runtime.channels_last)
    model = runtime.prepare(build_model(cfg.model, data.spec.num_labels))
    loader = data.loader("train")
    batch = next(iter(loader))
    assert batch["image"].is_cuda and batch["image"].is_contiguous(memory_format=torch.channels_last)
    assert batch["image"].dtype == torch.float32 and batch["target"].is_cuda
    optimizer = build_optimizer(model, cfg.trainer)
    scheduler = build_scheduler(optimizer, cfg.trainer, len(loader))
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "16")
    before = [p.detach().clone() for p in model.parameters()]
    result = train_one_epoch(
        model, loader, optimizer, scheduler, loss_function(data.spec, cfg.trainer).to(runtime.device), runtime,
        step=StepSettings(grad_clip=1.0, scaler=scaler),
    )  # fmt: skip
    assert np.isfinite(result.loss) and result.images == 48
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    if precision == "16":
        assert scaler.is_enabled() and scaler.get_scale() > 0 and scaler.state_dict()["scale"] > 0


def test_train_resume_and_infer_on_cuda_reproduce_the_test_metrics(tiny_data, tmp_path):
    run = tmp_path / "run"
    overrides = [*tiny_overrides(tiny_data), *CUDA, "trainer.precision=16"]
    first = run_script("train.py", *overrides, "trainer.max_epochs=1", f"hydra.run.dir={run}")
    assert first.returncode == 0, first.stderr[-3000:]
    resumed = run_script(
        "train.py", *overrides, f"ckpt_path={run}/checkpoints/last.pt", f"hydra.run.dir={tmp_path / 'r'}"
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert pd.read_csv(run / "history.csv").epoch.tolist() == [1, 2]
    last = CheckpointRecord.load(run / "checkpoints" / "last.pt")
    assert last.epoch == 2 and last.scaler is not None  # fp16's loss scale travels with the run
    trained = json.loads((run / "metrics.json").read_text())
    infer_dir = tmp_path / "infer"
    done = run_script("infer.py", f"ckpt_path={run}/checkpoints/best.pt", f"hydra.run.dir={infer_dir}")
    assert done.returncode == 0, done.stderr[-3000:]
    inferred = json.loads((infer_dir / "metrics.json").read_text())
    for key in ("test/accuracy", "test/f1_macro", "test/f1_normal", "test/auroc", "test/num_samples"):
        assert inferred[key] == pytest.approx(trained[key], abs=1e-6), key
    assert inferred["infer/peak_memory_mb"] > 0  # CUDA's allocator statistics


def test_syncbatchnorm_conversion_keeps_the_state_dict():
    cfg = compose_config(overrides=["model.img_size=64", "model.patch_size=16"])
    model = build_model(cfg.model, 2)
    keys = list(model.state_dict())
    synced = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in synced.modules())
    assert list(synced.state_dict()) == keys  # checkpoints load either way


def test_torchrun_one_process_trains_over_nccl_with_syncbatchnorm(tiny_data, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
         str(ROOT / "train.py"), *tiny_overrides(tiny_data), *CUDA, "trainer=ddp", "trainer.max_epochs=1",
         f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, env={**os.environ, "WANDB_SILENT": "true"}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    log = (tmp_path / "run" / "train.log").read_text()
    assert "DDP over nccl: 1 process" in log and "SyncBatchNorm" in log
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["test/num_samples"] == 26


def test_onnxruntime_cuda_provider_matches_torch(tmp_path):
    """hybrid.jobs.export's graph served by hybrid's ONNX Runtime session with device=cuda."""
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip(f"onnxruntime {ort.__version__} has no CUDA provider here ({ort.get_available_providers()})")
    from hybrid.deploy.onnx_export import export_float32
    from hybrid.serve.runtimes import OnnxRuntimeSession

    cfg = compose_config(overrides=["model.img_size=64", "model.patch_size=16"])
    model = build_model(cfg.model, 2).eval()
    images = torch.randn(4, 3, 64, 64)
    path = export_float32(model, 3, 64, tmp_path / "model.onnx")
    session = OnnxRuntimeSession(str(path), device="cuda")
    assert session.session.get_providers()[0] == "CUDAExecutionProvider"
    with torch.no_grad():
        np.testing.assert_allclose(session(images.numpy()), model(images).numpy(), atol=1e-3)


def test_gpu_decoding_is_close_to_the_cpu_path(tiny_jpegs):
    """nvJPEG is not libjpeg (IDCT, chroma upsampling): pixels may differ by a few levels at colour
    edges (make gpu-check records how many); a decoding fault (channels swapped, rows shifted,
    garbage) would differ by far more."""
    cpu, gpu = decoded_batches(tiny_jpegs, torch.device("cuda"))
    assert gpu.is_cuda
    difference = (cpu.float() - gpu.cpu().float()).abs()
    assert difference.mean().item() < 0.5 and difference.max().item() <= 32
