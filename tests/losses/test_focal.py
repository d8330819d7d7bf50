"""Tests for gliotype.losses.focal: focal loss and the masked multi-task loss of HiPerfGNN (paper 002)."""

import math

import pytest
import torch
from torch.nn import functional as F

from gliotype.losses import focal_loss, multitask_loss

# One 2-class row with logits (0, ln 3): softmax = (1/4, 3/4).
LOGITS = torch.tensor([[0.0, math.log(3.0)]])


def test_gamma_zero_without_alpha_is_cross_entropy():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.2, 0.3], [-3.0, 1.0, 1.0], [0.0, 0.0, 4.0]])
    target = torch.tensor([0, 2, 1, 0])
    assert torch.allclose(focal_loss(logits, target, gamma=0.0), F.cross_entropy(logits, target), atol=1e-7)


def test_hand_computed_focal_value():
    # label 1: p = 3/4, -(1 - 3/4)^2 log(3/4) = 0.0625 * 0.2876821 = 0.0179801
    assert float(focal_loss(LOGITS, torch.tensor([1]))) == pytest.approx(0.0179801, abs=1e-6)
    # label 0: p = 1/4, -(3/4)^2 log(1/4) = 0.5625 * 1.3862944 = 0.7797906; alpha_0 = 0.25 -> 0.1949477
    alpha = torch.tensor([0.25, 0.75])
    assert float(focal_loss(LOGITS, torch.tensor([0]), alpha=alpha)) == pytest.approx(0.1949477, abs=1e-6)


def test_focal_ignores_unknown_rows_and_is_zero_without_known_rows():
    logits = torch.cat([LOGITS, torch.tensor([[5.0, -5.0]])]).requires_grad_(True)
    assert focal_loss(logits, torch.tensor([1, -1])).item() == pytest.approx(0.0179801, abs=1e-6)
    none = focal_loss(logits, torch.tensor([-1, -1]))
    none.backward()
    assert none.item() == 0.0 and torch.equal(logits.grad, torch.zeros(2, 2))


def test_multitask_masks_unknown_labels_exactly():
    idh = torch.tensor([[1.0, -1.0], [0.3, 0.2], [-2.0, 0.5], [4.0, 4.5]])
    grade = torch.randn(4, 3)
    targets = {"idh": torch.tensor([1, -1, 0, -1]), "grade": torch.tensor([-1, -1, -1, -1])}
    w = torch.tensor([0.3, 0.7])
    total, per_task = multitask_loss({"idh": idh, "grade": grade}, targets, {"idh": w, "grade": None})
    known = F.cross_entropy(idh[[0, 2]], torch.tensor([1, 0]), weight=w)
    assert torch.allclose(per_task["idh"], known, atol=1e-7)
    assert float(per_task["grade"]) == 0.0  # all unknown: 0, not NaN
    assert torch.allclose(total, known, atol=1e-7)


def test_multitask_focal_matches_focal_loss_and_ignores_extra_targets():
    logits = {"idh": torch.tensor([[0.0, math.log(3.0)], [1.0, 1.0]])}
    targets = {"idh": torch.tensor([1, -1]), "grade": torch.tensor([2, 0])}  # grade not predicted: ignored
    total, per_task = multitask_loss(logits, targets, {}, kind="focal", gamma=2.0)
    assert float(total) == pytest.approx(0.0179801, abs=1e-6) and set(per_task) == {"idh"}


def test_teaching_errors():
    with pytest.raises(ValueError, match="labels must be in 0..1"):
        multitask_loss({"idh": LOGITS}, {"idh": torch.tensor([2])}, {})
    with pytest.raises(ValueError, match="targets lack \\['idh'\\]"):
        multitask_loss({"idh": LOGITS}, {"grade": torch.tensor([1])}, {})
    with pytest.raises(ValueError, match="kind must be one of"):
        multitask_loss({"idh": LOGITS}, {"idh": torch.tensor([1])}, {}, kind="bce")
    with pytest.raises(ValueError, match="class weights must have shape \\(2,\\)"):
        focal_loss(LOGITS, torch.tensor([1]), alpha=torch.ones(3))
