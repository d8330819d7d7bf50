"""Batch-hard triplet loss on a handful of points whose distances are written out."""

import math

import pytest
import torch

from gliotype.losses.triplet import pairwise_distance, triplet_hardest


def test_four_points_euclidean_by_hand():
    """z = (0,0), (1,0), (0,2), (3,0); ids 0, 0, 1, 1; margin 1.5. Distances: d01 = 1, d02 = 2, d03 = 3,
    d12 = sqrt 5 = 2.236, d13 = 2, d23 = sqrt 13 = 3.606.
    anchor 0: positive 1 (d 1), nearest negative 2 (d 2): 1 - 2 + 1.5 = 0.5
    anchor 1: positive 0 (d 1), nearest negative 3 (d 2): 0.5
    anchor 2: positive 3 (d sqrt 13), nearest negative 0 (d 2): sqrt 13 - 0.5
    anchor 3: positive 2 (d sqrt 13), nearest negative 1 (d 2): sqrt 13 - 0.5
    mean = (1 + 2 sqrt 13 - 1) / 4 = sqrt 13 / 2 = 1.8028."""
    z = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    ids = torch.tensor([0, 0, 1, 1])
    expected_distance = torch.tensor([[0, 1, 2, 3], [1, 0, 5 ** 0.5, 2], [2, 5 ** 0.5, 0, 13 ** 0.5],
                                      [3, 2, 13 ** 0.5, 0]])
    torch.testing.assert_close(pairwise_distance(z, "euclidean"), expected_distance, atol=1e-5, rtol=0)
    loss = triplet_hardest(z, ids, margin=1.5, metric="euclidean")
    assert float(loss) == pytest.approx(math.sqrt(13) / 2, rel=1e-6)
    # margin 0.5: anchors 0 and 1 give relu(-0.5) = 0, anchors 2 and 3 sqrt 13 - 1.5 -> (sqrt 13 - 1.5) / 2
    assert float(triplet_hardest(z, ids, margin=0.5, metric="euclidean")) == \
        pytest.approx((math.sqrt(13) - 1.5) / 2, rel=1e-6)


def test_hardest_positive_is_the_farthest():
    """ids 0, 0, 0, 1 on a line at 0, 1, 2, 5; margin 0. Anchor 0: farthest positive 2 (d 2), negative d 5 ->
    0; anchor 1: positives d 1, 1 -> 1 - 4 < 0 -> 0; anchor 2: farthest positive 0 (d 2), negative d 3 -> 0.
    With margin 4: anchor 0: 2 - 5 + 4 = 1; anchor 1: 1 - 4 + 4 = 1; anchor 2: 2 - 3 + 4 = 3 -> mean 5/3;
    anchor 3 has no positive and is left out."""
    z = torch.tensor([[0.0], [1.0], [2.0], [5.0]])
    ids = torch.tensor([0, 0, 0, 1])
    assert float(triplet_hardest(z, ids, margin=0.0, metric="euclidean")) == 0.0
    assert float(triplet_hardest(z, ids, margin=4.0, metric="euclidean")) == pytest.approx(5 / 3, rel=1e-6)


def test_cosine_by_hand_and_sqeuclidean_is_twice_cosine_on_unit_vectors():
    """z = e1, e1, e2, -e1 (lengths 1, 3, 0.5, 2 do not matter for cosine); ids 0, 0, 1, 1; margin 0.2.
    Cosine distances: d01 = 0, d02 = 1, d03 = 2, d12 = 1, d13 = 2, d23 = 1. Anchors 0, 1: 0 - 1 + 0.2 < 0;
    anchor 2: positive 3 (d 1), nearest negative d 1 -> 0.2; anchor 3: 1 - 2 + 0.2 < 0. Mean 0.05."""
    e1, e2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    z = torch.stack([e1, 3 * e1, 0.5 * e2, -2 * e1])
    ids = torch.tensor([0, 0, 1, 1])
    assert float(triplet_hardest(z, ids, margin=0.2, metric="cosine")) == pytest.approx(0.05, abs=1e-6)
    unit = torch.nn.functional.normalize(torch.randn(6, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    torch.testing.assert_close(pairwise_distance(unit, "sqeuclidean"), 2 * pairwise_distance(unit, "cosine"),
                               atol=1e-5, rtol=0)


def test_no_anchor_gives_a_zero_in_the_graph():
    z = torch.randn(3, 4, requires_grad=True)
    loss = triplet_hardest(z, torch.tensor([0, 1, 2]))  # no positives
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(z.grad, torch.zeros(3, 4))
    assert float(triplet_hardest(torch.randn(3, 4), torch.tensor([5, 5, 5]))) == 0.0  # no negatives


def test_euclidean_gradient_is_finite_with_duplicate_points():
    z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], requires_grad=True)
    triplet_hardest(z, torch.tensor([0, 0, 1, 1]), margin=2.0, metric="euclidean").backward()
    assert torch.isfinite(z.grad).all()


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="integer tensor"):
        triplet_hardest(torch.randn(3, 2), torch.tensor([0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"\(3,\)"):
        triplet_hardest(torch.randn(3, 2), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="metric must be one of"):
        triplet_hardest(torch.randn(3, 2), torch.tensor([0, 1, 1]), metric="l2")
    with pytest.raises(ValueError, match="margin must be >= 0"):
        triplet_hardest(torch.randn(3, 2), torch.tensor([0, 1, 1]), margin=-1.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda():
    z = torch.randn(6, 8, device="cuda", requires_grad=True)
    loss = triplet_hardest(z, torch.tensor([0, 0, 1, 1, 2, 2]))  # ids on the CPU follow z
    loss.backward()
    assert loss.device.type == "cuda" and torch.isfinite(z.grad).all()
