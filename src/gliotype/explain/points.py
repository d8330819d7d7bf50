"""Voxel maps on the tumour surface, projected onto the surface point cloud (paper 000, Fig. 4).

A Grad-CAM on the image grid and a GNNExplainer importance on the points are compared on the same
points: the value of each surface voxel goes to its nearest point, and a point gets the mean of the
voxels it received (or, if it received none, the value of its nearest surface voxel).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree


def surface_voxels(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with at least one face-neighbour outside it (mask minus its 6-connected erosion).

    Voxels on the array border count as surface (outside the array is outside the mask).

    Shapes:
        mask: ``(X, Y, Z)`` bool -> ``(M, 3)`` int64 voxel indices, in C order.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3:
        raise ValueError(f"surface_voxels: mask must be 3-D (X, Y, Z); got shape {mask.shape!r}")
    inner = ndimage.binary_erosion(mask, structure=ndimage.generate_binary_structure(3, 1), border_value=0)
    return np.argwhere(mask & ~inner)


def project_to_points(values: np.ndarray, mask: np.ndarray, affine: np.ndarray, points_mm: np.ndarray) -> np.ndarray:
    """Project the values of the mask's surface voxels onto the nearest points.

    Distances are measured in world millimetres (``affine @ [i, j, k, 1]``), so ``points_mm`` must be
    in the same world frame as ``affine`` (not the [-1, 1]-normalised coordinates fed to the GNN).

    Args:
        values: a map on the voxel grid, e.g. a Grad-CAM mapped back with ``cube_to_original``.
        mask: the tumour mask on the same grid.
        affine: voxel-to-world transform of the grid.
        points_mm: the surface points.

    Returns:
        One value per point: the mean of the surface voxels whose nearest point it is, or, for a point
        that is nobody's nearest, the value of its nearest surface voxel. float64.

    Shapes:
        - values: ``(X, Y, Z)``
        - mask: ``(X, Y, Z)``
        - affine: ``(4, 4)``
        - points_mm: ``(P, 3)``
        - output: ``(P,)``
    """
    values, affine, points = np.asarray(values, float), np.asarray(affine, float), np.asarray(points_mm, float)
    _check(values, np.shape(mask), affine, points)
    voxels = surface_voxels(mask)
    if len(voxels) == 0:
        raise ValueError("project_to_points: the mask is empty, so there is no surface to project from")
    world = voxels @ affine[:3, :3].T + affine[:3, 3]
    surface_values = values[tuple(voxels.T)]
    _, nearest_point = cKDTree(points).query(world)
    counts = np.bincount(nearest_point, minlength=len(points))
    sums = np.bincount(nearest_point, weights=surface_values, minlength=len(points))
    out = np.divide(sums, counts, out=np.zeros(len(points)), where=counts > 0)
    empty = counts == 0
    if empty.any():
        _, nearest_voxel = cKDTree(world).query(points[empty])
        out[empty] = surface_values[nearest_voxel]
    return out


def _check(values: np.ndarray, mask_shape: tuple, affine: np.ndarray, points: np.ndarray) -> None:
    if values.ndim != 3 or values.shape != tuple(mask_shape):
        raise ValueError(f"project_to_points: values and mask must be 3-D on the same grid; got shapes "
                         f"{values.shape!r} and {tuple(mask_shape)!r}")
    if affine.shape != (4, 4):
        raise ValueError(f"project_to_points: affine must be (4, 4); got shape {affine.shape!r}")
    if points.ndim != 2 or points.shape[1] != 3 or len(points) == 0:
        raise ValueError(f"project_to_points: points_mm must have shape (P, 3) with P >= 1; got {points.shape!r}")
