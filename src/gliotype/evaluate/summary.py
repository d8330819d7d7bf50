"""The ``metrics.json`` of DESIGN.md Contract 2, built from a predictions frame alone."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from gliotype.evaluate.bootstrap import bootstrap_ci
from gliotype.evaluate.calibration import reliability_curve
from gliotype.evaluate.confusion import confusion_matrices
from gliotype.evaluate.metrics import compute_metrics, metric_names
from gliotype.evaluate.predictions import (
    check_columns,
    check_one_row_per_patient,
    label_to_str,
    labelled_arrays,
    labelled_mask,
)

logger = logging.getLogger(__name__)
N_BINS = 10
ORDINAL_TARGETS = ("grade",)


def json_safe(value):
    """Plain Python values for ``json.dump(..., allow_nan=False)``: NaN becomes ``None``."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) or math.isinf(value) else float(value)
    return value


def calibration_summary(y: np.ndarray, prob: np.ndarray, n_bins: int = N_BINS) -> dict:
    """ECE and the reliability bins (top-label confidence) of the labelled rows."""
    curve = reliability_curve(y, prob, n_bins) if len(y) else None
    bins = []
    for b in range(n_bins):
        bins.append(
            {
                "lower": b / n_bins,
                "upper": (b + 1) / n_bins,
                "count": int(curve["count"][b]) if curve else 0,
                "confidence": float(curve["confidence"][b]) if curve else float("nan"),
                "accuracy": float(curve["accuracy"][b]) if curve else float("nan"),
            }
        )
    return {"n_bins": n_bins, "confidence": "top-label (max probability)", "bins": bins}


def confusion_summary(y: np.ndarray, prob: np.ndarray, classes: list[str]) -> dict:
    """Counts of (true, argmax-predicted) classes, rows = true."""
    counts = confusion_matrices(y[None], prob.argmax(1)[None], len(classes))[0]
    return {"rows": "true", "columns": "predicted", "labels": classes, "counts": counts}


def _fold_key(fold: str):
    """Numeric folds in numeric order, then any others by name."""
    number = fold.lstrip("-")
    return (0, int(fold), "") if number.isdigit() else (1, 0, fold)


def fold_summary(frame: pd.DataFrame, y: np.ndarray, prob: np.ndarray, ordinal: bool) -> dict:
    """Per-fold point metrics and their mean and SD (ddof=1) when there are two folds or more."""
    folds = np.array([label_to_str(f) for f in frame["fold"]], dtype=object)
    names = sorted({f for f in folds if f is not None}, key=_fold_key)
    if len(names) < 2:
        return {}
    per_fold = {f: compute_metrics(y[folds == f], prob[folds == f], ordinal) for f in names}
    summary = {}
    for metric in metric_names(ordinal):
        values = np.array([per_fold[f][metric] for f in names])
        finite = values[np.isfinite(values)]
        summary[metric] = {
            "mean": float(finite.mean()) if finite.size else float("nan"),
            "sd": float(finite.std(ddof=1)) if finite.size > 1 else float("nan"),
            "n_folds": int(finite.size),
        }
    return {
        "per_fold": per_fold,
        "per_fold_n": {f: int(np.sum(folds == f)) for f in names},
        "per_fold_summary": summary,
    }


def metrics_report(
    predictions: pd.DataFrame,
    classes: list[str],
    method: str,
    target: str,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    extra: dict | None = None,
) -> dict:
    """The full ``metrics.json`` dictionary of a run (JSON-safe: undefined values are ``None``).

    Metrics use the labelled rows only (an empty or NaN ``y_true`` is an unknown label, counted in
    ``n_unlabelled``) and the argmax of the ``prob_<class>`` columns as the prediction, so every number
    can be recomputed from ``predictions.csv``. Intervals are stratified patient-level percentile
    bootstrap intervals; ``grade`` is treated as ordinal (adds ``kappa_quadratic``).

    Args:
        predictions: Columns ``patient_id, target, fold, y_true, y_pred, prob_<class>`` (labels as names).
        classes: Class names in index order; the positive class of a binary target is ``classes[-1]``.
        method: Method name, recorded as is.
        target: Target name (``idh``, ``codel_1p19q``, ``grade``).
        n_boot: Bootstrap resamples.
        seed: Bootstrap seed.
        level: Interval coverage.
        extra: More top-level keys (for example ``{"model": "fold ensemble"}``); may not replace a key.

    Returns:
        ``method, target, n, n_unlabelled, classes, positive_class, ordinal, class_counts,
        prediction_rule, metrics, ci, calibration, confusion_matrix`` and, for cross-validation
        predictions with two folds or more, ``per_fold, per_fold_n, per_fold_summary``.
    """
    classes = [str(c) for c in classes]
    check_columns(predictions, classes)
    ordinal = target in ORDINAL_TARGETS
    rows = predictions[labelled_mask(predictions)]
    check_one_row_per_patient(rows)
    y, prob = labelled_arrays(rows, classes)
    _warn_if_y_pred_differs(rows, prob, classes)
    metrics = bootstrap_ci(y, prob, n_boot=n_boot, seed=seed, level=level, stratified=True, ordinal=ordinal)
    report = {
        "method": method,
        "target": target,
        "n": int(len(y)),
        "n_unlabelled": int(len(predictions) - len(y)),
        "classes": classes,
        "positive_class": classes[-1] if len(classes) == 2 else None,
        "ordinal": ordinal,
        "class_counts": {c: int(np.sum(y == i)) for i, c in enumerate(classes)},
        "prediction_rule": "argmax of prob_<class> (first class on a tie)",
        "metrics": metrics,
        "ci": {
            "method": "percentile",
            "n_boot": n_boot,
            "stratified": True,
            "unit": "patient",
            "level": level,
            "seed": seed,
        },
        "calibration": {"ece": metrics["ece"]["value"], **calibration_summary(y, prob)},
        "confusion_matrix": confusion_summary(y, prob, classes),
        **fold_summary(rows, y, prob, ordinal),
    }
    _merge_extra(report, extra)
    if not len(y):
        logger.warning("no labelled rows among %d predictions: every metric is undefined", len(predictions))
    return json_safe(report)


def _merge_extra(report: dict, extra: dict | None) -> None:
    clash = sorted(set(extra or {}) & set(report))
    if clash:
        raise ValueError(f"extra may add keys to metrics.json but not replace {clash!r}")
    report.update(extra or {})


def _warn_if_y_pred_differs(rows: pd.DataFrame, prob: np.ndarray, classes: list[str]) -> None:
    if not len(rows):
        return
    argmax = np.array(classes, dtype=object)[prob.argmax(1)]
    differs = np.array([label_to_str(v) for v in rows["y_pred"]], dtype=object) != argmax
    if differs.any():
        logger.warning(
            "%d of %d rows have a y_pred other than the argmax of their probabilities; metrics use the argmax",
            int(differs.sum()),
            len(rows),
        )
