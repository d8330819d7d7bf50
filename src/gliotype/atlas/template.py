"""The MNI152 template that every patient is registered to: nilearn's bundled 2009 maps at 2 mm.

Choice: 2 mm (99 x 117 x 95 voxels) rather than 1 mm. The brain network samples a few thousand voxels
per region or pathway, which a 2 mm grid holds for every AAL region (the smallest, Amygdala_L, has 211
voxels), and the grid has 1.1 M voxels, 8 times fewer than at 1 mm, which registration and the stored
warp fields pay for. The T1 is brain-masked (multiplied by the
template brain mask) because the patients' images are skull-stripped. Nothing is downloaded: nilearn
ships these maps.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Template:
    """The template maps on one RAS+ grid.

    Attributes:
        t1: brain-masked T1 intensity in [0, 1], float32.
        brain: brain mask, bool.
        wm: white-matter probability in [0, 1], float32.
        affine: voxel index -> MNI world (RAS+ mm).
        shape: the grid's shape.

    Shapes:
        t1, brain, wm: (X, Y, Z) = ``shape`` ((99, 117, 95) at 2 mm); affine (4, 4).
    """

    t1: np.ndarray
    brain: np.ndarray
    wm: np.ndarray
    affine: np.ndarray
    shape: tuple[int, int, int]

    def world(self, flat_index: np.ndarray) -> np.ndarray:
        """World (RAS+ mm) coordinates of voxel centres given as flat C-order indices. Shapes: (N,) -> (N, 3)."""
        ijk = np.stack(np.unravel_index(np.asarray(flat_index), self.shape), -1).astype(float)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]


@functools.lru_cache(maxsize=2)
def load_template(resolution: int = 2) -> Template:
    """Load nilearn's MNI152 T1, brain mask and white-matter map at ``resolution`` mm (1 or 2), once per process."""
    if resolution not in (1, 2):
        raise ValueError(f"template resolution must be 1 or 2 mm, got {resolution!r}")
    from nilearn import datasets

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t1 = datasets.load_mni152_template(resolution=resolution)
        brain = datasets.load_mni152_brain_mask(resolution=resolution)
        wm = datasets.load_mni152_wm_template(resolution=resolution)
    mask = np.asarray(brain.get_fdata()) > 0.5
    t1_data = np.asarray(t1.get_fdata(), np.float32) * mask
    wm_data = np.clip(np.asarray(wm.get_fdata(), np.float32), 0, 1)
    shape = tuple(int(s) for s in t1.shape[:3])
    return Template(t1_data.astype(np.float32), mask, wm_data, np.asarray(t1.affine, float), shape)
