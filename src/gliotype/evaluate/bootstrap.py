"""Patient-level percentile bootstrap confidence intervals for every metric.

Drawing the resamples (:func:`draw_resamples`) is separate from applying them, so a bootstrap can be
replayed from its seed.
"""

from __future__ import annotations

import numpy as np

from gliotype.evaluate._arrays import check_inputs
from gliotype.evaluate.metrics import batched_metrics, compute_metrics, metric_names

CHUNK = 128  # resamples evaluated at once; bounds memory to about CHUNK * n * C floats per array


def draw_resamples(y: np.ndarray, n_boot: int, seed: int = 0, stratified: bool = True) -> np.ndarray:
    """Indices of ``n_boot`` resamples of the patients, drawn with replacement.

    Stratified resampling draws within each true class, so each resample keeps the class counts.

    Shapes:
        - y: ``(n,)`` true class indices
        - output: ``(n_boot, n)`` indices into ``y`` (grouped by class when stratified)
    """
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    rng = np.random.default_rng(seed)
    if not stratified:
        return rng.integers(0, len(y), size=(n_boot, len(y)))
    groups = [np.flatnonzero(y == c) for c in np.unique(y)]
    return np.concatenate([g[rng.integers(0, len(g), size=(n_boot, len(g)))] for g in groups], axis=1)


def resampled_metrics(y: np.ndarray, prob: np.ndarray, idx: np.ndarray, ordinal: bool = False) -> dict[str, np.ndarray]:
    """Every metric on every resample, evaluated in chunks of :data:`CHUNK` resamples.

    Shapes:
        - y: ``(n,)``; prob: ``(n, C)``; idx: ``(B, n)``
        - output values: ``(B,)``
    """
    parts = [
        batched_metrics(y[idx[s : s + CHUNK]], prob[idx[s : s + CHUNK]], ordinal) for s in range(0, len(idx), CHUNK)
    ]
    return {name: np.concatenate([p[name] for p in parts]) for name in metric_names(ordinal)}


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Equal-tailed percentile interval of the finite values; NaN bounds when none is finite."""
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level!r}")
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_ci(
    y_true, prob, n_boot: int = 1000, seed: int = 0, level: float = 0.95, stratified: bool = True, ordinal: bool = False
) -> dict[str, dict[str, float]]:
    """Point value and percentile bootstrap confidence interval of every metric.

    Patients are resampled with replacement (within each true class when ``stratified``); resamples on
    which a metric is undefined (NaN) are left out of that metric's interval.

    Args:
        y_true: True class indices.
        prob: Class probabilities.
        n_boot: Number of resamples.
        seed: Seed of the resampling generator; the same seed gives the same intervals.
        level: Coverage of the interval.
        stratified: Resample within each true class.
        ordinal: Also report quadratic-weighted kappa.

    Returns:
        ``{metric: {"value", "ci_low", "ci_high"}}`` in the order of :func:`compute_metrics`.

    Shapes:
        - y_true: ``(n,)``
        - prob: ``(n, C)``
    """
    y, p = check_inputs(y_true, prob)
    values = compute_metrics(y, p, ordinal=ordinal)
    if len(y) == 0:
        return {name: {"value": v, "ci_low": v, "ci_high": v} for name, v in values.items()}
    resampled = resampled_metrics(y, p, draw_resamples(y, n_boot, seed, stratified), ordinal)
    out = {}
    for name, value in values.items():
        low, high = percentile_interval(resampled[name], level)
        out[name] = {"value": value, "ci_low": low, "ci_high": high}
    return out
