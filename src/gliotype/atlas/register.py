"""Registration of a patient's T1 to the MNI152 template with ANTs (ANTsPy), and mapping through it.

Choice of ANTs over SimpleITK: the paper registered with ANTs (SyN), and ANTsPy gives the same
Affine + SyN pipeline in one call. Measured on the real TCGA patient (TCGA-DU-7294, 240 x 240 x 155,
1 mm) on this project's 2-core machine: Affine 4.6 s, SyN 8.9 s, Dice 0.95 (Affine) to 0.96 (SyN)
between the warped patient brain mask and the template brain mask (10-27 s when other work shares
the cores). Since the T1 is block-averaged to the template's 2 mm first (:func:`register`), SyN on that
patient takes 13.6 instead of 20.7 CPU seconds (1 ITK thread) and its Dice is 0.979 instead of 0.963.

Frames: our arrays and affines are RAS+ (:func:`~gliotype.cohort.images.load_volume`); ANTs works in
LPS physical space. Images are handed to ANTs with origin and direction converted from the affine
(x and y negated), so ANTs sees the same voxels at the same places, and points are negated in x and y
on the way in and out. Moving = the patient T1, fixed = the brain-masked template; the patient brain
mask is ``t1 != 0`` (the images are skull-stripped).

Transforms: ANTs' forward list (``[warp, affine]``) pulls template-grid images from the patient, so
it warps *images* patient -> template; points go the other way round, so patient points are mapped to
the template with the *inverse* list (``[affine (inverted), inverse warp]``), and template images are
pulled back to the patient grid with it too. The transform files' bytes are kept in the
:class:`Registration` (no paths), so a registration can be cached in an ``.npz`` and replayed; every
use writes them to a temporary folder that is removed afterwards.

Storage: a SyN warp field on the 2 mm template is 99 x 117 x 95 x 3 float32, 11 MB as ANTs writes it
(gzip), and a registration holds two (forward and inverse). Its displacements are rounded to
:data:`WARP_STEP_MM` (1/64 mm) before they are stored, which makes them compress to about 3.4 MB each;
measured on the real patient, points then move by at most 0.008 mm.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gliotype.atlas.template import Template, load_template

log = logging.getLogger(__name__)

TRANSFORMS = ("SyN", "Affine", "Rigid")
"""The ANTs transform types offered (``type_of_transform`` of ``ants.registration``)."""
INTERPOLATIONS = ("linear", "nearestNeighbor")
WARP_STEP_MM = 1 / 64
"""Warp-field displacements are stored rounded to this step (mm), which lets them compress 3-fold."""
_LPS = np.array([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class Registration:
    """One patient -> template registration, self-contained.

    Attributes:
        transform: the ANTs transform type (``"SyN"``, ``"Affine"``, ``"Rigid"``).
        forward, forward_suffixes: bytes of ANTs' ``fwdtransforms`` files in ANTs' order, and each
            file's suffix (``".nii.gz"`` for a warp field, ``".mat"`` for an affine).
        inverse, inverse_suffixes: the same for ``invtransforms``.
        dice: Dice of the warped patient brain mask with the template brain mask.
    """

    transform: str
    forward: tuple[bytes, ...]
    forward_suffixes: tuple[str, ...]
    inverse: tuple[bytes, ...]
    inverse_suffixes: tuple[str, ...]
    dice: float


def ants_image(volume: np.ndarray, affine: np.ndarray):
    """An ANTs image of a RAS+ array and its affine (LPS origin and direction; voxel order unchanged).

    Shapes:
        volume (X, Y, Z), affine (4, 4) -> ants image of shape (X, Y, Z).
    """
    import ants

    affine = np.asarray(affine, float)
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(0))
    direction = (_LPS[:, None] * affine[:3, :3]) / spacing
    data = np.ascontiguousarray(volume, dtype=np.float32)
    return ants.from_numpy(data, origin=tuple(_LPS * affine[:3, 3]), spacing=tuple(spacing), direction=direction)


def _suffix(path: str) -> str:
    return ".nii.gz" if path.endswith(".nii.gz") else Path(path).suffix


def _write(blobs: tuple[bytes, ...], suffixes: tuple[str, ...], folder: str, tag: str) -> list[str]:
    """Write transform bytes to ``folder``; returns the paths in order."""
    paths = []
    for i, (blob, suffix) in enumerate(zip(blobs, suffixes)):
        path = Path(folder) / f"{tag}{i}{suffix}"
        path.write_bytes(blob)
        paths.append(str(path))
    return paths


def _stored(path: str) -> bytes:
    """The bytes to keep of a transform file: warp fields with displacements rounded to WARP_STEP_MM."""
    if not path.endswith(".nii.gz"):
        return Path(path).read_bytes()
    import nibabel as nib

    img = nib.load(path)
    field = np.round(np.asarray(img.dataobj, np.float32) / WARP_STEP_MM) * WARP_STEP_MM
    rounded = path[: -len(".nii.gz")] + "_rounded.nii.gz"
    nib.save(nib.Nifti1Image(field.astype(np.float32), img.affine, img.header), rounded)
    return Path(rounded).read_bytes()


def _inverted(suffixes: tuple[str, ...]) -> list[bool]:
    """ANTs' ``whichtoinvert`` for an inverse list: affines are inverted, inverse warps are not."""
    return [s == ".mat" for s in suffixes]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean masks (0 when both are empty)."""
    total = int(a.sum()) + int(b.sum())
    return 2.0 * int(np.logical_and(a, b).sum()) / total if total else 0.0


def at_spacing(volume: np.ndarray, affine: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Block-average a volume finer than ``spacing`` mm down to about ``spacing`` (linear, grid mode).

    A 1 mm image halved to 2 mm averages each 2x2x2 block exactly (the linear sample at a block's
    centre). Volumes already at least ``spacing / 1.25`` coarse are returned unchanged.

    Shapes:
        volume (X, Y, Z), affine (4, 4) -> (X', Y', Z') and its affine (4, 4), the same world extent.
    """
    from scipy import ndimage

    voxel = np.sqrt((affine[:3, :3] ** 2).sum(0))
    if np.all(voxel * 1.25 >= spacing):
        return volume, affine
    small = ndimage.zoom(np.asarray(volume, np.float32), np.minimum(voxel / spacing, 1.0), order=1,
                         grid_mode=True, mode="grid-constant")
    step = np.array(volume.shape) / np.array(small.shape)
    out = np.array(affine, float)
    out[:3, :3] = affine[:3, :3] * step
    out[:3, 3] = affine[:3, 3] + affine[:3, :3] @ ((step - 1) / 2)
    return small, out


