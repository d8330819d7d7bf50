"""The tumour-region rule, in one place.

BraTS label maps: 1 necrosis / non-enhancing core, 2 oedema, and enhancing tumour as 4 (BraTS <= 2021)
or 3 (BraTS 2023). A binary mask (values 0/1) is a tumour mask with no sub-regions.

Regions:
    ``whole``: every non-zero voxel.
    ``core``: necrosis/non-enhancing core + enhancing tumour (labels 1, 3, 4).
    ``enhancing``: enhancing tumour only (labels 3, 4).

The default region is ``core``; where the core is empty (a low-grade glioma without enhancement or
necrosis) it falls back to ``whole``, and the fallback is reported so it can be recorded per patient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

REGIONS = ("whole", "core", "enhancing")
BRATS_LABELS = frozenset({0, 1, 2, 3, 4})


@dataclass(frozen=True)
class RegionMask:
    """A binary tumour mask and the region it actually holds (``requested`` may have fallen back)."""

    mask: np.ndarray
    requested: str
    region: str

    @property
    def fell_back(self) -> bool:
        return self.region != self.requested


def check_region(region: str) -> str:
    """Return ``region`` if known, else raise a ValueError listing the valid names."""
    if region not in REGIONS:
        raise ValueError(f"unknown tumour region {region!r}; choose one of {list(REGIONS)}")
    return region


def label_values(seg: np.ndarray) -> set[int]:
    """The distinct integer labels of a segmentation."""
    return {int(v) for v in np.unique(seg)}


def is_binary(seg: np.ndarray) -> bool:
    return label_values(seg) <= {0, 1}


def region_mask(seg: np.ndarray, region: str = "core", fallback: bool = True) -> RegionMask:
    """Binary mask of one tumour region of a BraTS label map or binary mask.

    Args:
        seg: integer label map, any shape.
        region: ``whole``, ``core`` or ``enhancing``.
        fallback: when the requested ``core``/``enhancing`` region is empty, return ``whole`` instead.

    Shapes:
        seg: (X, Y, Z) -> mask: (X, Y, Z) bool.
    """
    check_region(region)
    seg = np.asarray(seg)
    whole = seg > 0
    if region == "whole" or is_binary(seg):
        return RegionMask(whole, region, "whole")
    wanted = (1, 3, 4) if region == "core" else (3, 4)
    mask = np.isin(seg, wanted)
    if not mask.any() and fallback:
        return RegionMask(whole, region, "whole")
    return RegionMask(mask, region, region)
