"""Stratified patient-level percentile bootstrap."""

import time

import numpy as np
import pytest

from gliotype.evaluate import bootstrap_ci, compute_metrics
from gliotype.evaluate.bootstrap import draw_resamples


def informative(n, seed=0):
    """n patients, two classes, a noisy but informative score."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], [n // 2, n - n // 2])
    p = np.clip(0.4 + 0.2 * y + rng.normal(0, 0.25, n), 0.01, 0.99)
    return y, np.stack([1 - p, p], 1)


def test_value_is_the_full_sample_metric_and_lies_in_its_ci():
    y, prob = informative(100)
    ci = bootstrap_ci(y, prob, n_boot=500, seed=0)
    full = compute_metrics(y, prob)
    for name in ["auc", "accuracy", "sensitivity", "specificity", "f1_macro", "ap", "kappa", "balanced_accuracy"]:
        assert ci[name]["value"] == full[name]
        assert ci[name]["ci_low"] <= ci[name]["value"] <= ci[name]["ci_high"], name


def test_same_seed_same_ci_other_seed_other_ci():
    y, prob = informative(60)
    a = bootstrap_ci(y, prob, n_boot=200, seed=3)
    assert a == bootstrap_ci(y, prob, n_boot=200, seed=3)
    assert a["auc"] != bootstrap_ci(y, prob, n_boot=200, seed=4)["auc"]


def test_ci_narrows_with_more_patients():
    small, large = bootstrap_ci(*informative(40), n_boot=400), bootstrap_ci(*informative(400), n_boot=400)
    for name in ["auc", "accuracy"]:
        assert large[name]["ci_high"] - large[name]["ci_low"] < 0.6 * (small[name]["ci_high"] - small[name]["ci_low"])


def test_stratified_resamples_keep_class_counts():
    y = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 2])
    idx = draw_resamples(y, n_boot=50, seed=0, stratified=True)
    assert idx.shape == (50, 10)
    counts = np.stack([np.bincount(y[row], minlength=3) for row in idx])
    assert (counts == [3, 2, 5]).all()
    unstratified = np.stack([np.bincount(y[row], minlength=3) for row in draw_resamples(y, 50, 0, stratified=False)])
    assert not (unstratified == [3, 2, 5]).all()


def test_undefined_resamples_are_ignored():
    y, prob = informative(20)
    ci = bootstrap_ci(y, prob, n_boot=200, seed=0, stratified=False)  # some resamples may lose a class
    assert np.isfinite([ci["auc"]["ci_low"], ci["auc"]["ci_high"]]).all()


def test_rejects_bad_arguments():
    y, prob = informative(10)
    with pytest.raises(ValueError, match="n_boot must be a positive integer, got 0"):
        bootstrap_ci(y, prob, n_boot=0)
    with pytest.raises(ValueError, match="level must lie strictly between 0 and 1, got 95"):
        bootstrap_ci(y, prob, level=95)


def test_1000_resamples_of_200_patients_take_well_under_a_few_seconds():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    prob = rng.dirichlet(np.ones(3), 200)
    start = time.perf_counter()
    ci = bootstrap_ci(y, prob, n_boot=1000, ordinal=True)
    assert time.perf_counter() - start < 3.0
    assert len(ci) == 10
