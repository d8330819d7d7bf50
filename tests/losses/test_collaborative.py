"""Tests for gliotype.losses.collaborative.symmetric_kl (paper 000, eq. 2)."""

import math

import pytest
import torch

from gliotype.losses import symmetric_kl


def softmax(row):
    e = [math.exp(v) for v in row]
    return [v / sum(e) for v in e]


def kl(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q))


Z_U = [[1.0, 0.0, -1.0], [0.5, 0.5, 2.0]]
Z_V = [[0.0, 0.0, 0.0], [2.0, -1.0, 0.0]]


def test_matches_a_hand_computation_on_two_samples_of_three_features():
    per_sample = [kl(softmax(u), softmax(v)) + kl(softmax(v), softmax(u)) for u, v in zip(Z_U, Z_V)]
    expected = sum(per_sample) / 2
    # first sample by hand: p = softmax(1, 0, -1) = (0.66524, 0.24473, 0.09003), q = (1/3, 1/3, 1/3),
    # KL(p||q) + KL(q||p) = sum_k (p_k - q_k) (log p_k - log q_k)
    by_hand = sum((pk - 1 / 3) * math.log(pk * 3) for pk in (0.66524, 0.24473, 0.09003))
    assert per_sample[0] == pytest.approx(by_hand, abs=1e-4)
    got = symmetric_kl(torch.tensor(Z_U), torch.tensor(Z_V))
    assert got.shape == () and float(got) == pytest.approx(expected, rel=1e-6)


def test_temperature_divides_the_latents():
    z_u, z_v = torch.tensor(Z_U), torch.tensor(Z_V)
    assert torch.allclose(symmetric_kl(z_u, z_v, temperature=2.0), symmetric_kl(z_u / 2, z_v / 2))


def test_zero_for_identical_inputs_and_for_a_constant_shift():
    z = torch.randn(4, 128, generator=torch.Generator().manual_seed(0))
    assert float(symmetric_kl(z, z)) == 0.0
    assert float(symmetric_kl(z, z + 3.0)) == pytest.approx(0.0, abs=1e-5)


def test_symmetric_and_positive():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(5, 128, generator=g), torch.randn(5, 128, generator=g)
    assert torch.allclose(symmetric_kl(a, b), symmetric_kl(b, a))
    assert float(symmetric_kl(a, b)) > 0


def test_stable_for_large_latents():
    a = torch.tensor([[1000.0, 0.0, 0.0]])
    b = torch.tensor([[0.0, 1000.0, 0.0]])
    assert torch.isfinite(symmetric_kl(a, b)) and float(symmetric_kl(a, b)) == pytest.approx(2000.0, rel=1e-4)


def test_gradient_flows_to_both_inputs():
    a = torch.tensor(Z_U, requires_grad=True)
    b = torch.tensor(Z_V, requires_grad=True)
    symmetric_kl(a, b).backward()
    assert a.grad is not None and b.grad is not None
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0


def test_errors_name_the_shapes_and_the_temperature():
    with pytest.raises(ValueError, match=r"same shape.*\(2, 3\) and \(2, 4\)"):
        symmetric_kl(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        symmetric_kl(torch.zeros(2, 3), torch.zeros(2, 3), temperature=0.0)
