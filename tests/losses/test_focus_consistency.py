"""FRL consistency loss (paper 004, eq. 4) and the author code's batch form, on vectors with known cosines."""

import math

import pytest
import torch

from gliotype.losses.focus_consistency import focus_consistency


def unit(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_paper_form_by_hand():
    """g = e1, p = e1, n = e2, tau = 1: cos(g, p) = 1, cos(g, n) = cos(p, n) = 0 ->
    -log(e / (e + 1 + 1)) = log(e + 2) - 1."""
    loss = focus_consistency(unit([1, 0]), unit([3, 0]), unit([0, 2]), tau=1.0)
    assert float(loss) == pytest.approx(math.log(math.e + 2) - 1, rel=1e-6)


def test_paper_form_with_oblique_vectors_and_tau():
    """g = (1, 0), p = (3, 3), n = (0, 1), tau = 0.5: cos(g, p) = cos(p, n) = 1/sqrt 2, cos(g, n) = 0 ->
    s_gp = s_pn = sqrt 2, s_gn = 0 -> log(2 e^sqrt2 + 1) - sqrt 2. Batch mean with a second, easy image."""
    hard = math.log(2 * math.exp(math.sqrt(2)) + 1) - math.sqrt(2)
    easy = math.log(math.exp(2) + 2 * math.exp(0)) - 2  # g = p = e1, n = e2 at tau 0.5
    loss = focus_consistency(unit([1, 0], [1, 0]), unit([3, 3], [1, 0]), unit([0, 1], [0, 1]), tau=0.5)
    assert float(loss) == pytest.approx((hard + easy) / 2, rel=1e-6)


def test_author_form_by_hand():
    """B = 2, g = p = [e1, e2], n = [e3, e3], tau = 1. Row g_0: positive p_0 (cos 1); negatives g_1, p_1,
    n_0 (cos 0 each) -> log(e + 3) - 1; the four rows alike."""
    g = unit([1, 0, 0], [0, 1, 0])
    n = unit([0, 0, 1], [0, 0, 1])
    loss = focus_consistency(g, g.clone(), n, tau=1.0, form="author")
    assert float(loss) == pytest.approx(math.log(math.e + 3) - 1, rel=1e-6)


def test_author_form_with_one_image_has_only_the_own_negative():
    """B = 1, g = p = e1, n = e2, tau = 1: each of the two rows is -log(e / (e + 1))."""
    loss = focus_consistency(unit([1, 0]), unit([1, 0]), unit([0, 1]), tau=1.0, form="author")
    assert float(loss) == pytest.approx(math.log(math.e + 1) - 1, rel=1e-6)


def test_gradients_are_finite():
    views = [torch.randn(4, 8, requires_grad=True) for _ in range(3)]
    for form in ("paper", "author"):
        focus_consistency(*views, form=form).backward()
    assert all(torch.isfinite(v.grad).all() for v in views)


def test_errors_say_how_to_fix():
    a = torch.randn(2, 3)
    with pytest.raises(ValueError, match="one shape"):
        focus_consistency(a, a, torch.randn(3, 3))
    with pytest.raises(ValueError, match="tau must be > 0"):
        focus_consistency(a, a, a, tau=-1.0)
    with pytest.raises(ValueError, match="unknown form 'simclr'"):
        focus_consistency(a, a, a, form="simclr")
