"""Supervised contrastive loss on a handful of unit vectors with known cosines."""

import math

import pytest
import torch

from gliotype.losses.supcon import supervised_contrastive

E1, E2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])


def test_four_vectors_by_hand():
    """z = [e1, e1, e2, -e1], labels [0, 0, 1, 1], tau = 1. Cosines: s01 = 1, s02 = 0, s03 = -1, s12 = 0,
    s13 = -1, s23 = 0. Anchors 0 and 1: log(e + 1 + 1/e) - 1; anchor 2 (positive 3, s = 0, denominator
    1 + 1 + 1): log 3; anchor 3 (positive 2, s = 0, denominator 1/e + 1/e + 1): log(2/e + 1)."""
    z = torch.stack([E1, E1, E2, -E1]) * torch.tensor([[1.0], [3.0], [0.5], [2.0]])  # lengths do not matter
    labels = torch.tensor([0, 0, 1, 1])
    e = math.e
    expected = (2 * (math.log(e + 1 + 1 / e) - 1) + math.log(3) + math.log(2 / e + 1)) / 4
    assert float(supervised_contrastive(z, labels, tau=1.0)) == pytest.approx(expected, rel=1e-6)


def test_anchor_without_positive_is_skipped_but_stays_in_denominators():
    """z = [e1, e1, e2], labels [0, 0, 1], tau = 0.5: anchor 2 has no positive; anchors 0 and 1 each give
    log(e^2 + e^0) - 2 (sample 2 in the denominator)."""
    z = torch.stack([E1, E1, E2])
    loss = supervised_contrastive(z, torch.tensor([0, 0, 1]), tau=0.5)
    assert float(loss) == pytest.approx(math.log(math.e ** 2 + 1) - 2, rel=1e-6)


def test_unknown_label_and_mask_leave_a_sample_out_entirely():
    z = torch.stack([E1, E1, E2])
    expected = supervised_contrastive(z, torch.tensor([0, 0, 1]), tau=0.5)
    with_unknown = torch.cat([z, torch.stack([E1, -E1])])  # would change every denominator if counted
    assert float(supervised_contrastive(with_unknown, torch.tensor([0, 0, 1, -1, -1]), tau=0.5)) == \
        pytest.approx(float(expected), rel=1e-6)
    mask = torch.tensor([True, True, True, False, False])
    assert float(supervised_contrastive(with_unknown, torch.tensor([0, 0, 1, 0, 1]), tau=0.5, mask=mask)) == \
        pytest.approx(float(expected), rel=1e-6)


def test_no_positive_anywhere_gives_zero_with_a_gradient():
    z = torch.randn(3, 4, requires_grad=True)
    loss = supervised_contrastive(z, torch.tensor([0, 1, -1]))
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert torch.equal(z.grad, torch.zeros(3, 4))


def test_a_gradient_step_brings_positives_closer():
    z = torch.tensor([[1.0, 0.5], [1.0, -0.5], [-1.0, 0.0]], requires_grad=True)
    labels = torch.tensor([0, 0, 1])
    supervised_contrastive(z, labels, tau=1.0).backward()
    assert torch.isfinite(z.grad).all()
    stepped = (z - 0.1 * z.grad).detach()
    cosine = torch.nn.functional.cosine_similarity
    assert float(cosine(stepped[0], stepped[1], dim=0)) > float(cosine(z[0], z[1], dim=0).detach())


def test_errors_say_how_to_fix():
    z = torch.randn(3, 2)
    with pytest.raises(ValueError, match="concatenate"):
        supervised_contrastive(z[None], torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match=r"integers of shape \(3,\)"):
        supervised_contrastive(z, torch.tensor([0.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="mask must be bool"):
        supervised_contrastive(z, torch.tensor([0, 0, 1]), mask=torch.ones(3))
    with pytest.raises(ValueError, match="tau must be > 0"):
        supervised_contrastive(z, torch.tensor([0, 0, 1]), tau=0.0)
