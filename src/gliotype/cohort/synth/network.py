"""Remote white-matter disruption, the 'network' modality.

Three fixed tract groups in template (MNI) space: the callosal body, bilateral frontal white matter
and bilateral parieto-occipital white matter. Each group is disrupted in proportion to one entry of
the network effect (IDH-wildtype, codeletion, grade). Disruption is applied away from the lesion
only (beyond twice the core radius), lowers FA, and shifts the white-matter T1 (darker) and T2/FLAIR
(brighter), so brain-network methods can read it from anatomical MRI.
"""

from __future__ import annotations

import numpy as np

from gliotype.cohort.synth.anatomy import Tissue
from gliotype.cohort.synth.grids import Grid

# Group -> per-axis (low, high) bounds in template mm; |x| bounds for the bilateral groups.
TRACT_GROUPS: dict[str, dict[str, tuple[float, float]]] = {
    "callosal": {"abs_x": (0.0, 18.0), "y": (-35.0, 25.0), "z": (10.0, 32.0)},
    "frontal": {"abs_x": (8.0, 60.0), "y": (25.0, 70.0), "z": (-5.0, 40.0)},
    "posterior": {"abs_x": (8.0, 60.0), "y": (-95.0, -55.0), "z": (-5.0, 40.0)},
}
AWAY_RHO = 2.0
"""Voxels with a normalised core radius below this are 'near the lesion' and left undisrupted."""


def template_coordinates(grid: Grid, jitter: np.ndarray) -> list[np.ndarray]:
    """Template mm of every voxel of ``grid`` for a patient: three broadcastable float32 arrays."""
    matrix = (jitter @ grid.affine).astype(np.float32)
    idx = np.ogrid[tuple(slice(0, n) for n in grid.shape)]
    return [sum(matrix[r, c] * idx[c] for c in range(3)) + matrix[r, 3] for r in range(3)]


def _inside(v: np.ndarray, bounds: tuple[float, float], edge_mm: float) -> np.ndarray:
    lo, hi = bounds
    return 1.0 / (1.0 + np.exp((lo - v) / edge_mm)) / (1.0 + np.exp((v - hi) / edge_mm))


def group_mask(coords: list[np.ndarray], group: str, edge_mm: float = 3.0) -> np.ndarray:
    """Soft (0-1) mask of one tract group's box on the patient's grid, edges about ``edge_mm`` wide."""
    bounds = TRACT_GROUPS[group]
    x, y, z = coords
    out = _inside(np.abs(x), bounds["abs_x"], edge_mm) * _inside(y, bounds["y"], edge_mm)
    return (out * _inside(z, bounds["z"], edge_mm)).astype(np.float32)


def disruption(
    grid: Grid, jitter: np.ndarray, tissue: Tissue, rho: np.ndarray, effect: dict[str, float]
) -> np.ndarray:
    """Disruption map in [0, 1]: sum over groups of effect x group box x WM fraction, away from the lesion.

    Args:
        grid: The grid of ``tissue`` and ``rho``.
        jitter: Patient-to-template 4 x 4 matrix.
        tissue: Tissue maps (white-matter fraction used).
        rho: Normalised core radius of the lesion (see :class:`~gliotype.cohort.synth.tumour.Lesion`).
        effect: Mixed network effect, one amplitude per group.

    Returns:
        float32 array of ``grid.shape``.
    """
    coords = template_coordinates(grid, jitter)
    out = np.zeros(grid.shape, np.float32)
    for group in TRACT_GROUPS:
        if effect[group] > 0:
            out += np.float32(effect[group]) * group_mask(coords, group)
    out *= tissue.wm * (rho > AWAY_RHO)
    return np.clip(out, 0.0, 1.0)
