"""Paired bootstrap comparison of the AUC of two runs on the patients they share."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gliotype.evaluate.bootstrap import draw_resamples, percentile_interval
from gliotype.evaluate.metrics import macro_or_positive
from gliotype.evaluate.predictions import (
    check_columns,
    check_one_row_per_patient,
    labelled_arrays,
    labelled_mask,
    prob_columns,
)
from gliotype.evaluate.ranking import auc_per_class

MIN_SHARED = 10


def _target(frame: pd.DataFrame, name: str) -> str:
    targets = sorted({str(t) for t in frame["target"].dropna()})
    if len(targets) != 1:
        raise ValueError(f"{name}: want one target per predictions frame, found {targets!r}")
    return targets[0]


def _labelled(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    classes = prob_columns(frame)
    check_columns(frame, classes, source=name)
    rows = frame[labelled_mask(frame)].copy()
    rows["patient_id"] = rows["patient_id"].astype(str)
    check_one_row_per_patient(rows, source=name)
    return rows


def align(pred_a: pd.DataFrame, pred_b: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels and both runs' probabilities on the labelled patients the two share.

    Raises:
        ValueError: If the targets or classes differ, a shared patient has two different labels, or the
            runs share fewer than :data:`MIN_SHARED` labelled patients.

    Shapes:
        - output: ``y (n,)``, ``prob_a (n, C)``, ``prob_b (n, C)``
    """
    target_a, target_b = _target(pred_a, "run A"), _target(pred_b, "run B")
    if target_a != target_b:
        raise ValueError(f"cannot compare runs on different targets: run A {target_a!r}, run B {target_b!r}")
    classes_a, classes_b = prob_columns(pred_a), prob_columns(pred_b)
    if classes_a != classes_b:
        raise ValueError(f"runs have different classes: run A {classes_a!r}, run B {classes_b!r}")
    a, b = _labelled(pred_a, "run A"), _labelled(pred_b, "run B")
    shared = a.merge(b, on="patient_id", suffixes=("_a", "_b"))
    if len(shared) < MIN_SHARED:
        raise ValueError(
            f"a paired test needs at least {MIN_SHARED} shared labelled patients: run A has {len(a)}, "
            f"run B has {len(b)}, they share {len(shared)}"
        )
    y_a, prob_a = labelled_arrays(shared.rename(columns=_unsuffix(shared, "_a")), classes_a, "run A")
    y_b, prob_b = labelled_arrays(shared.rename(columns=_unsuffix(shared, "_b")), classes_b, "run B")
    if np.any(y_a != y_b):
        bad = shared["patient_id"][y_a != y_b].tolist()[:5]
        raise ValueError(f"runs disagree on the true label of patient(s) {bad!r}")
    return y_a, prob_a, prob_b


def _unsuffix(frame: pd.DataFrame, suffix: str) -> dict[str, str]:
    return {c: c[: -len(suffix)] for c in frame.columns if c.endswith(suffix)}


def paired_auc_test(
    pred_a: pd.DataFrame, pred_b: pd.DataFrame, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> dict:
    """Paired, stratified bootstrap test of ``AUC(A) - AUC(B)`` on the shared patients.

    Each resample draws the same patients for both runs. The two-sided p-value is
    ``min(1, 2 * min(#{d <= 0} + 1, #{d >= 0} + 1) / (n_boot + 1))`` over the resampled differences
    ``d``; identical runs give ``p = 1``.

    Args:
        pred_a: Predictions of run A (Contract 2 columns).
        pred_b: Predictions of run B.
        n_boot: Number of resamples.
        seed: Seed of the resampling generator.
        level: Coverage of the interval of the difference.

    Returns:
        ``auc_a, auc_b, diff (= auc_a - auc_b), ci_low, ci_high, p_value, n`` (shared patients).
    """
    y, prob_a, prob_b = align(pred_a, pred_b)
    idx = np.concatenate([np.arange(len(y))[None], draw_resamples(y, n_boot, seed, stratified=True)])
    auc_a = macro_or_positive(auc_per_class(y[idx], prob_a[idx]), y[idx])
    auc_b = macro_or_positive(auc_per_class(y[idx], prob_b[idx]), y[idx])
    diff = auc_a[1:] - auc_b[1:]
    diff = diff[np.isfinite(diff)]
    low, high = percentile_interval(diff, level)
    tail = min(np.sum(diff <= 0), np.sum(diff >= 0)) + 1
    return {
        "auc_a": float(auc_a[0]),
        "auc_b": float(auc_b[0]),
        "diff": float(auc_a[0] - auc_b[0]),
        "ci_low": low,
        "ci_high": high,
        "p_value": float(min(1.0, 2 * tail / (len(diff) + 1))),
        "n": int(len(y)),
    }
