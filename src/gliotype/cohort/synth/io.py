"""Deterministic writers: the same arrays always give the same bytes (no timestamps anywhere)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from PIL import Image

GZIP_LEVEL = 1


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray, tr_s: float | None = None) -> None:
    """Write a NIfTI-1 image, gzipped with a zero mtime and no file name in the gzip header.

    Args:
        path: Output ``.nii.gz`` path.
        data: 3-D or 4-D array (time last).
        affine: 4 x 4 RAS+ voxel-to-world matrix (stored as both sform and qform, code 1).
        tr_s: Repetition time in seconds, stored as the 4th pixdim of a 4-D image.
    """
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    if tr_s is not None and data.ndim == 4:
        zooms = img.header.get_zooms()
        img.header.set_zooms((*zooms[:3], tr_s))
    img.update_header()
    header = img.header
    header.set_data_dtype(data.dtype)
    header["vox_offset"] = 352
    raw = header.binaryblock + b"\x00" * 4 + np.asarray(data).tobytes(order="F")
    Path(path).write_bytes(gzip.compress(raw, compresslevel=GZIP_LEVEL, mtime=0))


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Write an RGB uint8 image (H, W, 3) as PNG, without metadata."""
    Image.fromarray(rgb, mode="RGB").save(path, format="PNG", compress_level=6)


def write_json(path: Path, obj: dict) -> None:
    """Write JSON with sorted keys and a trailing newline."""
    Path(path).write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n")


def write_table(path: Path, frame: pd.DataFrame, sep: str = ",") -> None:
    """Write a CSV/TSV with ``\\n`` line endings and no index."""
    frame.to_csv(path, sep=sep, index=False, lineterminator="\n")


def write_pyramid(path: Path, rgb: np.ndarray, levels: int = 3, tile: int = 256) -> None:
    """Write a tiled, pyramidal RGB TIFF: level 0 in the main IFD, reduced levels as SubIFDs.

    Args:
        path: Output ``.tif``.
        rgb: Level-0 image, shape (H, W, 3) uint8; H and W multiples of ``tile * 2**(levels-1)``.
        levels: Number of pyramid levels, each half the size of the previous.
        tile: Tile side in pixels.
    """
    import tifffile

    options = {"tile": (tile, tile), "photometric": "rgb", "compression": "zlib", "metadata": None}
    with tifffile.TiffWriter(path) as tif:
        tif.write(rgb, subifds=levels - 1, resolution=(40000, 40000), resolutionunit="CENTIMETER", **options)
        level = rgb
        for k in range(1, levels):
            level = level.reshape(level.shape[0] // 2, 2, level.shape[1] // 2, 2, 3).mean((1, 3))
            level = level.round().astype(np.uint8)
            scale = 40000 / 2**k
            tif.write(level, subfiletype=1, resolution=(scale, scale), resolutionunit="CENTIMETER", **options)
