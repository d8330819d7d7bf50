"""Point metrics of a classifier from true labels and class probabilities.

One batched implementation serves the point estimate (a batch of one) and the bootstrap (a batch of
resamples), so a value and its confidence interval come from the same arithmetic.
"""

from __future__ import annotations

import numpy as np

from gliotype.evaluate._arrays import check_inputs, masked_mean
from gliotype.evaluate.calibration import batched_ece
from gliotype.evaluate.confusion import confusion_matrices, confusion_metrics
from gliotype.evaluate.ranking import auc_per_class, average_precision_per_class

METRIC_NAMES = ("auc", "accuracy", "sensitivity", "specificity", "f1_macro", "ap", "kappa", "balanced_accuracy")


def metric_names(ordinal: bool = False) -> list[str]:
    """Names returned by :func:`compute_metrics`, in report order."""
    return [*METRIC_NAMES, *(["kappa_quadratic"] if ordinal else []), "ece"]


def macro_or_positive(per_class: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Class 1's value for binary targets, else the mean over the classes present in ``y``.

    Shapes:
        - per_class: ``(B, C)``
        - y: ``(B, n)``
        - output: ``(B,)``
    """
    if per_class.shape[1] == 2:
        return per_class[:, 1]
    present = (y[:, :, None] == np.arange(per_class.shape[1])).any(axis=1)
    return masked_mean(per_class, present)


def batched_metrics(y: np.ndarray, prob: np.ndarray, ordinal: bool = False, n_bins: int = 10) -> dict[str, np.ndarray]:
    """All metrics for each sample of a batch (no input checks; see :func:`compute_metrics`).

    Shapes:
        - y: ``(B, n)`` true class indices
        - prob: ``(B, n, C)``
        - output values: ``(B,)``
    """
    cm = confusion_matrices(y, prob.argmax(axis=-1), prob.shape[-1])
    out = confusion_metrics(cm, ordinal=ordinal)
    out["auc"] = macro_or_positive(auc_per_class(y, prob), y)
    out["ap"] = macro_or_positive(average_precision_per_class(y, prob), y)
    out["ece"] = batched_ece(y, prob, n_bins)
    return {name: out[name] for name in metric_names(ordinal)}


def compute_metrics(y_true, prob, ordinal: bool = False) -> dict[str, float]:
    """Classification metrics of one set of predictions.

    The prediction is the argmax of ``prob`` (the first class on a tie). Binary targets (``C == 2``)
    take class 1 as positive; multi-class targets report one-vs-rest macro AUC and AP and macro
    sensitivity and specificity over the classes present. A metric undefined on the sample (AUC with one
    class present, kappa when chance agreement is perfect) is NaN, never an exception.

    Args:
        y_true: True class indices in ``[0, C)``.
        prob: Class probabilities, one column per class.
        ordinal: The classes are ordered (WHO grade): also report quadratic-weighted kappa.

    Returns:
        ``auc, accuracy, sensitivity, specificity, f1_macro, ap, kappa, balanced_accuracy``,
        ``kappa_quadratic`` when ``ordinal``, and ``ece`` (10-bin top-label calibration error).

    Shapes:
        - y_true: ``(n,)``
        - prob: ``(n, C)``
    """
    y, p = check_inputs(y_true, prob)
    if len(y) == 0:
        return {name: float("nan") for name in metric_names(ordinal)}
    batch = batched_metrics(y[None], p[None], ordinal=ordinal)
    return {name: float(values[0]) for name, values in batch.items()}
