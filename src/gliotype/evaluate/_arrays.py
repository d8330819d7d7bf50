"""Small array helpers shared by the metric modules: input checks and safe division."""

from __future__ import annotations

import numpy as np


def check_inputs(y_true, prob) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert labels and probabilities.

    Args:
        y_true: True class indices, integers in ``[0, C)``.
        prob: Class probabilities, one column per class.

    Returns:
        ``(y, prob)`` as an ``int64`` and a ``float64`` array.

    Raises:
        ValueError: If the shapes disagree, a label is out of range or a probability is not finite.

    Shapes:
        - y_true: ``(n,)``
        - prob: ``(n, C)`` with ``C >= 2``
    """
    prob = np.asarray(prob, dtype=np.float64)
    y = np.asarray(y_true)
    if prob.ndim != 2 or prob.shape[1] < 2:
        raise ValueError(f"prob must have shape (n, C) with C >= 2 classes, got shape {prob.shape!r}")
    if y.ndim != 1 or len(y) != len(prob):
        raise ValueError(f"y_true must have shape (n,) = ({len(prob)},) to match prob, got shape {y.shape!r}")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            bad = y[~np.isfinite(y) | (y != np.round(y))][:3]
            raise ValueError(f"y_true must hold integer class indices, found {bad.tolist()!r}")
    elif y.dtype.kind not in "iub":
        raise ValueError(f"y_true must hold integer class indices, got dtype {y.dtype!r} (first {y[:3].tolist()!r})")
    y = y.astype(np.int64)
    out_of_range = (y < 0) | (y >= prob.shape[1])
    if out_of_range.any():
        raise ValueError(
            f"y_true holds class index {int(y[out_of_range][0])!r}, outside [0, {prob.shape[1]}) "
            f"for prob with {prob.shape[1]} columns"
        )
    if not np.all(np.isfinite(prob)):
        raise ValueError(
            f"prob holds non-finite values at rows {np.flatnonzero(~np.isfinite(prob).all(1))[:5].tolist()!r}"
        )
    return y, prob


def divide(num, den) -> np.ndarray:
    """Element-wise ``num / den`` with NaN where ``den == 0`` (an undefined metric), never a warning."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den == 0, np.nan, num / np.where(den == 0, 1.0, den))


def masked_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of ``values`` over the last axis where ``mask`` holds; NaN if nothing is selected.

    A NaN inside the selection propagates: a macro average of an undefined per-class value is undefined.

    Shapes:
        - values, mask: ``(B, C)``
        - output: ``(B,)``
    """
    total = np.where(mask, values, 0.0).sum(axis=-1)
    return divide(total, mask.sum(axis=-1))
