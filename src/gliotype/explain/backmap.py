"""Map a tumour-cube map (a Grad-CAM, a mask) back onto the patient's scan, and write it as NIfTI.

The ``tumour_image`` stage (:mod:`gliotype.prepare.tumour_image`) built the cube as

    RAS+ volume -> crop [crop_start, crop_stop) -> ndimage.zoom (grid_mode) to resampled_shape
    -> centre_fit to the cube (cube voxel c <-> resampled voxel c - offset).

:func:`cube_to_original` undoes each step in reverse order; :func:`write_like` undoes the RAS+
reorientation that :func:`gliotype.cohort.images.load_volume` applied, so the file overlays the
patient's own scan in any viewer.
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from gliotype.prepare.cache import atomic_write_bytes

_META_KEYS = ("crop_start", "crop_stop", "offset", "resampled_shape", "original_shape")


def cube_to_original(cube: np.ndarray, meta: Mapping) -> np.ndarray:
    """Place a map defined on the tumour cube back on the patient's RAS+ grid.

    Voxels of the resampled tumour box that the cube did not cover (a cube smaller than the tumour)
    and everything outside the crop box are 0. Resampling is linear, as in the forward stage, so a
    binary cube map comes back as a soft map: threshold it at 0.5 to get a mask.

    Args:
        cube: the map on the cube, e.g. ``upsample_cam(...)[0]`` or the stage's ``mask``.
        meta: the ``tumour_image`` meta of that patient; values may be arrays or lists (the JSON sidecar).

    Returns:
        The map on the original grid, float32.

    Shapes:
        - cube: ``(S, S, S)``
        - output: ``meta["original_shape"]``, i.e. ``(X, Y, Z)``
    """
    geo = _geometry(meta)
    cube = np.asarray(cube, dtype=np.float32)
    if cube.ndim != 3:
        raise ValueError(f"cube_to_original: cube must be 3-D (S, S, S); got shape {cube.shape!r}. "
                         "For a Grad-CAM batch pass one map, e.g. upsample_cam(cam, S)[0].numpy()")
    resampled = uncentre(cube, geo["offset"], geo["resampled_shape"])
    crop_size = geo["crop_stop"] - geo["crop_start"]
    cropped = _zoom_to(resampled, crop_size)
    out = np.zeros(tuple(geo["original_shape"]), np.float32)
    out[tuple(slice(a, b) for a, b in zip(geo["crop_start"], geo["crop_stop"]))] = cropped
    return out


def uncentre(cube: np.ndarray, offset: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """Inverse of :func:`gliotype.prepare.tumour_image.centre_fit`: resampled voxel r = cube voxel r + offset.

    Shapes:
        cube: (S, S, S) -> (shape[0], shape[1], shape[2]); voxels the cube did not cover are 0.
    """
    out = np.zeros(tuple(shape), cube.dtype)
    lo = np.maximum(0, -offset)
    hi = np.minimum(shape, np.array(cube.shape) - offset)
    if np.all(hi > lo):
        src = tuple(slice(a + o, b + o) for a, b, o in zip(lo, hi, offset))
        out[tuple(slice(a, b) for a, b in zip(lo, hi))] = cube[src]
    return out


def write_like(volume_ras: np.ndarray, reference: str | Path, out: str | Path, dtype=np.float32) -> Path:
    """Write a RAS+ volume so that it has exactly the on-disk shape and affine of ``reference``.

    ``volume_ras`` lives on the grid :func:`gliotype.cohort.images.load_volume` gives for ``reference``
    (``nib.as_closest_canonical``); it is reoriented back to the reference's stored axis order and
    directions. The header is the reference's, with the data type set to ``dtype``, intensity scaling
    reset and the display range cleared. The file appears atomically (temporary file + rename).

    Args:
        volume_ras: the map on the reference's RAS+ grid.
        reference: the NIfTI the map belongs to (e.g. the patient's segmentation).
        out: ``.nii`` or ``.nii.gz`` path; missing folders are created.
        dtype: on-disk data type.

    Returns:
        ``out``.

    Shapes:
        volume_ras: ``(X, Y, Z)``, the shape of the reference after reorientation to RAS+.
    """
    reference, out = Path(reference), Path(out)
    if not out.name.endswith((".nii", ".nii.gz")):
        raise ValueError(f"write_like: the output must end in .nii or .nii.gz; got {out.name!r}")
    ref = nib.load(str(reference))
    data = from_canonical(np.asarray(volume_ras), ref.affine, ref.shape[:3], reference.name)
    header = ref.header.copy()
    header.set_data_dtype(dtype)
    img = nib.Nifti1Image(data.astype(dtype), ref.affine, header)
    img.header.set_slope_inter(1.0, 0.0)
    img.header["cal_min"], img.header["cal_max"] = 0.0, 0.0
    raw = img.to_bytes()
    atomic_write_bytes(out, gzip.compress(raw, mtime=0) if out.name.endswith(".gz") else raw)
    return out


def from_canonical(volume_ras: np.ndarray, affine: np.ndarray, shape: tuple, name: str = "reference") -> np.ndarray:
    """Reorient an array from the RAS+ (closest canonical) grid back to the axes of an image with ``affine``.

    Shapes:
        volume_ras: (X, Y, Z) in RAS+ -> (shape[0], shape[1], shape[2]) in the stored order.
    """
    ornt = nib.io_orientation(affine)
    back = nib.orientations.ornt_transform(nib.orientations.axcodes2ornt("RAS"), ornt)
    expected = [0, 0, 0]
    for axis, size in zip(ornt[:, 0].astype(int), shape):
        expected[axis] = int(size)
    expected = tuple(expected)
    if volume_ras.shape != expected:
        raise ValueError(f"write_like: the volume has shape {volume_ras.shape!r} but {name} loads as {expected!r} "
                         "in RAS+; map it to the patient's grid first (cube_to_original) and pass the image "
                         "it was derived from as the reference")
    return nib.orientations.apply_orientation(volume_ras, back)


def _geometry(meta: Mapping) -> dict[str, np.ndarray]:
    missing = [k for k in _META_KEYS if k not in meta]
    if missing:
        raise ValueError(f"cube_to_original: the meta lacks {missing!r}; pass the meta the tumour_image stage "
                         f"saved with the cube (it has {sorted(meta)!r})")
    geo = {k: np.asarray(meta[k], dtype=np.int64).reshape(-1) for k in _META_KEYS}
    bad = [k for k, v in geo.items() if v.shape != (3,)]
    if bad:
        raise ValueError(f"cube_to_original: meta entries {bad!r} must hold three integers each; "
                         f"got {[meta[k] for k in bad]!r}")
    return geo


def _zoom_to(volume: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """Linear resampling (grid mode, as the forward stage) to exactly ``shape``."""
    zoomed = ndimage.zoom(volume, np.asarray(shape) / np.array(volume.shape), order=1, grid_mode=True,
                          mode="grid-constant")
    if np.any(np.abs(np.array(zoomed.shape) - shape) > 1):
        raise ValueError(f"cube_to_original: resampling {volume.shape!r} gave {zoomed.shape!r}, not {tuple(shape)!r}")
    out = np.zeros(tuple(shape), zoomed.dtype)
    common = tuple(slice(0, min(a, b)) for a, b in zip(zoomed.shape, shape))
    out[common] = zoomed[common]
    return out
