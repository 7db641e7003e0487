"""On the device: export to ONNX (fp32 / int8 / fp16), serve with ONNX Runtime and OpenVINO through
infer.py, and the efficiency benchmark; bad model files and sizes give one clear line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pandas as pd
import pytest
import torch
from PIL import Image

from hybrid.deploy.onnx_export import check_export_precision
from hybrid.deploy.onnx_module import OnnxClassifier
from hybrid.errors import CheckpointError, ConfigError, DataError
from hybrid.serve.model_card import ModelCard
from tests.conftest import FLOAT32, export, run_module, run_script, tiny_overrides


@pytest.fixture(scope="module")
def int8_export(trained):
    return export(
        trained / "checkpoints/best.pt", trained.parent / "export_int8", "precision=int8", "calibration.num_images=16"
    )


def test_fp32_export_matches_pytorch_and_carries_its_card(trained, fp32_export):
    path, report = fp32_export
    assert report["precision"] == "fp32" and report["verify/num_images"] == 24
    assert report["verify/max_abs_prob_delta"] <= 1e-4 and report["verify/decision_agreement"] == 1.0
    assert report["verify/metric_delta"] == 0.0
    assert report["verify/torch/computed_in"].endswith("(cpu, float32)")
    assert (
        report["verify/onnx/computed_in"].startswith("onnxruntime")
        and "fp32 model" in report["verify/onnx/computed_in"]
    )
    card = ModelCard.read(path)
    assert card.task == "binary" and card.class_names == ["Normal", "Defect"]
    assert (card.img_size, card.in_channels, card.threshold, card.threshold_tuned) == (64, 3, 0.5, False)
    assert card.mean == pytest.approx([0.523, 0.453, 0.345]) and card.config["model"]["patch_size"] == 16
    assert card.source_sha256 == report["source_sha256"] and len(card.source_sha256) == 64
    graph = onnx.load(str(path)).graph
    # the hybrid has attention maps: its decoder's mean attention over the patch grid is a second output
    assert [i.name for i in graph.input] == ["images"] and [o.name for o in graph.output] == ["logits", "attention"]
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param  # a named, dynamic batch axis


def test_int8_export_reports_its_delta_and_is_smaller(fp32_export, int8_export):
    path, report = int8_export
    assert report["precision"] == "int8" and report["calibration/num_images"] == 16
    assert report["calibration/method"] == "minmax"
    assert 0 < report["verify/max_abs_prob_delta"] < 0.2  # quantized: close, but not float32-exact
    assert "verify/metric_delta" in report and report["model_mb"] < fp32_export[1]["model_mb"]
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


@pytest.mark.slow
def test_fp16_export_keeps_float32_input_and_output(trained):
    path, report = export(trained / "checkpoints/best.pt", trained.parent / "export_fp16", "precision=fp16")
    assert report["precision"] == "fp16" and report["verify/max_abs_prob_delta"] < 1e-2
    model = onnx.load(str(path))
    float32 = onnx.TensorProto.FLOAT
    assert model.graph.input[0].type.tensor_type.elem_type == float32
    assert model.graph.output[0].type.tensor_type.elem_type == float32
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)


@pytest.mark.parametrize(
    "runtime", [pytest.param("onnxruntime", marks=pytest.mark.slow), "openvino"]
)  # hybrid serve tests use onnxruntime
def test_onnx_inference_reproduces_the_torch_test_metrics(trained, fp32_export, runtime):
    """A float32 file is computed in float32 by default on every runtime (OpenVINO, left to itself,
    computes it in bf16 on a CPU with bf16: its figures would move)."""
    out = trained.parent / f"infer_{runtime}"
    result = run_script("infer.py", f"ckpt_path={fp32_export[0]}", f"runtime={runtime}", f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    log = (out / "infer.log").read_text()
    assert f"with {runtime}" in log and ("inference precision f32" in log) == (runtime == "openvino"), log
    trained_metrics = json.loads((trained / "metrics.json").read_text())
    inferred = json.loads((out / "metrics.json").read_text())
    keys = [k for k in trained_metrics if k.startswith("test/")]
    assert {k: inferred[k] for k in keys} == pytest.approx({k: trained_metrics[k] for k in keys})
    assert inferred["infer/images_per_s"] > 0
    ours, theirs = pd.read_csv(out / "predictions.csv"), pd.read_csv(trained / "predictions.csv")
    assert ours.Filename.tolist() == theirs.Filename.tolist()
    assert np.abs(ours[["Normal", "Defect"]].to_numpy() - theirs[["Normal", "Defect"]].to_numpy()).max() < 1e-4


def test_int8_folder_inference_needs_no_checkpoint(trained, int8_export, tiny_data, tmp_path):
    """The exported file alone serves a folder: the checkpoints are moved away first."""
    model = tmp_path / "model.onnx"
    shutil.copy(int8_export[0], model)
    away = tmp_path / "moved"
    shutil.copytree(trained / "checkpoints", away)
    shutil.rmtree(trained / "checkpoints")
    try:
        result = run_script("infer.py", f"ckpt_path={model}", f"input={tiny_data}", f"hydra.run.dir={tmp_path / 'o'}")
    finally:
        shutil.copytree(away, trained / "checkpoints")
    assert result.returncode == 0, result.stderr[-3000:]
    predictions = pd.read_csv(tmp_path / "o" / "predictions.csv")
    assert len(predictions) == 48 + 24 + 26 and list(predictions.columns) == [
        "Filename",
        "Normal",
        "Defect",
        "prediction",
    ]


@pytest.mark.slow  # two-stage itself runs in the default suite (tests/test_benchmark.py)
def test_two_stage_with_an_onnx_binary_model(tiny_data, fp32_export, trained, tmp_path):
    """A multi-label checkpoint with the binary stage served from an .onnx gives what the binary
    .pt gives."""
    multilabel = tmp_path / "multilabel"
    result = run_script(
        "train.py", "experiment=sewerml_multilabel", "data=synthetic", *tiny_overrides(tiny_data), *FLOAT32,
        "trainer.max_epochs=1", f"hydra.run.dir={multilabel}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = {}
    for name, binary in (("onnx", fp32_export[0]), ("pt", trained / "checkpoints/best.pt")):
        out = tmp_path / name
        result = run_script(
            "infer.py", f"ckpt_path={multilabel}/checkpoints/best.pt", f"binary_ckpt_path={binary}",
            "precision=32", f"hydra.run.dir={out}",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        outputs[name] = pd.read_csv(out / "predictions.csv")
    assert outputs["onnx"].prediction.tolist() == outputs["pt"].prediction.tolist()
    scores = outputs["onnx"].columns[1:-1]
    assert np.abs(outputs["onnx"][scores].to_numpy() - outputs["pt"][scores].to_numpy()).max() < 1e-4


@pytest.mark.slow
def test_bad_model_files_and_sizes_give_one_line(trained, fp32_export, tmp_path):
    foreign = tmp_path / "foreign.onnx"
    model = onnx.load(str(fp32_export[0]))
    del model.metadata_props[:]
    onnx.save(model, str(foreign))
    result = run_script("infer.py", f"ckpt_path={foreign}", f"hydra.run.dir={tmp_path / 'a'}")
    output = result.stdout + result.stderr
    assert result.returncode == 2 and "an ONNX model without hybrid metadata" in output and "Traceback" not in output
    result = run_script(
        "infer.py", f"ckpt_path={fp32_export[0]}", "data.img_size=32", f"hydra.run.dir={tmp_path / 'b'}"
    )
    assert "takes 3-channel 64x64 images, but data.in_channels=3 and data.img_size=32" in result.stdout + result.stderr
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match="not a readable ONNX model"):
        ModelCard.read(garbage)


def test_served_model_refuses_images_of_another_size(fp32_export):
    from hybrid.serve.model import Model

    model = OnnxClassifier(Model(fp32_export[0]))
    assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 2)
    with pytest.raises(DataError, match=r"takes images of 3x64x64, got 3x48x48"):
        model(torch.zeros(2, 3, 48, 48))


@pytest.mark.slow
def test_export_never_replaces_a_model_and_refuses_a_bad_fp32_file(trained, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.onnx").write_text("a user's file")
    result = run_module("hybrid.jobs.export", f"ckpt_path={trained}/checkpoints/best.pt", f"output={out}")
    assert result.returncode == 2 and "already holds model.onnx" in result.stdout + result.stderr
    assert (out / "model.onnx").read_text() == "a user's file"
    strict = tmp_path / "strict"
    result = run_module(
        "hybrid.jobs.export", f"ckpt_path={trained}/checkpoints/best.pt", f"output={strict}", "verify.fp32_tolerance=0"
    )
    assert (
        result.returncode == 2 and "> verify.fp32_tolerance=0; no model.onnx written" in result.stdout + result.stderr
    )
    assert not (strict / "model.onnx").exists()
    with pytest.raises(ConfigError, match=r"precision='int4'; choose one of \['fp32', 'fp16', 'int8'\]"):
        check_export_precision("int4")


@pytest.mark.slow
def test_benchmark_measures_each_file_with_each_backend(trained, fp32_export, tmp_path):
    shutil.copy(trained / "metrics.json", fp32_export[0].parent / "metrics.json")  # infer's figures beside it
    jpegs = tmp_path / "given"  # the serving rows' end-to-end images (by default 64 rendered 640x480 JPEGs)
    jpegs.mkdir()
    for index in range(8):
        Image.fromarray(np.full((120, 160, 3), 20 * index, np.uint8)).save(jpegs / f"{index}.jpg")
    result = run_module(
        "hybrid.jobs.benchmark", f"models=[{trained}/checkpoints/best.pt,{fp32_export[0]}]",
        "backends=[torch_fp32,onnxruntime,openvino]", "timed_runs=5", "warmup=1", "batch_sizes=[4]",
        "throughput_runs=1", f"images={jpegs}", f"hydra.run.dir={tmp_path / 'run'}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    frame = pd.read_csv(tmp_path / "run" / "efficiency.csv")
    assert frame.backend.tolist() == ["torch fp32", "ONNX Runtime", "OpenVINO"]
    assert frame.model.tolist() == ["checkpoints/best.pt", "export_fp32/model.onnx", "export_fp32/model.onnx"]
    assert (frame.params == 171_346).all() and (frame.gflops > 0).all()
    assert (frame.latency_p50_ms <= frame.latency_p95_ms).all() and (frame.latency_p95_ms <= frame.latency_p99_ms).all()
    assert (frame.images_per_s_b4 > 0).all()
    torch_row, onnx_rows = frame.iloc[0], frame.iloc[1:]
    assert 0 < torch_row.serving_rss_mb < torch_row.peak_rss_mb  # the model's share, not the parent's memory
    # .onnx rows: the serving code in its own process (it refuses to report if torch was imported)
    assert (onnx_rows.cold_start_s > 0).all() and (onnx_rows.end_to_end_images_per_s_b4 > 0).all()
    assert (onnx_rows.peak_rss_b1_mb <= onnx_rows.peak_rss_mb).all() and (onnx_rows.peak_rss_mb < 600).all()
    assert (onnx_rows.install_mb > 0).all() and onnx_rows.serving_rss_mb.isna().all()
    assert not (tmp_path / "run" / "jpegs").exists()  # the given folder was used
    assert frame["test/f1_macro"].notna().all()
    assert (tmp_path / "run" / "efficiency.png").is_file()
    assert "| P50 ms |" in (tmp_path / "run" / "efficiency.md").read_text()


def test_a_checkpoint_trained_from_pretrained_weights_serves_without_them(trained, tmp_path):
    """The weights file named by ``model.pretrained`` at training time is not needed to serve
    (the checkpoint holds every weight); without it the model could not be built on a robot."""
    import dataclasses

    from hybrid.deploy.serving import load_served_model
    from hybrid.engine.checkpoint import CheckpointRecord

    record = CheckpointRecord.load(trained / "checkpoints/best.pt")
    config = json.loads(json.dumps(record.config))
    config["model"]["pretrained"] = config["model"]["encoder"]["pretrained"] = str(tmp_path / "gone.pth")
    moved = dataclasses.replace(record, config=config).save(tmp_path / "best.pt")
    served = load_served_model(moved)
    reference = load_served_model(trained / "checkpoints/best.pt")
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(served.model(images), reference.model(images))


def test_the_card_records_the_negative_class_and_version_1_cards_still_load():
    card = ModelCard(
        task="multiclass", class_names=["defect", "normal"], img_size=64, in_channels=3, mean=[0.5] * 3,
        std=[0.2] * 3, threshold=0.5, threshold_tuned=False, precision="fp32", config={}, source_checkpoint="b.pt",
        source_sha256="0" * 64, parameters=1, flops_per_image=1, opset=18, negative_class="normal",
    )  # fmt: skip
    entries = card.metadata()
    assert ModelCard.from_metadata(entries, "m.onnx").negative_class == "normal"
    older = {k: v for k, v in entries.items() if k != "hybrid.negative_class"} | {"hybrid.version": "1"}
    assert ModelCard.from_metadata(older, "m.onnx").negative_class is None
    newer = entries | {"hybrid.version": "3"}
    with pytest.raises(CheckpointError, match="version 3 is newer than this code reads"):
        ModelCard.from_metadata(newer, "m.onnx")


# Nothing of the training stack may load in the serving part (the robot has none of it).
TRAINING_STACK = ("torch", "torchvision", "hydra", "omegaconf", "pandas", "sklearn", "matplotlib", "wandb")
# hybrid survey's OCR (RapidOCR) reads its own settings with omegaconf: the serving install has it
# (Hydra, which it serves in training, stays out), and only a survey that reads a counter loads it.
SURVEY_STACK = tuple(module for module in TRAINING_STACK if module != "omegaconf")
SERVE_PROBE = """
import importlib.abc, json, sys