def register(t1: np.ndarray, affine: np.ndarray, template: Template | None = None, transform: str = "SyN",
             seed: int = 0, min_dice: float = 0.8) -> Registration:
    """Register a skull-stripped T1 (moving) to the brain-masked template (fixed).

    The T1 is first block-averaged to the template's spacing (:func:`at_spacing`) where it is finer: the
    metric is computed on the template grid anyway, and on a 1 mm BraTS T1 this cuts the registration
    time 2.3-fold (the transforms are in world space and apply to the full-resolution images unchanged).

    Args:
        t1: the patient's T1, RAS+, zero outside the brain.
        affine: its voxel -> world (RAS+ mm) affine.
        template: the fixed image (default :func:`load_template` at 2 mm).
        transform: one of :data:`TRANSFORMS`.
        seed: ANTs' random seed (metric sampling).
        min_dice: the smallest acceptable Dice of the warped brain mask with the template brain.

    Shapes:
        t1 (X, Y, Z), affine (4, 4).

    Raises:
        ValueError: unknown transform, empty T1, or a Dice below ``min_dice`` (the message gives it).
    """
    import ants

    template = template or load_template()
    if transform not in TRANSFORMS:
        raise ValueError(f"unknown registration transform {transform!r}; choose one of {list(TRANSFORMS)}")
    brain = np.asarray(t1) != 0
    if not brain.any():
        raise ValueError("the T1 is all zero: there is no brain to register")
    template_spacing = float(np.sqrt((template.affine[:3, :3] ** 2).sum(0)).min())
    fixed, moving = ants_image(template.t1, template.affine), ants_image(*at_spacing(t1, affine, template_spacing))
    with tempfile.TemporaryDirectory(prefix="gliotype-ants-") as tmp:
        result = ants.registration(fixed, moving, type_of_transform=transform, random_seed=seed,
                                   outprefix=str(Path(tmp) / "reg_"))
        fwd, inv = list(result["fwdtransforms"]), list(result["invtransforms"])
        warped = ants.apply_transforms(fixed, ants_image(brain, affine), fwd, interpolator="linear",
                                       whichtoinvert=[False] * len(fwd))
        reg = Registration(transform, tuple(map(_stored, fwd)), tuple(map(_suffix, fwd)),
                           tuple(map(_stored, inv)), tuple(map(_suffix, inv)),
                           dice(warped.numpy() > 0.5, template.brain))
    log.debug("registered with %s: Dice %.3f", transform, reg.dice)
    if reg.dice < min_dice:
        raise ValueError(f"registration to MNI152 failed: the warped brain mask overlaps the template brain by "
                         f"Dice {reg.dice:.3f} < min_dice {min_dice}; check that the T1 is skull-stripped and has "
                         "a correct affine, or lower min_dice")
    return reg


def _check_interpolation(interpolation: str) -> None:
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {interpolation!r}; choose one of {list(INTERPOLATIONS)}")


