"""Every training loss against a value computed by hand, with its options and class weighting."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hybrid.data.labels import resolve_label_spec
from hybrid.engine.losses import loss_function
from hybrid.engine.schema import AslSchema, TrainerSchema
from hybrid.errors import ConfigError

BINARY = resolve_label_spec("binary", None, None)
MULTILABEL = resolve_label_spec("multilabel", ["RB", "OB"], None)
# probabilities 0.25 / 0.75 (softmax) and 0.5 / 0.75 (sigmoid)
LOGITS = torch.tensor([[0.0, math.log(3.0)]])


def trainer(name="auto", weighting="none", asl_gamma_neg=4.0, asl_clip=0.05, **keys) -> TrainerSchema:
    """The typed trainer settings with ``trainer.loss=name`` and the other keys given."""
    asl = AslSchema(gamma_neg=asl_gamma_neg, clip=asl_clip)
    return TrainerSchema(loss=name, class_weighting=weighting, asl=asl, **keys)


def loss(spec, targets, name="auto", weighting="none", train_targets=None, **options) -> float:
    criterion = loss_function(spec, trainer(name, weighting, **options), train_targets)
    return float(criterion(LOGITS, targets))


def test_cross_entropy_by_hand():
    target = torch.tensor([1])
    assert loss(BINARY, target) == pytest.approx(-math.log(0.75))
    # smoothing 0.2 over 2 classes: target (0.1, 0.9)
    assert loss(BINARY, target, label_smoothing=0.2) == pytest.approx(-(0.1 * math.log(0.25) + 0.9 * math.log(0.75)))
    # soft targets (mixup) work as probability rows
    assert loss(BINARY, torch.tensor([[0.5, 0.5]])) == pytest.approx(-0.5 * (math.log(0.25) + math.log(0.75)))


def test_focal_by_hand():
    # single-label: (1 - 0.75)^2 * -log 0.75
    assert loss(BINARY, torch.tensor([1]), "focal") == pytest.approx(0.0625 * -math.log(0.75))
    # multi-label, sigmoid terms: positive (1 - 0.5)^2 * -log 0.5, negative 0.75^2 * -log 0.25; mean
    expected = (0.25 * math.log(2) + 0.5625 * -math.log(0.25)) / 2
    assert loss(MULTILABEL, torch.tensor([[1.0, 0.0]]), "focal") == pytest.approx(expected)
    assert loss(MULTILABEL, torch.tensor([[1.0, 0.0]]), "focal", focal_gamma=0) == pytest.approx(
        loss(MULTILABEL, torch.tensor([[1.0, 0.0]]), "bce")
    )  # gamma 0 is BCE


def test_bce_by_hand_with_smoothing_and_positive_weights():
    target = torch.tensor([[1.0, 0.0]])
    assert loss(MULTILABEL, target) == pytest.approx((math.log(2) - math.log(0.25)) / 2)
    smoothed = (math.log(2) - (0.1 * math.log(0.75) + 0.9 * math.log(0.25))) / 2  # targets 0.9 / 0.1
    assert loss(MULTILABEL, target, label_smoothing=0.2) == pytest.approx(smoothed)
    # positive_ratio: (N - N_c) / N_c = 3 for RB (1 of 4 positive), 1 for OB (2 of 4)
    train = np.array([[1, 1], [0, 1], [0, 0], [0, 0]])
    weighted = loss(MULTILABEL, target, weighting="positive_ratio", train_targets=train)
    assert weighted == pytest.approx((3 * math.log(2) - math.log(0.25)) / 2)


def test_asymmetric_loss_by_hand():
    target = torch.tensor([[1.0, 0.0]])
    # positive: -log 0.5 (gamma_pos 0); negative: p_m = 0.75 - 0.05 = 0.7, 0.7^4 * -log 0.3
    expected = (math.log(2) + 0.7**4 * -math.log(0.3)) / 2
    assert loss(MULTILABEL, target, "asl") == pytest.approx(expected)
    no_shift = loss(MULTILABEL, target, "asl", asl_gamma_neg=0.0, asl_clip=0.0)
    assert no_shift == pytest.approx(loss(MULTILABEL, target, "bce"))  # no focusing, no shift: BCE


def test_class_weighting_keeps_working_with_every_loss():
    train = np.array([[1, 1], [0, 1], [0, 0], [0, 0]])
    target = torch.tensor([[1.0, 0.0]])
    for name in ("bce", "focal", "asl"):
        plain = loss(MULTILABEL, target, name)
        assert loss(MULTILABEL, target, name, "positive_ratio", train) > plain  # RB's positive weighs 3
        assert loss(MULTILABEL, target, name, "effective_number", train) != plain
    logits, targets = LOGITS.repeat(2, 1), torch.tensor([1, 0])  # one image of each class
    for name in ("ce", "focal"):
        plain = loss_function(BINARY, trainer(name))(logits, targets)
        weighted = loss_function(BINARY, trainer(name, "effective_number"), np.array([0, 0, 0, 1]))(logits, targets)
        assert float(weighted) != pytest.approx(float(plain))


def test_a_loss_must_fit_the_task():
    with pytest.raises(ConfigError, match=r"trainer.loss=asl does not apply to data.task=binary"):
        loss_function(BINARY, trainer("asl"))
    with pytest.raises(ConfigError, match=r"trainer.loss=ce does not apply to data.task=multilabel"):
        loss_function(MULTILABEL, trainer("ce"))
    with pytest.raises(ConfigError, match=r"trainer.loss='hinge'; choose one of"):
        loss_function(BINARY, trainer("hinge"))
    with pytest.raises(ConfigError, match=r"trainer.label_smoothing=1.0: must be in \[0, 1\)"):
        loss_function(BINARY, trainer(label_smoothing=1.0))
