"""Loading NIfTI images in RAS+ orientation, and the checks that make an image usable.

Every image is reoriented to the closest canonical (RAS+) orientation with ``nibabel.as_closest_canonical``;
its affine is kept, so anything derived from it can be written back to overlay the patient's own scan.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

GRID_TOLERANCE_MM = 1e-3
"""Two affines whose entries differ by less than this (mm) describe the same grid."""


class ImageError(ValueError):
    """An image file that cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class Grid:
    """A voxel grid: spatial shape and voxel-to-world affine (RAS+ mm)."""

    shape: tuple[int, int, int]
    affine: np.ndarray

    @property
    def spacing(self) -> tuple[float, ...]:
        return tuple(float(s) for s in np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0)))

    def same_as(self, other: Grid, tol: float = GRID_TOLERANCE_MM) -> bool:
        return self.shape == other.shape and np.allclose(self.affine, other.affine, atol=tol)

    def world_bounds(self) -> np.ndarray:
        """(2, 3) min and max world coordinates of the voxel centres at the grid's corners."""
        corners = np.array([[i, j, k, 1] for i in (0, self.shape[0] - 1)
                            for j in (0, self.shape[1] - 1) for k in (0, self.shape[2] - 1)], float)
        world = (self.affine @ corners.T).T[:, :3]
        return np.stack([world.min(0), world.max(0)])


def load_nifti(path: str | Path, ndim: int | None = None) -> nib.Nifti1Image:
    """Load a NIfTI file reoriented to RAS+, with a clear error for unusable files.

    Args:
        path: ``.nii`` or ``.nii.gz``.
        ndim: required number of dimensions (3 for structural images and masks, 4 for DSC), or ``None``.

    Raises:
        ImageError: the file is not NIfTI, is truncated, or has the wrong number of dimensions.
    """
    path = Path(path)
    try:
        img = nib.load(str(path))
        img = nib.as_closest_canonical(img)
        shape = img.shape
    except Exception as err:  # nibabel raises many types for a broken file
        raise ImageError(f"{path.name}: not a readable NIfTI image ({type(err).__name__}: {err}); "
                         "re-export it as .nii.gz") from err
    if ndim is not None and len(shape) != ndim:
        want = "4-D (x, y, z, time)" if ndim == 4 else f"{ndim}-D"
        raise ImageError(f"{path.name}: expected a {want} image, found shape {shape}; "
                         "check that the right file carries this name")
    return img


def read_array(img: nib.Nifti1Image, path: str | Path, dtype=np.float32) -> np.ndarray:
    """The voxel array of ``img``; a truncated file or NaN/inf voxels raise ImageError naming ``path``."""
    name = Path(path).name
    try:
        data = np.asarray(img.dataobj, dtype=dtype)
    except Exception as err:
        raise ImageError(f"{name}: the voxel data cannot be read ({type(err).__name__}: {err}); "
                         "the file is probably truncated: copy or export it again") from err
    bad = ~np.isfinite(data)
    if bad.any():
        raise ImageError(f"{name}: {int(bad.sum())} voxels are NaN or infinite; "
                         "replace them (e.g. with 0 outside the brain) and save again")
    return data


def grid_of(img: nib.Nifti1Image) -> Grid:
    return Grid(tuple(int(s) for s in img.shape[:3]), np.asarray(img.affine, float))


def load_volume(path: str | Path, ndim: int = 3, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Load an image as a RAS+ array and its affine.

    Shapes:
        returns data (X, Y, Z) or (X, Y, Z, T), affine (4, 4).
    """
    img = load_nifti(path, ndim)
    return read_array(img, path, dtype), np.asarray(img.affine, float)
