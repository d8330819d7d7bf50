"""Tests for gliotype.losses.contrastive: InfoNCE with j != i (paper 001 eq. 1 / 4) and the bi-level loss (eq. 7)."""

import math

import pytest
import torch
from torch.nn import functional as F

from gliotype.losses import bilevel_contrastive, info_nce

# Three pairs in 2-D. Cosine similarities S_ij = cos(a_i, b_j) (b_2 = (0, 2) has the direction of (0, 1)):
#   a_0 = (1, 0): S_0. = (1,      1/r2, 0   )
#   a_1 = (0, 1): S_1. = (0,      1/r2, 1   )
#   a_2 = (1, 1): S_2. = (1/r2,   1,    1/r2)
A = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
B = [[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]]
R = 1 / math.sqrt(2)
S = [[1.0, R, 0.0], [0.0, R, 1.0], [R, 1.0, R]]


def by_hand(tau):
    """Row i: log(sum_{j != i} exp(S_ij / tau)) - S_ii / tau, then the mean."""
    rows = [math.log(sum(math.exp(S[i][j] / tau) for j in range(3) if j != i)) - S[i][i] / tau for i in range(3)]
    return sum(rows) / 3


def test_matches_a_hand_computation_on_three_pairs():
    # tau = 0.5, so S / tau doubles the cosines:
    #   row 0: log(e^{1.41421} + e^0) - 2       = log(5.11325) - 2        = -0.36816
    #   row 1: log(e^0 + e^2) - 1.41421          = log(8.38906) - 1.41421  =  0.71271
    #   row 2: log(e^{1.41421} + e^2) - 1.41421  = log(11.50231) - 1.41421 =  1.02833
    #   mean = (-0.36816 + 0.71271 + 1.02833) / 3 = 0.45763
    assert by_hand(0.5) == pytest.approx(0.45763, abs=1e-5)
    got = info_nce(torch.tensor(A), torch.tensor(B), temperature=0.5)
    assert got.shape == () and float(got) == pytest.approx(by_hand(0.5), rel=1e-6)


def test_two_pairs_at_the_paper_temperature():
    # a = (e0, e1), b = (e0, e0 + e1): row 0: (1/r2 - 1) / 0.1, row 1: (0 - 1/r2) / 0.1 -> mean -1 / (2 * 0.1) = -5
    a, b = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    assert float(info_nce(a, b)) == pytest.approx(-5.0, rel=1e-6)


def test_leaving_the_positive_out_differs_from_cross_entropy_by_the_known_amount():
    # cross-entropy keeps the positive in the denominator; per row the two differ by
    # log(sum_j e^{S_ij/t}) - log(sum_{j != i} e^{S_ij/t}) = log(1 + e^{S_ii/t} / sum_{j != i} e^{S_ij/t})
    tau = 0.5
    a, b = torch.tensor(A), torch.tensor(B)
    sim = F.normalize(a, dim=1) @ F.normalize(b, dim=1).T / tau
    cross_entropy = F.cross_entropy(sim, torch.arange(3))
    gap = sum(math.log(1 + math.exp(S[i][i] / tau) / sum(math.exp(S[i][j] / tau) for j in range(3) if j != i))
              for i in range(3)) / 3
    assert float(cross_entropy - info_nce(a, b, tau)) == pytest.approx(gap, rel=1e-5)
    assert gap > 0


def test_is_one_way_and_scale_free():
    # swapping the roles transposes S; for A, B that happens to permute the rows' losses, so use other pairs
    a, b = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), torch.tensor([[1.0, 0.0], [1.0, 2.0], [-1.0, 1.0]])
    assert float(info_nce(a, b, 0.5)) != pytest.approx(float(info_nce(b, a, 0.5)), abs=1e-3)
    assert torch.allclose(info_nce(3 * a, 0.5 * b, 0.5), info_nce(a, b, 0.5))


def test_gradient_pulls_matching_pairs_together():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(8, 5, generator=g, requires_grad=True)
    b = torch.randn(8, 5, generator=g)
    before = F.cosine_similarity(a, b).detach()
    info_nce(a, b).backward()
    with torch.no_grad():
        after = F.cosine_similarity(a - 0.01 * a.grad, b)
    assert bool((after > before).all())


def test_lower_for_matched_than_for_shuffled_pairs():
    a = torch.eye(4)
    assert float(info_nce(a, a)) < float(info_nce(a, a[[1, 2, 3, 0]]))


def test_rejects_one_pair_and_mismatched_shapes():
    with pytest.raises(ValueError, match="N >= 2"):
        info_nce(torch.ones(1, 3), torch.ones(1, 3))
    with pytest.raises(ValueError, match="same shape"):
        info_nce(torch.ones(2, 3), torch.ones(2, 4))
    with pytest.raises(ValueError, match="temperature"):
        info_nce(torch.eye(2), torch.eye(2), temperature=0.0)


# ------------------------------------------------------------------------------------ bi-level loss


@pytest.fixture
def latents():
    g = torch.Generator().manual_seed(1)
    return [torch.randn(4, 6, generator=g) for _ in range(4)]  # image, points, brain, tumour


def test_lambda_weights_the_two_levels(latents):
    zi, zp, zb, zt = latents
    tumour = (info_nce(zi, zp) + info_nce(zp, zi)) / 2
    brain = info_nce(zb, zt)
    for lam in (0.8, 0.3, 0.0, 1.0):
        expected = lam * tumour + (1 - lam) * brain
        assert torch.allclose(bilevel_contrastive(zi, zp, zb, zt, lam=lam), expected)


def test_a_missing_level_is_dropped_and_the_other_counts_fully(latents):
    zi, zp, zb, zt = latents
    assert torch.allclose(bilevel_contrastive(None, zp, zb, zt), info_nce(zb, zt))
    assert torch.allclose(bilevel_contrastive(zi, None, zb, zt), info_nce(zb, zt))
    assert torch.allclose(bilevel_contrastive(zi, zp, None, zt), (info_nce(zi, zp) + info_nce(zp, zi)) / 2)
    with pytest.raises(ValueError, match="both levels are missing"):
        bilevel_contrastive(None, zp, zb, None)
    with pytest.raises(ValueError, match="lam"):
        bilevel_contrastive(zi, zp, zb, zt, lam=1.5)
