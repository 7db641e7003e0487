"""The Sewer-ML benchmark path end to end: multi-label training, official scoring, two-stage
inference, and the label-CSV schema checks."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from hybrid.data.dataset import read_label_csv
from hybrid.data.sewerml import DEFECT_CODES
from hybrid.errors import DataError
from tests.conftest import ROOT, run_script, tiny_overrides


def experiment(name: str, data_root, run_dir, *extra: str) -> subprocess.CompletedProcess:
    result = run_script(
        "train.py",
        f"experiment={name}",
        "data=synthetic",
        *tiny_overrides(data_root),
        f"hydra.run.dir={run_dir}",
        *extra,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def multilabel_run(tiny_data, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("multilabel")
    experiment("sewerml_multilabel", tiny_data, run_dir, "trainer.tune_threshold=true")
    return run_dir


def evaluate_cli(predictions, labels, output, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hybrid.jobs.evaluate", f"predictions={predictions}", f"labels={labels}",
         f"output={output}", f"hydra.run.dir={output.parent / 'evaluate'}", *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_multilabel_run_reports_the_benchmark_metrics(multilabel_run):
    metrics = json.loads((multilabel_run / "metrics.json").read_text())
    for key in ("val/f2_ciw_best", "test/f2_ciw", "test/f1_normal", "test/f1_defect", "test/f1_macro", "test/map"):
        assert key in metrics, key
    for code in DEFECT_CODES:
        for name in ("precision", "recall", "f1", "f2", "support"):
            assert f"test/{name}/{code}" in metrics
    # the tuned figures sit next to the 0.5 ones, never instead of them
    assert 0.05 <= metrics["test/tuned/threshold"] <= 0.95 and "test/tuned/f2_ciw" in metrics
    log = (multilabel_run / "train.log").read_text()
    assert "per class:" in log and all(f"\n{code} " in log for code in DEFECT_CODES)
    assert (multilabel_run / "per_class.png").stat().st_size > 0
    predictions = pd.read_csv(multilabel_run / "predictions.csv", dtype={"Filename": str}, keep_default_na=False)
    assert list(predictions.columns) == ["Filename", *DEFECT_CODES, "prediction"]
    assert predictions.Filename.is_monotonic_increasing


def test_official_scorer_reproduces_the_run(multilabel_run, tiny_data, tmp_path):
    out = tmp_path / "scores.json"
    result = evaluate_cli(multilabel_run / "predictions.csv", tiny_data / "SewerML_Test.csv", out)
    assert result.returncode == 0, result.stderr[-3000:]
    scored = json.loads(out.read_text())
    trained = json.loads((multilabel_run / "metrics.json").read_text())
    expected = {k.removeprefix("test/"): v for k, v in trained.items() if k.startswith("test/") and "/tuned/" not in k}
    assert {k: scored[k] for k in expected} == expected
    assert {"f2_ciw", "f1_normal", "f1_macro", "f2/RB", "f2/OK"} <= set(scored)


@pytest.mark.slow  # the scorer's agreement with the run stays in the default suite
def test_scorer_matches_rows_by_name_in_any_order(multilabel_run, tiny_data, tmp_path):
    shuffled = pd.read_csv(multilabel_run / "predictions.csv", dtype={"Filename": str}).sample(frac=1, random_state=0)
    shuffled.drop(columns="prediction").to_csv(tmp_path / "other_tool.csv", index=False)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert evaluate_cli(multilabel_run / "predictions.csv", tiny_data / "SewerML_Test.csv", a).returncode == 0
    assert evaluate_cli(tmp_path / "other_tool.csv", tiny_data / "SewerML_Test.csv", b).returncode == 0
    assert json.loads(a.read_text()) == json.loads(b.read_text())
    shuffled.iloc[1:].to_csv(tmp_path / "short.csv", index=False)
    result = evaluate_cli(tmp_path / "short.csv", tiny_data / "SewerML_Test.csv", tmp_path / "c.json")
    assert result.returncode == 2 and "no prediction for 1 labelled images" in result.stdout + result.stderr


@pytest.mark.slow
def test_binary_predictions_are_scored_from_the_defect_column(tiny_data, tmp_path):
    truth = pd.read_csv(tiny_data / "SewerML_Test.csv", dtype={"Filename": str})
    pd.DataFrame({"Filename": truth.Filename, "Defect": truth.Defect * 0.8 + 0.1}).to_csv(
        tmp_path / "p.csv", index=False
    )
    result = evaluate_cli(tmp_path / "p.csv", tiny_data / "SewerML_Test.csv", tmp_path / "s.json")
    assert result.returncode == 0, result.stderr[-2000:]
    scores = json.loads((tmp_path / "s.json").read_text())
    assert scores["f1_normal"] == scores["f1_defect"] == scores["accuracy"] == 1.0


def test_infer_applies_the_stored_threshold_and_reproduces(multilabel_run, tmp_path):
    result = run_script("infer.py", f"ckpt_path={multilabel_run}/checkpoints/best.pt", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    trained = json.loads((multilabel_run / "metrics.json").read_text())
    inferred = json.loads((tmp_path / "metrics.json").read_text())
    assert {k: inferred[k] for k in trained if k.startswith("test/")} == {
        k: v for k, v in trained.items() if k.startswith("test/")
    }
    assert pd.read_csv(tmp_path / "predictions.csv").equals(pd.read_csv(multilabel_run / "predictions.csv"))


@pytest.mark.slow  # the default run checks "replace" row by row in test_two_stage_experiment_end_to_end
def test_two_stage_inference_replaces_normal_scores(multilabel_run, tiny_data, tmp_path):
    binary_dir = tmp_path / "binary"
    experiment("sewerml_binary", tiny_data, binary_dir)
    out = tmp_path / "two_stage"
    result = run_script(
        "infer.py", f"ckpt_path={multilabel_run}/checkpoints/best.pt",
        f"binary_ckpt_path={binary_dir}/checkpoints/best.pt", f"hydra.run.dir={out}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    binary = pd.read_csv(binary_dir / "predictions.csv", dtype={"Filename": str}).set_index("Filename")
    combined = pd.read_csv(out / "predictions.csv", dtype={"Filename": str}, keep_default_na=False).set_index(
        "Filename"
    )
    alone = pd.read_csv(multilabel_run / "predictions.csv", dtype={"Filename": str}).set_index("Filename")
    normal = binary.Defect < 0.5
    codes = list(DEFECT_CODES)
    replaced = combined.loc[normal[normal].index, codes]
    assert np.allclose(replaced.to_numpy(), binary.Defect[normal].to_numpy()[:, None], atol=1e-6)
    # the prediction column applies the model's (tuned) threshold to the replaced scores
    threshold = json.loads((multilabel_run / "metrics.json").read_text())["test/tuned/threshold"]
    below = binary.Defect < min(0.5, threshold)
    assert (combined.loc[below[below].index, "prediction"] == "Normal").all()
    kept = normal[~normal].index
    assert np.allclose(combined.loc[kept, codes].to_numpy(), alone.loc[kept, codes].to_numpy(), atol=1e-6)
    wrong_order = run_script(
        "infer.py", f"ckpt_path={binary_dir}/checkpoints/best.pt",
        f"binary_ckpt_path={binary_dir}/checkpoints/best.pt", f"hydra.run.dir={tmp_path / 'x'}",
    )  # fmt: skip
    assert wrong_order.returncode == 2 and "needs a multilabel model" in wrong_order.stdout + wrong_order.stderr


def read_predictions(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"Filename": str}, keep_default_na=False).set_index("Filename")


@pytest.mark.slow
def test_two_stage_experiment_end_to_end(tiny_data, tmp_path):
    run = tmp_path / "two_stage"
    experiment("sewerml_two_stage", tiny_data, run)
    for stage in ("binary", "defect"):
        assert (run / stage / "checkpoints" / "best.pt").is_file() and (run / stage / "metrics.json").is_file()
    assert "rows: defective" in (run / "defect" / ".hydra" / "config.yaml").read_text()
    assert (run / ".hydra" / "combine" / "overrides.yaml").is_file()  # the combining hybrid infer job
    metrics = json.loads((run / "metrics.json").read_text())
    official = {k.removeprefix("test/"): v for k, v in metrics.items() if k.startswith("test/sewerml/")}
    assert {f"sewerml/{n}" for n in ("F2", "F1_Normal", "MF1", "mF1", "OP", "OR", "CP", "EMAcc", "mAP")} <= set(
        official
    )
    assert {f"sewerml/AP/{code}" for code in DEFECT_CODES} <= set(official)
    # replace: where the binary stage calls an image normal, its Defect score is every code's score
    binary = read_predictions(run / "binary" / "predictions.csv").Defect
    combined, alone = read_predictions(run / "predictions.csv"), read_predictions(run / "defect" / "predictions.csv")
    codes, normal = list(DEFECT_CODES), binary < 0.5
    assert np.allclose(combined.loc[normal, codes].to_numpy(), binary[normal].to_numpy()[:, None], atol=1e-6)
    assert np.allclose(combined.loc[~normal, codes].to_numpy(), alone.loc[~normal, codes].to_numpy(), atol=1e-6)
    # the official scorer gives the run's official numbers from its predictions.csv
    result = evaluate_cli(run / "predictions.csv", tiny_data / "SewerML_Test.csv", tmp_path / "scores.json")
    assert result.returncode == 0, result.stderr[-3000:]
    scored = json.loads((tmp_path / "scores.json").read_text())
    assert {k: scored[k] for k in official} == official
    # run again in the same dir: both stages are reused, only the combination changes (multiply)
    experiment("sewerml_two_stage", tiny_data, run, "two_stage.strategy=multiply")
    assert (run / "train.log").read_text().count("stage already trained") == 2
    multiplied = read_predictions(run / "predictions.csv")
    expected = alone[codes].to_numpy() * binary.loc[alone.index].to_numpy()[:, None]
    assert np.allclose(multiplied.loc[alone.index, codes].to_numpy(), expected, atol=1e-6)


@pytest.mark.slow
def test_test_csv_without_labels_gives_predictions_only(multilabel_run, tiny_data, tmp_path):
    names = pd.read_csv(tiny_data / "SewerML_Test.csv", dtype={"Filename": str})[["Filename"]]
    names.to_csv(tiny_data / "unlabelled_test.csv", index=False)
    result = run_script(
        "infer.py",
        f"ckpt_path={multilabel_run}/checkpoints/best.pt",
        "data.test_csv=unlabelled_test.csv",
        f"hydra.run.dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(pd.read_csv(tmp_path / "predictions.csv")) == len(names)
    assert not any(k.startswith("test/") for k in json.loads((tmp_path / "metrics.json").read_text()))


@pytest.mark.parametrize(
    "names, message",
    [
        (["a.png", "b.png", "a.png"], "row 4 repeats Filename a.png"),
        (["a.png", "", "b.png"], "row 3 has an empty Filename"),
        (["a.png", "../../etc/b.png"], "row 3 Filename ../../etc/b.png points outside data.root"),
        (["/abs/c.png"], "row 2 Filename /abs/c.png points outside data.root"),
    ],
)
def test_file_name_schema_errors(tmp_path, names, message):
    pd.DataFrame({"Filename": names, "Defect": 0}).to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(DataError) as err:
        read_label_csv(tmp_path / "labels.csv", ["Defect"])
    assert str(err.value) == f"{tmp_path / 'labels.csv'}: {message}"


def test_multilabel_csv_missing_a_code_column(tmp_path):
    pd.DataFrame({"Filename": ["a.png"], "RB": [1]}).to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(DataError, match=r"missing column\(s\) \['OB', 'PF'"):
        read_label_csv(tmp_path / "labels.csv", list(DEFECT_CODES))
