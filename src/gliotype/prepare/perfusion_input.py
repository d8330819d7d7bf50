"""The perfusion input stage: tumour-voxel DSC curves and co-registered structural MRI on the DSC grid.

Everything lands on the patient's DSC grid (RAS+), cropped to the tumour's bounding box plus ``margin``
voxels:

* the segmentation is resampled onto the DSC grid (nearest neighbour, through the two affines; a seg on
  the DSC grid itself is only sliced), and the tumour mask is its ``region`` (DESIGN.md region rule);
* the DSC time-intensity curves of the mask voxels, in ``np.nonzero(mask)`` order, are scaled per curve
  by :func:`gliotype.prepare.perfusion.scale_curves` (``p995``: negatives to 0, then divided by the
  curve's own 99.5th percentile; ``zscore``: temporal z-score);
* each structural sequence is z-scored on its own brain voxels on its own grid (the ``tumour_image``
  rule), then resampled linearly onto the cropped DSC grid.

``offset`` (the crop start) and ``grid_shape`` and ``affine`` (the DSC grid) map any crop voxel back onto
the patient's DSC series: crop voxel ``v`` is DSC voxel ``v + offset``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np
from pydantic import Field
from scipy import ndimage

from gliotype.cohort import Case, region_mask
from gliotype.cohort.images import ImageError, load_nifti, load_volume
from gliotype.cohort.layout import MRI_SEQUENCES
from gliotype.prepare.stage import StageConfig, register_stage
from gliotype.prepare.tumour_image import bounding_box, zscore_brain

MIN_TIMEPOINTS, MAX_TIMEPOINTS = 30, 90
"""DSC lengths accepted: a whole first pass (baseline, bolus, recirculation); the paper's series have 45-60."""
SAME_GRID_VOXELS = 1e-3
"""Two grids whose voxel mapping is a whole-voxel shift within this tolerance are sliced, not interpolated."""


class PerfusionInputConfig(StageConfig):
    region: Literal["whole", "core", "enhancing"] = "whole"
    scaling: Literal["p995", "zscore"] = "p995"
    margin: int = Field(1, ge=0)


def check_timepoints(n_timepoints: int, path: Path) -> int:
    """Return ``n_timepoints`` when it is a usable DSC length, else raise a ValueError naming ``path``."""
    if not MIN_TIMEPOINTS <= n_timepoints <= MAX_TIMEPOINTS:
        raise ValueError(f"{path.name}: the DSC series has T={n_timepoints!r} time points; {MIN_TIMEPOINTS} to "
                         f"{MAX_TIMEPOINTS} are needed (baseline, first pass and recirculation). Check that the "
                         "4th axis is time, and export the whole series (not a summary map or a cut)")
    return n_timepoints


def resample(volume: np.ndarray, affine: np.ndarray, target_affine: np.ndarray, shape, order: int) -> np.ndarray:
    """``volume`` sampled at the voxel centres of the target grid (0 outside ``volume``'s field of view).

    A target grid that is a whole-voxel sub-box of ``volume``'s grid is sliced (no interpolation).

    Args:
        volume: image on the grid of ``affine``.
        affine, target_affine: voxel-to-world (RAS+ mm) affines of the source and target grids.
        shape: target grid shape.
        order: spline order (0 nearest for labels, 1 linear for intensities).

    Shapes:
        volume: (X, Y, Z) -> (*shape).
    """
    matrix = np.linalg.solve(affine, target_affine)  # target voxel -> source voxel
    shift = np.rint(matrix[:3, 3])
    start, stop = shift.astype(int), shift.astype(int) + np.asarray(shape)
    if (np.allclose(matrix[:3, :3], np.eye(3), atol=SAME_GRID_VOXELS)
            and np.allclose(matrix[:3, 3], shift, atol=SAME_GRID_VOXELS)
            and (start >= 0).all() and (stop <= volume.shape).all()):
        return volume[tuple(slice(a, b) for a, b in zip(start, stop))]
    return ndimage.affine_transform(volume, matrix[:3, :3], matrix[:3, 3], output_shape=tuple(int(s) for s in shape),
                                    order=order, mode="constant", cval=0.0)


