"""Calibration of the top-label confidence: expected calibration error and the reliability curve.

The confidence of a prediction is its largest class probability and it is correct when the argmax is the
true class (Guo et al., 2017), for binary and multi-class targets alike. Bins are equal-width on [0, 1],
left-closed (``[0.1, 0.2)``), the last one closed on both sides.
"""

from __future__ import annotations

import numpy as np

from gliotype.evaluate._arrays import check_inputs, divide


def bin_index(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bin of each confidence; ``1.0`` falls in the last bin."""
    if not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    return np.clip(np.floor(confidence * n_bins).astype(np.int64), 0, n_bins - 1)


def batched_ece(y: np.ndarray, prob: np.ndarray, n_bins: int = 10) -> np.ndarray:
    """ECE ``sum_b |sum_{i in b} (correct_i - confidence_i)| / n`` for each sample of a batch.

    Shapes:
        - y: ``(B, n)`` true class indices
        - prob: ``(B, n, C)``
        - output: ``(B,)``
    """
    confidence = prob.max(axis=-1)
    gap = (prob.argmax(axis=-1) == y) - confidence
    flat = np.arange(y.shape[0])[:, None] * n_bins + bin_index(confidence, n_bins)
    per_bin = np.bincount(flat.ravel(), weights=gap.ravel(), minlength=y.shape[0] * n_bins)
    return divide(np.abs(per_bin.reshape(y.shape[0], n_bins)).sum(axis=1), y.shape[1])


def expected_calibration_error(y_true, prob, n_bins: int = 10) -> float:
    """Expected calibration error of the top-label confidence.

    Args:
        y_true: True class indices.
        prob: Class probabilities.
        n_bins: Number of equal-width confidence bins.

    Returns:
        The count-weighted mean of ``|accuracy - confidence|`` over the bins; NaN for no samples.

    Shapes:
        - y_true: ``(n,)``
        - prob: ``(n, C)``
    """
    y, p = check_inputs(y_true, prob)
    return float(batched_ece(y[None], p[None], n_bins)[0])


def reliability_curve(y_true, prob, n_bins: int = 10) -> dict[str, np.ndarray]:
    """Accuracy against mean confidence per confidence bin.

    Args:
        y_true: True class indices.
        prob: Class probabilities.
        n_bins: Number of equal-width confidence bins.

    Returns:
        ``bin_mid``, ``accuracy``, ``confidence`` (mean top-label probability) and ``count`` per bin;
        accuracy and confidence are NaN in an empty bin.

    Shapes:
        - y_true: ``(n,)``
        - prob: ``(n, C)``
        - output values: ``(n_bins,)``
    """
    y, p = check_inputs(y_true, prob)
    confidence = p.max(axis=1)
    bins = bin_index(confidence, n_bins)
    count = np.bincount(bins, minlength=n_bins)
    correct = np.bincount(bins, weights=(p.argmax(axis=1) == y).astype(np.float64), minlength=n_bins)
    summed = np.bincount(bins, weights=confidence, minlength=n_bins)
    return {
        "bin_mid": (np.arange(n_bins) + 0.5) / n_bins,
        "accuracy": divide(correct, count),
        "confidence": divide(summed, count),
        "count": count,
    }
