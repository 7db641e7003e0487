"""Sewer-ML metrics pinned on hand-computed cases, and agreement with scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, fbeta_score

from hybrid.data.labels import resolve_label_spec
from hybrid.data.sewerml import CIW_WEIGHTS, DEFECT_CODES
from hybrid.engine.evaluation import replace_normal_scores, two_stage_strategy
from hybrid.errors import ConfigError
from hybrid.metrics import f2_ciw, multilabel_metrics, single_label_metrics, tune_threshold

CODES = list(DEFECT_CODES)


def labels(rows: list[set[str]]) -> np.ndarray:
    return np.array([[float(c in row) for c in CODES] for row in rows])


def scores(rows: list[dict[str, float]]) -> np.ndarray:
    return np.array([[row.get(c, 0.1) for c in CODES] for row in rows])


def test_hand_computed_case():
    # 5 images. RB: 2 true, predicted on 1 of them plus 1 false alarm -> P 1/2, R 1/2, F2 1/2.
    # FS: 1 true, never predicted -> F2 0. OB: never true, predicted once -> F2 0.
    # Every other code: no positives, no predictions -> F2 0 (undefined counts as 0).
    truth = labels([{"RB"}, {"RB", "FS"}, set(), set(), set()])
    probs = scores([{"RB": 0.9}, {"RB": 0.2}, {"RB": 0.7}, {"OB": 0.5}, {}])
    m = multilabel_metrics(probs, truth, CODES)
    assert m["f2/RB"] == pytest.approx(0.5) and m["precision/RB"] == 0.5 and m["recall/RB"] == 0.5
    assert m["f2/FS"] == 0.0 and m["recall/FS"] == 0.0 and m["f2/OB"] == 0.0 and m["f2/OK"] == 0.0
    assert m["f2_ciw"] == pytest.approx(0.5 * CIW_WEIGHTS["RB"] / sum(CIW_WEIGHTS.values()))
    # Normal: truly normal images 3,4,5; predicted normal (nothing reaches 0.5): 2 and 5.
    # TP = {5}, FP = {2}, FN = {3, 4} -> P 1/2, R 1/3, F1 = 2PR/(P+R) = 0.4
    assert m["f1_normal"] == pytest.approx(0.4)
    # Defect (any code): truly defective 1,2; predicted defective 1,3,4 -> P 1/3, R 1/2, F1 0.4
    assert m["f1_defect"] == pytest.approx(0.4)
    assert m["support/RB"] == 2 and m["num_samples"] == 5


def test_threshold_is_inclusive_and_configurable():
    truth = labels([{"PB"}, set()])
    probs = scores([{"PB": 0.5}, {"PB": 0.3}])
    assert multilabel_metrics(probs, truth, CODES)["f2/PB"] == 1.0  # 0.5 reaches 0.5
    lowered = multilabel_metrics(probs, truth, CODES, threshold=0.25)
    assert lowered["precision/PB"] == 0.5 and lowered["f1_normal"] == 0.0


def test_all_normal_images():
    truth = labels([set()] * 4)
    m = multilabel_metrics(scores([{}] * 4), truth, CODES)
    assert m["f1_normal"] == 1.0 and m["f2_ciw"] == 0.0 and m["accuracy"] == 1.0
    assert "map" not in m and "auroc" not in m  # no positives anywhere: undefined, left out
    m = multilabel_metrics(scores([{"DE": 0.8}] * 4), truth, CODES)
    assert m["f1_normal"] == 0.0 and m["f1_defect"] == 0.0


def test_f2_ciw_weights_are_the_official_ones():
    assert f2_ciw(dict.fromkeys(CODES, 1.0)) == pytest.approx(1.0)
    only_os = {c: float(c == "OS") for c in CODES}
    assert f2_ciw(only_os) == pytest.approx(5.0 / 37.1975)  # the official script's weights
    # ... which the paper's table lists divided by RB's and rounded to 4 decimals
    assert CIW_WEIGHTS["OB"] / CIW_WEIGHTS["RB"] == pytest.approx(0.5518, abs=5e-5)
    assert sum(w / CIW_WEIGHTS["RB"] for w in CIW_WEIGHTS.values()) == pytest.approx(6.7024, abs=5e-4)


def test_per_class_f_beta_agrees_with_sklearn():
    rng = np.random.default_rng(1)
    truth = (rng.random((300, 17)) < 0.15).astype(float)
    probs = np.clip(truth * 0.4 + rng.random((300, 17)) * 0.7, 0, 1)
    m = multilabel_metrics(probs, truth, CODES)
    f2 = fbeta_score(truth, probs >= 0.5, beta=2, average=None, zero_division=0)
    f1 = fbeta_score(truth, probs >= 0.5, beta=1, average=None, zero_division=0)
    for i, code in enumerate(CODES):
        assert m[f"f2/{code}"] == pytest.approx(f2[i]) and m[f"f1/{code}"] == pytest.approx(f1[i])
    assert m["f2_ciw"] == pytest.approx(sum(f2[i] * CIW_WEIGHTS[c] for i, c in enumerate(CODES)) / 37.1975)
    assert 0 < m["map"] <= 1 and 0.5 < m["auroc"] <= 1


def test_binary_threshold_on_defect_score():
    probs = np.array([[0.6, 0.4], [0.3, 0.7], [0.55, 0.45]])
    targets = np.array([1, 1, 0])
    spec = resolve_label_spec("binary", None, None)
    assert single_label_metrics(probs, targets, spec)["accuracy"] == pytest.approx(2 / 3)
    assert single_label_metrics(probs, targets, spec, threshold=0.4)["f1_defect"] == pytest.approx(0.8)


def test_tuned_threshold_improves_or_keeps_the_metric():
    rng = np.random.default_rng(2)
    truth = (rng.random((200, 17)) < 0.2).astype(float)
    probs = np.clip(truth * 0.3 + rng.random((200, 17)) * 0.5, 0, 1)  # positives mostly below 0.5
    spec = resolve_label_spec("multilabel", CODES, None)
    threshold = tune_threshold(probs, truth, spec, "f2_ciw")
    assert threshold < 0.5
    tuned = multilabel_metrics(probs, truth, CODES, threshold)["f2_ciw"]
    assert tuned > multilabel_metrics(probs, truth, CODES)["f2_ciw"]


def test_two_stage_replace_changes_f1_normal():
    truth = labels([set(), set(), {"RB"}, {"FS"}])
    multilabel = scores([{"RB": 0.7}, {}, {"RB": 0.9}, {"FS": 0.8}])  # false alarm on image 1
    defect = np.array([0.2, 0.1, 0.9, 0.3])  # binary model: 1, 2 normal (right), 4 normal (wrong)
    combined = replace_normal_scores(multilabel, defect)
    assert (
        np.allclose(combined[0], 0.2) and np.allclose(combined[3], 0.3) and np.array_equal(combined[2], multilabel[2])
    )
    before = multilabel_metrics(multilabel, truth, CODES)
    after = multilabel_metrics(combined, truth, CODES)
    # before: predicted normal {2}, truly normal {1, 2} -> F1 2/3; after: predicted normal {1, 2, 4} -> F1 0.8
    assert before["f1_normal"] == pytest.approx(2 / 3) and after["f1_normal"] == pytest.approx(0.8)
    assert after["f2/FS"] == 0.0 < before["f2/FS"]


def official(probs: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> dict:
    """The ``sewerml/`` figures of a case, names without the prefix."""
    metrics = multilabel_metrics(probs, truth, CODES, threshold)
    return {k.removeprefix("sewerml/"): v for k, v in metrics.items() if k.startswith("sewerml/")}


def test_official_numbers_by_hand():
    # Image 2's RB score sits exactly at the threshold (a prediction); FS is never predicted; OB
    # and 14 other codes have no positives; image 3 is normal but predicted OB; image 4 is normal.
    truth = labels([{"RB"}, {"RB", "FS"}, set(), set()])
    probs = scores([{"RB": 0.9}, {"RB": 0.5, "FS": 0.3}, {"OB": 0.7, "FS": 0.4}, {}])
    m = official(probs, truth)
    # 18 classes (17 codes + Normal). Correct / predicted / true: RB 2/2/2; FS 0/0->1/1; OB 0/1/0;
    # 14 others 0/0->1/0; Normal (predicted: image 4; true: 3, 4) 1/1/2.
    assert m["OP"] == pytest.approx(3 / 19) and m["OR"] == pytest.approx(3 / 5)
    assert m["OF1"] == pytest.approx(0.25) and m["mF1"] == pytest.approx(6 / 24)
    assert m["CP"] == pytest.approx(2 / 18)  # RB 1 and Normal 1, the rest 0
    assert "CR" not in m and "CF1" not in m  # recall 0/0 for codes without positives: NaN officially
    assert m["MF1"] == pytest.approx((1 + 2 / 3) / 18)  # F1: RB 1, Normal 2/3, every other class 0
    assert m["F1_Normal"] == pytest.approx(2 / 3)
    assert m["F2"] == pytest.approx(5.55 / 37.1975)  # only RB scores, F2 1
    assert m["EMAcc"] == 0.5  # images 1 and 4 have every code right
    # AP: RB's two positives rank first (1); FS's positive ranks second behind image 3 (1/2); others 0
    assert m["AP/RB"] == 1.0 and m["AP/FS"] == 0.5 and m["AP/OB"] == 0.0 and m["AP/OK"] == 0.0
    assert m["mAP"] == pytest.approx(1.5 / 17)
    # hybrid's own names, beside them: 17 codes, and a code without positives leaves the mean
    mine = multilabel_metrics(probs, truth, CODES)
    assert mine["f1_macro"] == pytest.approx(1 / 17) and mine["map"] == pytest.approx(0.75)


def test_official_numbers_on_all_normal_images():
    m = official(scores([{}] * 3), labels([set()] * 3))
    # Normal 3/3/3; every code 0/0->1/0
    assert m["OP"] == pytest.approx(3 / 20) and m["OR"] == 1.0 and m["OF1"] == pytest.approx(0.3 / 1.15)
    assert m["MF1"] == pytest.approx(1 / 18) and m["CP"] == pytest.approx(1 / 18) and m["F1_Normal"] == 1.0
    assert m["F2"] == 0.0 and m["EMAcc"] == 1.0 and m["mAP"] == 0.0  # officially a code without positives is AP 0
    assert "CR" not in m and "CF1" not in m


def test_official_numbers_when_nothing_is_right():
    m = official(scores([{"OB": 0.8}, {"OB": 0.6}]), labels([{"RB"}, {"FS"}]))
    assert m["OP"] == 0.0 and m["OR"] == 0.0 and "OF1" not in m  # 0 / 0
    assert m["mF1"] == 0.0 and m["MF1"] == 0.0 and m["EMAcc"] == 0.0


def test_official_threshold_is_inclusive_and_configurable():
    truth = labels([{"PB"}, set()])
    probs = scores([{"PB": 0.5}, {"PB": 0.3}])
    assert official(probs, truth)["EMAcc"] == 1.0
    lowered = official(probs, truth, threshold=0.25)
    assert lowered["EMAcc"] == 0.5 and lowered["F1_Normal"] == 0.0


def test_official_ap_is_sklearns_without_ties():
    rng = np.random.default_rng(3)
    truth = (rng.random((200, 17)) < 0.2).astype(float)
    probs = rng.random((200, 17))  # continuous: no ties, where the two AP definitions agree
    m = official(probs, truth)
    for k, code in enumerate(CODES):
        assert m[f"AP/{code}"] == pytest.approx(average_precision_score(truth[:, k], probs[:, k]))
    assert m["F2"] == pytest.approx(multilabel_metrics(probs, truth, CODES)["f2_ciw"], abs=1e-15)
    assert m["F1_Normal"] == pytest.approx(multilabel_metrics(probs, truth, CODES)["f1_normal"], abs=1e-15)


def test_official_numbers_need_the_17_codes():
    truth = labels([{"RB"}, set()])[:, :5]
    assert not any(k.startswith("sewerml/") for k in multilabel_metrics(scores([{}, {}])[:, :5], truth, CODES[:5]))


def test_two_stage_multiply_scales_every_code_by_the_defect_score():
    multilabel = scores([{"RB": 0.8}, {"FS": 0.9}])
    combined = two_stage_strategy("multiply")(multilabel, np.array([0.5, 0.9]))
    assert combined[0, CODES.index("RB")] == pytest.approx(0.4) and combined[1, CODES.index("FS")] == pytest.approx(
        0.81
    )
    assert combined[0, CODES.index("OB")] == pytest.approx(0.05)  # 0.1 * 0.5: every code, not just the fired ones
    assert two_stage_strategy("replace") is replace_normal_scores
    with pytest.raises(ConfigError, match=r"two_stage.strategy='max'; choose one of \['replace', 'multiply'\]"):
        two_stage_strategy("max")


def test_the_macro_f1_over_the_codes_present_leaves_out_codes_without_a_positive():
    truth = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0]])  # code C has no positive
    probs = np.array([[0.9, 0.1, 0.2], [0.2, 0.8, 0.1], [0.7, 0.3, 0.1]])
    metrics = multilabel_metrics(probs, truth, ["A", "B", "C"])
    per_code = [metrics[f"f1/{c}"] for c in "ABC"]
    assert per_code[2] == 0.0 and metrics["f1_macro"] == pytest.approx(np.mean(per_code))
    assert metrics["f1_macro_present"] == pytest.approx(np.mean(per_code[:2]))
    assert metrics["f1_macro_present"] > metrics["f1_macro"]
