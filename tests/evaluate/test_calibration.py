"""Expected calibration error and the reliability curve (top-label confidence)."""

import numpy as np
import pytest

from gliotype.evaluate import expected_calibration_error, reliability_curve


def binary(confidence, correct):
    """Patients of true class 1 whose top-label confidence and correctness are given."""
    confidence, correct = np.asarray(confidence, float), np.asarray(correct, bool)
    p1 = np.where(correct, confidence, 1 - confidence)
    return np.ones(len(p1), int), np.stack([1 - p1, p1], 1)


def test_perfectly_calibrated_bins_have_zero_ece():
    # ten patients at confidence 0.85, 8.5 of 10 cannot be right, so use 20: 17 right; and 10 at 0.65, 6.5...
    # simplest exact case: 20 at 0.85 (17 right) and 20 at 0.65 (13 right).
    conf = [0.85] * 20 + [0.65] * 20
    correct = [1] * 17 + [0] * 3 + [1] * 13 + [0] * 7
    y, prob = binary(conf, correct)
    assert expected_calibration_error(y, prob) == pytest.approx(0.0, abs=1e-12)
    curve = reliability_curve(y, prob)
    assert curve["count"].tolist() == [0] * 6 + [20, 0, 20, 0]
    assert curve["accuracy"][[6, 8]] == pytest.approx([0.65, 0.85])
    assert curve["confidence"][[6, 8]] == pytest.approx([0.65, 0.85])
    assert np.isnan(curve["accuracy"][0]) and curve["bin_mid"][0] == pytest.approx(0.05)


def test_overconfident_model_has_positive_ece():
    # confidence 0.95 but right half the time: ECE = |0.5 - 0.95| = 0.45
    y, prob = binary([0.95] * 10, [1, 0] * 5)
    assert expected_calibration_error(y, prob) == pytest.approx(0.45)


def test_multiclass_uses_the_top_label():
    y = np.array([0, 1, 2, 2])
    prob = np.array([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.5, 0.2, 0.3]])
    # all confidences 0.5 (bin 5); right 2 of 4 -> accuracy 0.5 = confidence -> ECE 0
    assert expected_calibration_error(y, prob) == pytest.approx(0.0)
    assert expected_calibration_error(y, prob, n_bins=5) == pytest.approx(0.0)


def test_bad_bin_count_is_named():
    y, prob = binary([0.9], [1])
    with pytest.raises(ValueError, match="n_bins must be a positive integer, got 0"):
        expected_calibration_error(y, prob, n_bins=0)
