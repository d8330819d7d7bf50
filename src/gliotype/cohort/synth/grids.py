"""Voxel grids (shape + RAS+ affine) of the synthetic images.

``small``: the classic 2 mm MNI152 grid, 91 x 109 x 91, with a RAS+ affine.
``full``: the BraTS grid, 240 x 240 x 155 at 1 mm, centred on the MNI152 brain; its DSC sits on a
2 mm grid, 120 x 120 x 78, covering the same field of view.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIZES: tuple[str, ...] = ("small", "full")


@dataclass(frozen=True)
class Grid:
    """A voxel grid.

    Attributes:
        shape: Number of voxels along (x, y, z).
        affine: 4 x 4 voxel-to-world (RAS+, mm) matrix.
    """

    shape: tuple[int, int, int]
    affine: np.ndarray

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size in mm, shape (3,)."""
        return np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))

    def to_world(self, ijk: np.ndarray) -> np.ndarray:
        """Voxel indices (..., 3) to world mm (..., 3)."""
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def to_voxel(self, xyz: np.ndarray) -> np.ndarray:
        """World mm (..., 3) to (fractional) voxel indices (..., 3)."""
        inv = np.linalg.inv(self.affine)
        return xyz @ inv[:3, :3].T + inv[:3, 3]

    def to_dict(self) -> dict:
        """Plain-JSON form."""
        return {"shape": list(self.shape), "affine": self.affine.round(6).tolist()}


def _affine(spacing: float, origin: tuple[float, float, float]) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] *= spacing
    affine[:3, 3] = origin
    return affine


def check_size(size: str) -> str:
    """Return ``size`` if valid, else raise a ValueError naming the valid sizes."""
    if size not in SIZES:
        msg = f"Unknown size {size!r}; valid sizes are {', '.join(SIZES)}"
        raise ValueError(msg)
    return size


def structural_grid(size: str) -> Grid:
    """Grid of the structural images, the segmentation and the FA map for ``size``."""
    if check_size(size) == "small":
        return Grid((91, 109, 91), _affine(2.0, (-90.0, -126.0, -72.0)))
    return Grid((240, 240, 155), _affine(1.0, (-120.0, -137.0, -73.0)))


def dsc_grid(size: str) -> Grid:
    """Grid of the DSC series: the structural grid for ``small``, 2 mm over the same FOV for ``full``."""
    if check_size(size) == "small":
        return structural_grid(size)
    return Grid((120, 120, 78), _affine(2.0, (-119.5, -136.5, -72.5)))
