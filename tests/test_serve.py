"""The serving part on its own: ``hybrid serve`` predicts as ``infer.py`` does, writes the same
files, and refuses bad input in one line, in a process that cannot import the training stack."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from hybrid.predictions import write_predictions, write_skipped
from tests.conftest import ROOT
from tests.test_deploy import TRAINING_STACK

# hybrid's console script, in a process where importing the training stack fails.
SERVE = f"""
import importlib.abc, sys

class TrainingStack(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {set(TRAINING_STACK)}:
            raise ImportError(f"hybrid serve imported {{name}}")

sys.meta_path.insert(0, TrainingStack())
from hybrid.commands import main
sys.exit(main(sys.argv[1:]))
"""


def hybrid(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", SERVE, *arguments], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_prediction_files_are_written_as_pandas_wrote_them(tmp_path):
    names, classes = ["b/2.png", "a/1.png", "c.png"], ["Normal", "Defect"]
    probs = np.array([[0.25, 0.75], [0.1, 0.9], [1 / 3, 2 / 3]], np.float32)
    predicted = ["Defect", "Defect", "Defect"]
    write_predictions(tmp_path / "new.csv", names, probs, classes, predicted)
    frame = pd.DataFrame(probs, columns=classes)
    frame.insert(0, "Filename", names)
    frame["prediction"] = predicted
    frame.sort_values("Filename", kind="stable").to_csv(tmp_path / "old.csv", index=False, float_format="%.9g")
    assert (tmp_path / "new.csv").read_bytes() == (tmp_path / "old.csv").read_bytes()
    write_skipped(tmp_path / "skipped.csv", {"z.png": "missing", "a, b.png": "unreadable"})
    old = pd.DataFrame(sorted({"z.png": "missing", "a, b.png": "unreadable"}.items()), columns=["Filename", "reason"])
    assert (tmp_path / "skipped.csv").read_text() == old.to_csv(index=False)


def test_hybrid_serve_predicts_a_folder_as_infer_does(tiny_data, trained, fp32_export, tmp_path):
    """The fp32 .onnx through hybrid serve on the test images: the fp32 checkpoint's probabilities
    (its predictions.csv) within 1e-4 and its decisions; an unreadable image is skipped and named."""
    expected = pd.read_csv(trained / "predictions.csv").set_index("Filename")
    folder = tmp_path / "frames"
    (folder / "deeper").mkdir(parents=True)
    for i, name in enumerate(expected.index):
        shutil.copy(next(tiny_data.rglob(name)), (folder / "deeper" if i % 2 else folder) / name)
    (folder / "broken.png").write_bytes(b"not an image")
    result = hybrid("serve", str(fp32_export[0]), str(folder), "--out", str(tmp_path / "out"), "--batch", "5")
    assert result.returncode == 0, result.stderr[-3000:]
    served = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert served.Filename.tolist() == sorted(served.Filename) and "deeper/" in "".join(served.Filename)
    served.index = served.Filename.str.split("/").str[-1]
    served = served.loc[expected.index]
    assert np.abs(served[["Normal", "Defect"]].to_numpy() - expected[["Normal", "Defect"]].to_numpy()).max() <= 1e-4
    assert (served.prediction == expected.prediction).all()
    skipped = pd.read_csv(tmp_path / "out" / "skipped.csv")
    assert skipped.to_dict("records") == [{"Filename": "broken.png", "reason": "unreadable"}]
    assert "broken.png: not a readable image" in result.stderr


def test_hybrid_serve_refuses_bad_input_in_one_line(trained, fp32_export, tmp_path):
    import onnx

    foreign = tmp_path / "foreign.onnx"  # a working model without the card
    model = onnx.load(str(fp32_export[0]))
    del model.metadata_props[:]
    onnx.save(model, str(foreign))
    cases = {
        "export it first (in the training install): python -m hybrid.export": (trained / "checkpoints" / "best.pt"),
        "an ONNX model without hybrid metadata": foreign,
        "not a readable ONNX model": trained / "train.log",
    }
    for message, model in cases.items():
        result = hybrid("serve", str(model), str(trained), "--out", str(tmp_path / "out"))
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
    missing = hybrid("serve", str(foreign), str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "nowhere: no such file or folder" in missing.stderr
    assert not (tmp_path / "out").exists()
    listed = hybrid("--help")
    assert listed.returncode == 0 and "serve" in listed.stdout


@pytest.mark.slow
def test_the_serving_install_has_no_training_stack():
    """make serve-venv as the README gives it (it installs from the package registry): no torch
    there, every serving module imports, and its hybrid serve --help works."""
    made = subprocess.run(["make", "serve-venv"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
    python = ROOT / ".venv-serve" / "bin" / "python"
    for module in TRAINING_STACK:
        probe = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True, text=True)
        assert probe.returncode != 0, f"{module} is installed in .venv-serve"
    modules = "hybrid.serve, hybrid.serve.card, hybrid.serve.images, hybrid.serve.model, hybrid.serve.runtimes, hybrid.serve.command, hybrid.commands"
    imported = subprocess.run([str(python), "-c", f"import {modules}"], capture_output=True, text=True)
    assert imported.returncode == 0, imported.stderr
    helped = subprocess.run(
        [str(ROOT / ".venv-serve" / "bin" / "hybrid"), "serve", "--help"], capture_output=True, text=True
    )
    assert helped.returncode == 0 and "--threshold" in helped.stdout
