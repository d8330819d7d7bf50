"""compute_metrics on examples worked by hand, and against scikit-learn."""

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, cohen_kappa_score, f1_score, roc_auc_score

from gliotype.evaluate import compute_metrics

# Six patients, positive class 1. Predictions (argmax, threshold 0.5): 0 0 1 | 0 1 1
#   TN = 2, FP = 1 (patient 3), FN = 1 (patient 4), TP = 2.
# AUC by pairs (positive score > negative score): 0.3 beats 0.1 only (1), 0.7 and 0.8 beat all three
#   negatives (3 + 3): 7 of 9 pairs.
# kappa: observed agreement 4/6, chance (3*3 + 3*3)/36 = 1/2, kappa = (2/3 - 1/2) / (1 - 1/2) = 1/3.
# AP: ranked 0.8+ 0.7+ 0.6- 0.4- 0.3+ 0.1-; precision at each positive 1/1, 2/2, 3/5 -> (1 + 1 + 0.6) / 3.
# ECE: confidences 0.9 0.6 0.6 0.7 0.7 0.8, correct 1 1 0 0 1 1; per-bin |sum(correct - conf)|:
#   bin 0.9: 0.1, bin 0.6: |0.4 - 0.6| = 0.2, bin 0.7: |-0.7 + 0.3| = 0.4, bin 0.8: 0.2 -> 0.9 / 6.
Y6 = np.array([0, 0, 0, 1, 1, 1])
P6 = np.array([0.1, 0.4, 0.6, 0.3, 0.7, 0.8])
PROB6 = np.stack([1 - P6, P6], axis=1)


def test_hand_worked_binary_example():
    m = compute_metrics(Y6, PROB6)
    expected = {
        "accuracy": 4 / 6,
        "sensitivity": 2 / 3,
        "specificity": 2 / 3,
        "auc": 7 / 9,
        "kappa": 1 / 3,
        "f1_macro": 2 / 3,
        "balanced_accuracy": 2 / 3,
        "ap": 2.6 / 3,
        "ece": 0.9 / 6,
    }
    assert list(m) == [
        "auc",
        "accuracy",
        "sensitivity",
        "specificity",
        "f1_macro",
        "ap",
        "kappa",
        "balanced_accuracy",
        "ece",
    ]
    for name, value in expected.items():
        assert m[name] == pytest.approx(value), name


def test_perfect_predictions():
    y = np.array([0, 0, 1, 1, 1])
    m = compute_metrics(y, np.eye(2)[y] * 0.9 + 0.05)
    for name in ["auc", "accuracy", "sensitivity", "specificity", "f1_macro", "ap", "kappa", "balanced_accuracy"]:
        assert m[name] == pytest.approx(1.0), name
    assert m["ece"] == pytest.approx(0.05)  # every confidence 0.95, every prediction right


def test_random_predictions_are_at_chance():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 4000)
    p = rng.uniform(size=4000)
    m = compute_metrics(y, np.stack([1 - p, p], 1))
    assert m["auc"] == pytest.approx(0.5, abs=0.03)
    assert m["accuracy"] == pytest.approx(0.5, abs=0.03)
    assert m["kappa"] == pytest.approx(0.0, abs=0.05)


def test_three_class_macro_auc_matches_sklearn_ovr():
    y = np.array([0, 0, 1, 1, 2, 2, 2, 0, 1])
    prob = np.array(
        [
            [0.7, 0.2, 0.1],
            [0.4, 0.4, 0.2],
            [0.3, 0.5, 0.2],
            [0.5, 0.3, 0.2],
            [0.1, 0.2, 0.7],
            [0.2, 0.5, 0.3],
            [0.3, 0.3, 0.4],
            [0.2, 0.3, 0.5],
            [0.1, 0.8, 0.1],
        ]
    )
    m = compute_metrics(y, prob)
    pred = prob.argmax(1)
    assert m["auc"] == pytest.approx(roc_auc_score(y, prob, multi_class="ovr", average="macro"))
    assert m["ap"] == pytest.approx(average_precision_score(np.eye(3)[y], prob, average="macro"))
    assert m["f1_macro"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["kappa"] == pytest.approx(cohen_kappa_score(y, pred))
    # macro one-vs-rest specificity by hand: predictions 0 0 1 0 2 1 2 2 1
    #   class 0: negatives 1,1,2,2,2,1 (6), wrongly called 0: one (patient 4) -> 5/6
    #   class 1: negatives 0,0,2,2,2,0 (6), wrongly called 1: one (patient 6) -> 5/6
    #   class 2: negatives 0,0,1,1,0,1 (6), wrongly called 2: one (patient 8) -> 5/6
    assert m["specificity"] == pytest.approx(5 / 6)


def test_quadratic_kappa_for_grade_by_hand():
    # grades 2, 3, 4 as indices 0, 1, 2; the grade-3 patient is called grade 4.
    # row sums 1 1 1, column sums 1 0 2, n = 3; expected E_ij = r_i c_j / 3.
    # sum W*O = (1-2)^2 = 1; sum W*E = 8/3 + 1 + 4/3 = 5 -> kappa_q = 1 - 1/5 = 0.8.
    # unweighted: p_o = 2/3, p_e = (1 + 0 + 2) / 9 = 1/3 -> (2/3 - 1/3) / (2/3) = 0.5.
    y = np.array([0, 1, 2])
    prob = np.array([[0.8, 0.1, 0.1], [0.1, 0.3, 0.6], [0.1, 0.2, 0.7]])
    m = compute_metrics(y, prob, ordinal=True)
    assert m["kappa_quadratic"] == pytest.approx(0.8)
    assert m["kappa"] == pytest.approx(0.5)
    assert m["kappa_quadratic"] == pytest.approx(cohen_kappa_score(y, prob.argmax(1), weights="quadratic"))
    assert "kappa_quadratic" not in compute_metrics(y, prob)


def test_undefined_metrics_are_nan_not_errors():
    y = np.array([1, 1, 1])
    m = compute_metrics(y, np.array([[0.2, 0.8], [0.6, 0.4], [0.3, 0.7]]))
    assert math.isnan(m["auc"]) and math.isnan(m["specificity"])
    assert m["ap"] == pytest.approx(1.0)  # every patient positive: precision 1 at every threshold
    assert m["sensitivity"] == pytest.approx(2 / 3)
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["kappa"] == pytest.approx(0.0)  # p_o = 2/3 = p_e = (0 * 1 + 3 * 2) / 9
    one_class = compute_metrics(y, np.array([[0.2, 0.8]] * 3))
    assert math.isnan(one_class["kappa"])  # chance agreement is 1: kappa is 0/0


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match=r"shape \(n, C\)"):
        compute_metrics(np.array([0, 1]), np.array([0.2, 0.8]))
    with pytest.raises(ValueError, match="class index 2"):
        compute_metrics(np.array([0, 2]), np.array([[0.5, 0.5], [0.5, 0.5]]))
    with pytest.raises(ValueError, match="to match prob"):
        compute_metrics(np.array([0, 1, 1]), np.array([[0.5, 0.5], [0.5, 0.5]]))
