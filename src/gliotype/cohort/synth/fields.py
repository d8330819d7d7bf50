"""Smooth random fields used by the renderers: low-frequency noise, bias fields, Fourier sums."""

from __future__ import annotations

import numpy as np

from gliotype.cohort.synth.grids import Grid


def _interp_matrix(n: int, step: float, m: int) -> np.ndarray:
    """(n, m) linear-interpolation weights from m coarse nodes (spacing ``step`` voxels) to n voxels."""
    pos = np.arange(n, dtype=np.float32) / np.float32(step)
    lo = np.minimum(pos.astype(int), m - 2)
    frac = pos - lo
    out = np.zeros((n, m), np.float32)
    out[np.arange(n), lo] = 1 - frac
    out[np.arange(n), lo + 1] = frac
    return out


def smooth_noise(grid: Grid, scale_mm: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-variance noise correlated over about ``scale_mm``, on ``grid``.

    Drawn on a coarse lattice (one node per ``scale_mm``) and interpolated (separable trilinear).

    Returns:
        float32 array of ``grid.shape``.
    """
    step = np.maximum(scale_mm / grid.spacing, 1.0)
    coarse_shape = tuple(int(np.ceil(n / s)) + 2 for n, s in zip(grid.shape, step))
    out = rng.standard_normal(coarse_shape, dtype=np.float32)
    for axis, (n, s, m) in enumerate(zip(grid.shape, step, coarse_shape)):
        out = np.moveaxis(np.tensordot(_interp_matrix(n, s, m), out, axes=(1, axis)), 0, axis)
    return ((out - out.mean()) / (out.std() + 1e-6)).astype(np.float32)


def bias_field(grid: Grid, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative MR bias field: exp of a random quadratic polynomial in normalised coordinates.

    Args:
        grid: Target grid.
        strength: Standard deviation of the polynomial coefficients (0.1 gives about +-15%).
        rng: Rendering generator.

    Returns:
        float32 array of ``grid.shape``, values near 1.
    """
    axes = [np.linspace(-1, 1, n, dtype=np.float32) for n in grid.shape]
    x, y, z = np.meshgrid(*axes, indexing="ij", sparse=True)
    terms = (x, y, z, x * x, y * y, z * z, x * y, x * z, y * z)
    coef = rng.normal(0, strength, len(terms)).astype(np.float32)
    log = sum(c * t for c, t in zip(coef, terms))
    return np.exp(log).astype(np.float32)


def fourier_sum(
    xyz: np.ndarray, freqs: np.ndarray, phases: np.ndarray, amps: np.ndarray | None = None
) -> np.ndarray:
    """Sum of cosines ``sum_j a_j cos(w_j . x + phi_j)`` at points ``xyz`` (N, 3) mm; returns (N,)."""
    amps = np.full(len(phases), 1.0 / np.sqrt(len(phases))) if amps is None else amps
    xyz = xyz.astype(np.float32)
    return np.cos(xyz @ freqs.T.astype(np.float32) + phases.astype(np.float32)) @ amps.astype(np.float32)