def to_template(reg: Registration, volume: np.ndarray, affine: np.ndarray, template: Template | None = None,
                interpolation: str = "linear") -> np.ndarray:
    """Warp a patient-grid volume onto the template grid.

    Shapes:
        volume (X, Y, Z) with ``affine`` (4, 4) -> (template.shape) float32.
    """
    import ants

    _check_interpolation(interpolation)
    template = template or load_template()
    with tempfile.TemporaryDirectory(prefix="gliotype-ants-") as tmp:
        paths = _write(reg.forward, reg.forward_suffixes, tmp, "fwd")
        out = ants.apply_transforms(ants_image(template.t1, template.affine), ants_image(volume, affine), paths,
                                    interpolator=interpolation, whichtoinvert=[False] * len(paths))
    return out.numpy().astype(np.float32)


def from_template(reg: Registration, volume_on_template: np.ndarray, shape: tuple[int, int, int],
                  affine: np.ndarray, interpolation: str = "linear", template: Template | None = None) -> np.ndarray:
    """Pull a template-grid volume back onto a patient grid (e.g. an importance map onto the patient's T1).

    Shapes:
        volume_on_template (template.shape) -> ``shape`` float32, on the RAS+ grid of ``affine`` (4, 4).
    """
    import ants

    _check_interpolation(interpolation)
    template = template or load_template()
    if tuple(volume_on_template.shape) != tuple(template.shape):
        raise ValueError(f"the volume has shape {tuple(volume_on_template.shape)}, not the template's "
                         f"{template.shape}; pass the template it was made on")
    with tempfile.TemporaryDirectory(prefix="gliotype-ants-") as tmp:
        paths = _write(reg.inverse, reg.inverse_suffixes, tmp, "inv")
        out = ants.apply_transforms(ants_image(np.zeros(shape, np.float32), affine),
                                    ants_image(volume_on_template, template.affine), paths,
                                    interpolator=interpolation, whichtoinvert=_inverted(reg.inverse_suffixes))
    return out.numpy().astype(np.float32)


def points_to_template(reg: Registration, points_mm: np.ndarray) -> np.ndarray:
    """Map patient world points (RAS+ mm) to template world points (MNI RAS+ mm).

    Shapes:
        points_mm (N, 3) -> (N, 3) float64.
    """
    import ants
    import pandas as pd

    points = np.asarray(points_mm, float).reshape(-1, 3)
    if len(points) == 0:
        return points.copy()
    frame = pd.DataFrame(points * _LPS, columns=["x", "y", "z"])
    with tempfile.TemporaryDirectory(prefix="gliotype-ants-") as tmp:
        paths = _write(reg.inverse, reg.inverse_suffixes, tmp, "inv")
        out = ants.apply_transforms_to_points(3, frame, paths, whichtoinvert=_inverted(reg.inverse_suffixes))
    return out[["x", "y", "z"]].to_numpy(float) * _LPS


def registration_arrays(reg: Registration) -> dict[str, np.ndarray]:
    """The transform files as uint8 arrays (``reg_forward_<i>``, ``reg_inverse_<i>``), for an ``.npz``."""
    arrays = {f"reg_forward_{i}": np.frombuffer(b, np.uint8) for i, b in enumerate(reg.forward)}
    arrays.update({f"reg_inverse_{i}": np.frombuffer(b, np.uint8) for i, b in enumerate(reg.inverse)})
    return arrays


def registration_meta(reg: Registration) -> dict:
    """The JSON-able rest of a registration (``reg_`` keys), to store beside :func:`registration_arrays`."""
    return {"reg_transform": reg.transform, "reg_forward_suffixes": list(reg.forward_suffixes),
            "reg_inverse_suffixes": list(reg.inverse_suffixes), "reg_dice": reg.dice}


def registration_from_arrays(arrays: dict[str, np.ndarray], meta: dict) -> Registration:
    """Rebuild a :class:`Registration` from :func:`registration_arrays` and :func:`registration_meta`."""
    try:
        fwd_suffixes, inv_suffixes = tuple(meta["reg_forward_suffixes"]), tuple(meta["reg_inverse_suffixes"])
        forward = tuple(np.asarray(arrays[f"reg_forward_{i}"], np.uint8).tobytes() for i in range(len(fwd_suffixes)))
        inverse = tuple(np.asarray(arrays[f"reg_inverse_{i}"], np.uint8).tobytes() for i in range(len(inv_suffixes)))
    except KeyError as err:
        raise ValueError(f"the prepared data has no registration ({err.args[0]!r} is missing); "
                         "prepare it again with the brain_voxels stage") from err
    return Registration(str(meta["reg_transform"]), forward, fwd_suffixes, inverse, inv_suffixes,
                        float(meta["reg_dice"]))