def crop_affine(affine: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Affine of the sub-grid that starts at voxel ``start`` of the grid of ``affine``."""
    shifted = affine.copy()
    shifted[:3, 3] = affine[:3, :3] @ start + affine[:3, 3]
    return shifted


def tumour_mask(case: Case, config: PerfusionInputConfig, shape, affine: np.ndarray):
    """The tumour region of the patient's seg, resampled onto the DSC grid (nearest neighbour)."""
    path = case.images["seg"]
    seg, seg_affine = load_volume(path)
    region = region_mask(resample(seg, seg_affine, affine, shape, order=0), config.region)
    if not region.mask.any():
        own = int(region_mask(seg, config.region).mask.sum())
        where = (f"it has {own} voxels on the seg's own grid but none on the DSC grid: check that the seg and the "
                 "DSC are co-registered (their affines overlap)") if own else "choose another region or fix the seg"
        raise ValueError(f"{case.patient_id}: {path.name}: the {config.region} tumour region is empty; {where}")
    return region


def read_curves(img: nib.Nifti1Image, path: Path, box: tuple[slice, ...], mask: np.ndarray) -> np.ndarray:
    """The DSC curves of the mask voxels of the crop ``box``, read without loading the whole series.

    Shapes:
        mask: (x, y, z) on the crop -> (n, T) float32 in ``np.nonzero(mask)`` order.
    """
    try:
        crop = np.asarray(img.dataobj[box], dtype=np.float32)
    except Exception as err:  # nibabel raises many types for a truncated file
        raise ImageError(f"{path.name}: the voxel data cannot be read ({type(err).__name__}: {err}); "
                         "the file is probably truncated: copy or export it again") from err
    curves = crop[mask]
    if not np.isfinite(curves).all():
        raise ImageError(f"{path.name}: {int((~np.isfinite(curves)).any(1).sum())} tumour voxels have NaN or "
                         "infinite values; replace them and save again")
    return curves


def structural_on(case: Case, target_affine: np.ndarray, shape) -> np.ndarray:
    """The four sequences, each z-scored on its own brain voxels, resampled (linear) onto the target grid.

    Shapes:
        returns (4, *shape) float32 in order t1n, t1c, t2w, t2f.
    """
    out = np.zeros((len(MRI_SEQUENCES), *shape), np.float32)
    for i, seq in enumerate(MRI_SEQUENCES):
        path = case.images[seq]
        volume, affine = load_volume(path)
        try:
            normalised = zscore_brain(volume)
        except ValueError as err:
            raise ValueError(f"{case.patient_id}: {path.name}: {err}; check that this file holds the {seq} image") from err
        out[i] = resample(normalised, affine, target_affine, shape, order=1)
    return out


@register_stage("perfusion_input", needs=("dsc", "seg", *MRI_SEQUENCES), config_type=PerfusionInputConfig)
def perfusion_input(case: Case, config: PerfusionInputConfig) -> tuple[dict[str, np.ndarray], dict]:
    """Prepare one patient's perfusion inputs.

    Shapes:
        returns ``mask`` (X, Y, Z) uint8, ``curves`` (n, T) float32 (n = mask voxels), ``structural``
        (4, X, Y, Z) float32, ``offset`` (3,) int64, ``grid_shape`` (3,) int64, ``affine`` (4, 4) float64.
    """
    from gliotype.prepare.perfusion import scale_curves  # here: that module imports torch, `gliotype.prepare` need not

    dsc_path = case.images["dsc"]
    img = load_nifti(dsc_path, ndim=4)
    timepoints = check_timepoints(int(img.shape[3]), dsc_path)
    grid_shape, affine = tuple(int(s) for s in img.shape[:3]), np.asarray(img.affine, float)
    region = tumour_mask(case, config, grid_shape, affine)
    start, stop = bounding_box(region.mask, np.full(3, config.margin))
    box = tuple(slice(a, b) for a, b in zip(start, stop))
    mask = region.mask[box]
    curves = scale_curves(read_curves(img, dsc_path, box, mask), config.scaling).astype(np.float32, copy=False)
    structural = structural_on(case, crop_affine(affine, start), mask.shape)
    arrays = {"mask": mask.astype(np.uint8), "curves": curves, "structural": structural,
              "offset": start.astype(np.int64), "grid_shape": np.array(grid_shape, np.int64), "affine": affine}
    meta = {"n_voxels": int(mask.sum()), "timepoints": timepoints, "region": region.region,
            "region_fell_back": region.fell_back, "crop_shape": list(mask.shape)}
    return arrays, meta
