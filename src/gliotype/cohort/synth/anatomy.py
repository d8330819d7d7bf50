"""Brain anatomy from nilearn's bundled MNI152 template, resampled per patient with a jitter.

Nothing is downloaded: nilearn ships the 1 mm MNI152 (2009c) T1 template, brain mask and grey and
white matter probability maps. A patient's anatomy is the template seen through a small random
affine (scale, rotation, translation), so patient world coordinates map to template coordinates by
``jitter @ x``.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from gliotype.cohort.synth.grids import Grid


@dataclass(frozen=True)
class Template:
    """The 1 mm MNI152 maps, float32 arrays of shape (197, 233, 189), and their affine."""

    t1: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    brain: np.ndarray
    affine: np.ndarray


@dataclass
class Tissue:
    """Tissue maps of one patient on one grid; every array has the grid's shape, float32.

    Attributes:
        gm, wm, csf: Tissue fractions, summing to 1 inside the brain and 0 outside.
        brain: Binary brain mask (bool).
        t1: The template's T1 intensity in [0, 1] (sulcal and deep-nuclei detail).
    """

    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    brain: np.ndarray
    t1: np.ndarray


@functools.lru_cache(maxsize=1)
def load_template() -> Template:
    """Load the bundled 1 mm MNI152 maps once per process (no network access)."""
    from nilearn import datasets

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t1 = datasets.load_mni152_template(resolution=1)
        maps = [
            np.asarray(img.get_fdata(), dtype=np.float32)
            for img in (
                t1,
                datasets.load_mni152_gm_template(resolution=1),
                datasets.load_mni152_wm_template(resolution=1),
                datasets.load_mni152_brain_mask(resolution=1),
            )
        ]
    return Template(*maps, affine=np.asarray(t1.affine, dtype=float))


def jitter_matrix(scale: np.ndarray, angles_deg: np.ndarray, shift_mm: np.ndarray) -> np.ndarray:
    """4 x 4 map from patient world mm to template world mm.

    Args:
        scale: Per-axis scale, shape (3,), near 1.
        angles_deg: Rotations about x, y, z in degrees, shape (3,).
        shift_mm: Translation in mm, shape (3,).
    """
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    out = np.eye(4)
    out[:3, :3] = rz @ ry @ rx @ np.diag(scale)
    out[:3, 3] = shift_mm
    return out


def _resample(volume: np.ndarray, matrix: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return ndimage.affine_transform(
        volume, matrix[:3, :3], offset=matrix[:3, 3], output_shape=shape, order=1, mode="constant"
    )


def render_tissue(grid: Grid, jitter: np.ndarray) -> Tissue:
    """Resample the template's tissue maps onto ``grid`` through a patient's ``jitter``.

    Args:
        grid: Target grid.
        jitter: Patient-to-template 4 x 4 matrix from :func:`jitter_matrix`.

    Returns:
        The patient's :class:`Tissue` on ``grid``.
    """
    tpl = load_template()
    matrix = np.linalg.inv(tpl.affine) @ jitter @ grid.affine
    brain = _resample(tpl.brain, matrix, grid.shape) > 0.5
    gm, wm, t1 = (np.clip(_resample(m, matrix, grid.shape), 0, 1) for m in (tpl.gm, tpl.wm, tpl.t1))
    total = gm + wm
    over = np.maximum(total, 1.0)
    gm, wm = gm / over * brain, wm / over * brain
    csf = np.clip(1.0 - gm - wm, 0, 1) * brain
    return Tissue(gm.astype(np.float32), wm.astype(np.float32), csf.astype(np.float32), brain, t1)


@functools.lru_cache(maxsize=1)
def location_candidates() -> tuple[np.ndarray, np.ndarray]:
    """Candidate tumour centres in template mm: (frontal-cortical (N, 3), elsewhere (M, 3)).

    Frontal-cortical: anterior (y > 5 mm), 12-20 mm deep from the brain surface, off the midline.
    Elsewhere: posterior to y = 0, 14-40 mm deep, above the cerebellum and brainstem.
    """
    tpl = load_template()
    brain = tpl.brain[::2, ::2, ::2] > 0.5
    depth = ndimage.distance_transform_edt(brain) * 2.0
    ijk = np.argwhere(brain)
    xyz = ijk * 2.0 + tpl.affine[:3, 3]
    d = depth[tuple(ijk.T)]
    x, y, z = xyz.T
    frontal = (y > 5) & (d >= 12) & (d <= 20) & (np.abs(x) > 12) & (z > -5)
    other = (y < 0) & (y > -85) & (d >= 14) & (d <= 40) & (z > -25) & (np.abs(x) > 10)
    return xyz[frontal].astype(float), xyz[other].astype(float)
