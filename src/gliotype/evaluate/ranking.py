"""Threshold-free metrics (ROC AUC, average precision), one-vs-rest, for a batch of samples."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from gliotype.evaluate._arrays import divide


def auc_per_class(y: np.ndarray, prob: np.ndarray) -> np.ndarray:
    """One-vs-rest ROC AUC of every class by the Mann-Whitney rank formula (ties count one half).

    ``AUC_k = (sum of the ranks of class-k samples - n_k (n_k + 1) / 2) / (n_k * (n - n_k))``; NaN where
    class ``k`` is absent or is every sample.

    Shapes:
        - y: ``(B, n)`` true class indices
        - prob: ``(B, n, C)``
        - output: ``(B, C)``
    """
    n_classes = prob.shape[-1]
    positive = y[:, :, None] == np.arange(n_classes)
    ranks = rankdata(prob, axis=1)
    n_pos = positive.sum(axis=1).astype(np.float64)
    n_neg = y.shape[1] - n_pos
    rank_sum = (ranks * positive).sum(axis=1)
    return divide(rank_sum - n_pos * (n_pos + 1) / 2, n_pos * n_neg)


def average_precision_per_class(y: np.ndarray, prob: np.ndarray) -> np.ndarray:
    """One-vs-rest average precision ``sum_t (R_t - R_{t-1}) P_t`` over distinct score thresholds.

    Equal scores form one threshold, as in scikit-learn's ``average_precision_score``; NaN where class
    ``k`` has no sample.

    Shapes:
        - y: ``(B, n)`` true class indices
        - prob: ``(B, n, C)``
        - output: ``(B, C)``
    """
    n = y.shape[1]
    order = np.argsort(-prob, axis=1, kind="stable")
    scores = np.take_along_axis(prob, order, axis=1)
    positive = np.take_along_axis(y[:, :, None] == np.arange(prob.shape[-1]), order, axis=1)
    precision = np.cumsum(positive, axis=1) / np.arange(1, n + 1)[None, :, None]
    last_of_tie = np.ones_like(positive)
    last_of_tie[:, :-1] = scores[:, :-1] != scores[:, 1:]
    position = np.where(last_of_tie, np.arange(n)[None, :, None], n - 1)
    tie_end = np.minimum.accumulate(position[:, ::-1], axis=1)[:, ::-1]
    precision_at_threshold = np.take_along_axis(precision, tie_end, axis=1)
    return divide((positive * precision_at_threshold).sum(axis=1), positive.sum(axis=1))