class TrainingStack(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked}:
            raise ImportError(f"the serving part imported {{name}}")

sys.meta_path.insert(0, TrainingStack())
import hybrid.serve, hybrid.serve.model_card, hybrid.serve.model_input, hybrid.serve.model, hybrid.serve.runtimes
from hybrid.serve import Model

model = Model(sys.argv[1])
print(json.dumps({{"classes": model.class_names, "probs": model.predict(sys.argv[2:], batch_size=5).tolist()}}))
"""


@pytest.mark.slow  # tests/test_serve.py guards the same through hybrid serve in the quick suite
def test_the_serving_part_predicts_what_pytorch_did_without_the_training_stack(tiny_data, trained, fp32_export):
    """hybrid.serve in a process that refuses to import torch & co: the fp32 .onnx gives the fp32
    checkpoint's test probabilities (its own predictions.csv) within 1e-4, and the same decisions."""
    expected = pd.read_csv(trained / "predictions.csv")
    paths = [str(next(tiny_data.rglob(name))) for name in expected.Filename]
    probe = SERVE_PROBE.format(blocked=set(TRAINING_STACK))
    result = subprocess.run(
        [sys.executable, "-c", probe, str(fp32_export[0]), *paths], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout)
    assert served["classes"] == ["Normal", "Defect"]
    probs = np.asarray(served["probs"])
    reference = expected[["Normal", "Defect"]].to_numpy()
    assert probs.shape == reference.shape and np.abs(probs - reference).max() <= 1e-4
    assert ((probs[:, 1] >= 0.5) == (reference[:, 1] >= 0.5)).all()


def test_every_way_to_serve_an_onnx_file_defaults_to_one_runtime():
    """infer.py (ServingOptions.runtime null), hybrid serve (--runtime) and the Python API (Model)
    take the one DEFAULT_RUNTIME, so they decide alike on the same file."""
    import inspect

    from hybrid.deploy.serving import ServingOptions
    from hybrid.jobs.serve import parser
    from hybrid.serve.model import Model
    from hybrid.serve.runtimes import DEFAULT_RUNTIME

    assert DEFAULT_RUNTIME == "onnxruntime"  # the serving install always has it
    assert parser().parse_args(["m.onnx", "in"]).runtime == DEFAULT_RUNTIME
    assert inspect.signature(Model).parameters["runtime"].default == DEFAULT_RUNTIME
    assert ServingOptions().runtime is None  # hybrid.deploy.serving.serve_onnx: None -> DEFAULT_RUNTIME
