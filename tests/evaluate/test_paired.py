"""Paired bootstrap AUC test on the patients two runs share."""

import numpy as np
import pandas as pd
import pytest

from gliotype.evaluate import paired_auc_test


def frame(p_mutant, y, target="idh", ids=None):
    """A predictions frame (Contract 2) for a binary IDH target."""
    names = np.array(["wildtype", "mutant"])
    ids = ids if ids is not None else [f"P{i:03d}" for i in range(len(y))]
    p = np.asarray(p_mutant, float)
    return pd.DataFrame(
        {
            "patient_id": ids,
            "target": target,
            "fold": 0,
            "y_true": names[y],
            "y_pred": names[(p > 0.5).astype(int)],
            "prob_wildtype": 1 - p,
            "prob_mutant": p,
        }
    )


def scores(y, signal, seed):
    rng = np.random.default_rng(seed)
    return np.clip(0.5 + signal * (y - 0.5) + rng.normal(0, 0.2, len(y)), 0.01, 0.99)


Y = np.repeat([0, 1], 40)


def test_identical_runs_differ_by_zero_with_p_one():
    a = frame(scores(Y, 0.3, 0), Y)
    out = paired_auc_test(a, a.copy(), n_boot=300)
    assert out["diff"] == 0 and out["ci_low"] == 0 and out["ci_high"] == 0
    assert out["p_value"] == pytest.approx(1.0)
    assert out["n"] == 80 and out["auc_a"] == out["auc_b"]


def test_clearly_better_run_is_significant():
    good, poor = frame(scores(Y, 0.6, 1), Y), frame(scores(Y, 0.05, 2), Y)
    out = paired_auc_test(good, poor, n_boot=500, seed=0)
    assert out["diff"] == pytest.approx(out["auc_a"] - out["auc_b"])
    assert out["diff"] > 0.2 and out["ci_low"] > 0
    assert out["p_value"] < 0.05
    assert paired_auc_test(good, poor, n_boot=500, seed=0) == out  # seeded


def test_uses_only_shared_patients():
    a = frame(scores(Y, 0.3, 0), Y)
    b = a.iloc[10:70].copy()  # 60 shared patients
    b = b.sample(frac=1, random_state=0)  # shuffled rows: the join is on patient_id, not on position
    out = paired_auc_test(a, b, n_boot=100)
    assert out["n"] == 60 and out["diff"] == pytest.approx(0.0)


def test_refuses_too_few_shared_patients_naming_counts():
    a = frame(scores(Y, 0.3, 0), Y)
    b = frame(scores(Y, 0.3, 1), Y, ids=[f"Q{i}" for i in range(74)] + [f"P{i:03d}" for i in range(6)])
    with pytest.raises(ValueError, match="run A has 80, run B has 80, they share 6"):
        paired_auc_test(a, b)


def test_refuses_different_targets():
    a = frame(scores(Y, 0.3, 0), Y)
    with pytest.raises(ValueError, match="different targets: run A 'idh', run B 'codel_1p19q'"):
        paired_auc_test(a, frame(scores(Y, 0.3, 0), Y, target="codel_1p19q"))
