"""The tumour image stage: four MRI sequences masked by the tumour, cropped, resampled, padded to a cube.

Per sequence: z-score on brain voxels (non-zero voxels of that sequence: the images are skull-stripped),
then multiplied by the binary tumour region (DESIGN.md region rule), cropped to the region's bounding box
plus a margin, resampled to ``spacing`` mm (linear), and centre-padded (or centre-cropped) to ``size``^3.
The meta records everything needed to map a voxel of the cube back to the patient's original grid.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import ndimage

from gliotype.cohort import Case, region_mask
from gliotype.cohort.regions import mask_bounds
from gliotype.cohort.images import load_volume
from gliotype.cohort.layout import MRI_SEQUENCES
from gliotype.prepare.stage import StageConfig, register_stage


class TumourImageConfig(StageConfig):
    region: Literal["whole", "core", "enhancing"] = "core"
    spacing: float = 2.0
    size: int = 64
    margin_mm: float = 4.0


def brain_stats(volume: np.ndarray) -> tuple[np.floating, float]:
    """Mean and standard deviation (at least 1e-6) of a skull-stripped volume's non-zero (brain) voxels."""
    values = volume[volume != 0]
    if values.size < 2:
        raise ValueError("the image has no brain voxels (all zero)")
    return values.mean(), max(float(values.std()), 1e-6)


def zscore_brain(volume: np.ndarray, box: tuple[slice, ...] | None = None) -> np.ndarray:
    """Z-score a skull-stripped volume on its non-zero (brain) voxels; background stays 0.

    With ``box``, the statistics still come from the whole brain but only that crop is returned, which
    spares normalising the voxels a caller would throw away.
    """
    mean, std = brain_stats(volume)
    crop = volume if box is None else volume[box]
    out = np.zeros_like(crop, dtype=np.float32)
    brain = crop != 0
    out[brain] = (crop[brain] - mean) / std
    return out


def bounding_box(mask: np.ndarray, margin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start, stop) voxel indices of ``mask``'s bounding box grown by ``margin`` voxels, clipped to the grid."""
    start, stop = mask_bounds(mask)
    start = np.maximum(start - margin, 0)
    stop = np.minimum(stop + margin, mask.shape)
    return start, stop


def centre_fit(volume: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Centre-pad or centre-crop the last three axes to ``size``; returns the cube and the offset.

    ``offset`` maps cube voxel ``c`` to input voxel ``c - offset`` (negative offsets mean a crop).

    Shapes:
        volume: (C, X, Y, Z) -> cube (C, size, size, size), offset (3,).
    """
    shape = np.array(volume.shape[1:])
    offset = (size - shape) // 2
    cube = np.zeros((volume.shape[0], size, size, size), volume.dtype)
    src = [slice(max(-o, 0), max(-o, 0) + min(s, size)) for o, s in zip(offset, shape)]
    dst = [slice(max(o, 0), max(o, 0) + min(s, size)) for o, s in zip(offset, shape)]
    cube[(slice(None), *dst)] = volume[(slice(None), *src)]
    return cube, offset


@register_stage("tumour_image", needs=("mri", "seg"), config_type=TumourImageConfig)
def tumour_image(case: Case, config: TumourImageConfig) -> tuple[dict[str, np.ndarray], dict]:
    """Build the tumour cube of one patient.

    Shapes:
        returns ``image`` (4, size, size, size) float16 in sequence order t1n, t1c, t2w, t2f,
        and ``mask`` (size, size, size) uint8.
    """
    seg, affine = load_volume(case.images["seg"])
    region = region_mask(seg, config.region)
    if region.mask.sum() == 0:
        raise ValueError(f"{case.images['seg'].name}: the {config.region} tumour region is empty")
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(0))
    start, stop = bounding_box(region.mask, np.ceil(config.margin_mm / spacing).astype(int))
    box = tuple(slice(a, b) for a, b in zip(start, stop))
    zoom = spacing / config.spacing
    channels = []
    for seq in MRI_SEQUENCES:
        volume, _ = load_volume(case.images[seq])
        masked = zscore_brain(volume, box) * region.mask[box]
        channels.append(ndimage.zoom(masked, zoom, order=1, grid_mode=True, mode="grid-constant"))
    mask = ndimage.zoom(region.mask[box].astype(np.float32), zoom, order=1, grid_mode=True, mode="grid-constant") > 0.5
    cube, offset = centre_fit(np.stack([*channels, mask.astype(np.float32)]), config.size)
    meta = {"region": region.region, "region_fell_back": region.fell_back, "crop_start": start, "crop_stop": stop,
            "zoom": zoom, "offset": offset, "resampled_shape": mask.shape, "original_shape": seg.shape,
            "affine": affine, "tumour_fits": bool(np.all(np.array(mask.shape) <= config.size))}
    return {"image": cube[:4].astype(np.float16), "mask": cube[4].astype(np.uint8)}, meta
