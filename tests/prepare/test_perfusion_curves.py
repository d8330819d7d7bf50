"""Tests for gliotype.prepare.perfusion: curve scaling, the DSC signal model, relative CBV, VQ-VAE training."""

import math

import numpy as np
import pytest
import torch

from gliotype.nn.vqvae import VQVAEConfig
from gliotype.prepare.perfusion import (bolus_arrival, concentration_to_signal, relative_cbv, scale_curves,
                                        train_vqvae)

pytestmark = pytest.mark.usefixtures("one_thread")




def test_p995_zeroes_negatives_and_divides_by_the_curves_own_percentile():
    curve = np.array([-2.0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    # sorted after zeroing: 0, 0, 1, ..., 10; the 99.5th percentile sits at rank 0.995 * 11 = 10.945,
    # between 9 and 10: 9.945
    out = scale_curves(np.stack([curve, 2 * curve, np.zeros(12)]))
    assert out.dtype == np.float32 and out.shape == (3, 12)
    assert out[0, 0] == 0 and out[0, 2] == pytest.approx(1 / 9.945) and out[0, -1] == pytest.approx(10 / 9.945)
    assert np.allclose(out[1], out[0])  # the amplitude is removed, the shape kept
    assert not out[2].any()  # a zero curve stays zero


def test_zscore_gives_mean_0_sd_1_and_zero_for_a_constant_curve():
    out = scale_curves(np.array([[-1.0, 1, 2, 3], [5, 5, 5, 5]]), mode="zscore")
    # [-1, 1, 2, 3] -> [0, 1, 2, 3]: mean 1.5, SD sqrt(1.25)
    assert out[0] == pytest.approx(np.array([-1.5, -0.5, 0.5, 1.5]) / math.sqrt(1.25), rel=1e-6)
    assert out[0].mean() == pytest.approx(0, abs=1e-6) and out[0].std() == pytest.approx(1, rel=1e-6)
    assert not out[1].any()
    with pytest.raises(ValueError, match="unknown mode 'z'"):
        scale_curves(out, mode="z")


def test_concentration_to_signal_halves_at_ln2_over_k():
    s = concentration_to_signal(np.array([0.0, math.log(2) / 5.0]))
    assert s == pytest.approx([1000.0, 500.0])


def test_bolus_arrival_is_the_first_of_two_points_below_the_running_baseline():
    curve = np.full(30, 100.0)
    curve[6] = 99.0  # one low point: not a bolus
    curve[12:20] = [95, 80, 60, 70, 85, 95, 99, 100]
    assert bolus_arrival(curve[None]).tolist() == [12]
    assert bolus_arrival(np.full((1, 30), 100.0)).tolist() == [30]  # no bolus


def gamma_unit_area(t, t0, alpha, beta):
    """Gamma variate starting at t0 with area 1 (the area is beta^(alpha+1) Gamma(alpha+1))."""
    s = np.clip(t - t0, 0, None)
    return s ** alpha * np.exp(-s / beta) / (beta ** (alpha + 1) * math.gamma(alpha + 1))


def test_relative_cbv_follows_the_area_of_the_concentration_curve():
    tr = 1.5
    t = np.arange(60) * tr
    shapes = [(3.0, 2.5), (2.0, 4.0), (4.0, 2.0)]  # three different bolus shapes, areas 0.3 x 1, 2, 4
    conc = np.stack([0.3 * a * gamma_unit_area(t, 15.0, *shape) for a, shape in zip((1, 2, 4), shapes)])
    signal = concentration_to_signal(conc)  # deepest drop to 56% of baseline
    rcbv = relative_cbv(signal, tr_s=tr, te_s=0.03)
    # dR2* = k C / TE exactly, so the integral is k / TE x area = 5 / 0.03 x 0.3 x (1, 2, 4)
    assert rcbv == pytest.approx([50.0, 100.0, 200.0], rel=0.05)
    assert rcbv / rcbv[0] == pytest.approx([1, 2, 4], rel=0.05)
    assert relative_cbv(signal, tr_s=tr, baseline=10) == pytest.approx(rcbv, rel=1e-6)  # arrival at 15 s / 1.5
    assert relative_cbv(signal[0], tr_s=tr).shape == (1,)


def test_relative_cbv_rejects_bad_timing():
    with pytest.raises(ValueError, match="tr_s=0"):
        relative_cbv(np.ones((2, 40)), tr_s=0)
    with pytest.raises(ValueError, match="baseline must be 1..40"):
        relative_cbv(np.ones((2, 40)), tr_s=1.0, baseline=41)


def small_sets(rng):
    return [rng.random((10, 40)).astype(np.float32), rng.random((200, 60)).astype(np.float32),
            rng.random((200, 60)).astype(np.float32)]


def test_train_vqvae_draws_evenly_mixes_lengths_and_is_deterministic():
    sets = small_sets(np.random.default_rng(0))
    kw = dict(epochs=2, batch_size=32, max_curves=110)
    model, summary = train_vqvae(sets, VQVAEConfig(), seed=3, **kw)
    again, _ = train_vqvae(sets, VQVAEConfig(), seed=3, **kw)
    other, _ = train_vqvae(sets, VQVAEConfig(), seed=4, **kw)
    assert summary["n_curves"] == 110 == sum(summary["code_histogram"])  # 10 + 50 + 50
    assert summary["epochs"] == 2 and len(summary["loss_history"]) == 2 and not model.training
    assert [sum(u) for u in summary["position_usage"]] == [110, 110, 110]
    state, state_again = model.state_dict(), again.state_dict()
    assert all(torch.equal(state[k], state_again[k]) for k in state)
    assert not torch.equal(state["codebooks"], other.state_dict()["codebooks"])


def test_train_vqvae_names_the_bad_patient():
    sets = small_sets(np.random.default_rng(0))
    sets[1] = sets[1][:, :20]
    with pytest.raises(ValueError, match=r"curve_sets\[1\] has 20 time points"):
        train_vqvae(sets)
    with pytest.raises(ValueError, match="curve_sets is empty"):
        train_vqvae([])
    with pytest.raises(ValueError, match="lr must be > 0"):
        train_vqvae(small_sets(np.random.default_rng(0)), lr=0.0)
