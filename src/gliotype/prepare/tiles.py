"""Tiling a histology image: where its tissue is, which tiles cover it, and the tiles one at a time.

Given an open :class:`~gliotype.prepare.slide.Slide` (:func:`gliotype.prepare.slide.open_slide`):

* :func:`tissue_mask` finds the stained pixels of a thumbnail (Otsu on saturation, specks and holes
  removed);
* :func:`resolve_downsample` turns a magnification, microns per pixel or downsample into level-0 pixels
  per tile pixel, refusing to upsample;
* :func:`tile_grid` lays square tiles over the slide at that resolution, in row-major order, and keeps
  those with enough tissue (a :class:`TileGrid`: level-0 coordinates, the level read, tissue fractions);
* :func:`iter_tiles` / :func:`read_tile` read them one at a time, from the coarsest level at or below the
  wanted downsample, resized when that level is not exact (memory: one tile and the TIFF tiles it touches).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from gliotype.prepare.slide import Slide, resize

MAGNIFICATION_MPP = 10.0
"""Microns per pixel times magnification: 40x is ~0.25 um/pixel, 20x ~0.5 (the scanners' convention)."""
SATURATION_CLIP = (0.04, 0.15)
"""Bounds of the Otsu threshold on saturation: glass is below ~0.03, H&E-stained tissue above ~0.15."""
MIN_VALUE = 20
"""Pixels darker than this (max channel) are scanner borders or ink, not tissue, whatever their hue."""


def tissue_mask(thumbnail: np.ndarray, min_object: int | None = None) -> np.ndarray:
    """Tissue pixels of a slide thumbnail: stained (saturated) pixels, without specks or pinholes.

    The threshold is Otsu's on the HSV saturation ``(max - min) / max``, clipped to
    :data:`SATURATION_CLIP`, so an image that is all tissue (an ROI) stays whole instead of being cut in
    two by Otsu, and a blank one gives an empty mask. Near-black pixels (:data:`MIN_VALUE`) are never
    tissue. Connected tissue specks and background holes smaller than ``min_object`` pixels (default:
    1/2000 of the thumbnail, at least 4) are removed (8-connectivity, scikit-image labelling).

    Shapes:
        thumbnail: (h, w, 3) uint8 -> (h, w) bool.
    """
    from skimage.filters import threshold_otsu

    rgb = thumbnail.astype(np.float32)
    high, low = rgb.max(-1), rgb.min(-1)
    saturation = np.where(high > 0, (high - low) / np.maximum(high, 1), 0)
    spread = saturation.max() > saturation.min()
    threshold = float(np.clip(threshold_otsu(saturation) if spread else 1.0, *SATURATION_CLIP))
    mask = (saturation > threshold) & (high >= MIN_VALUE)
    min_object = max(4, mask.size // 2000) if min_object is None else min_object
    mask = _drop_small(mask, min_object)
    return ~_drop_small(~mask, min_object)


def _drop_small(mask: np.ndarray, min_size: int) -> np.ndarray:
    """``mask`` without its connected components of fewer than ``min_size`` pixels."""
    from skimage.measure import label

    labels = label(mask, connectivity=2)
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_size
    keep[0] = False
    return keep[labels]


def resolve_downsample(slide: Slide, *, magnification: float | None = None, mpp: float | None = None,
                       downsample: float | None = None) -> float:
    """Level-0 pixels per output pixel for the wanted resolution; at most one may be given (none: 1).

    ``magnification`` uses the slide's microns per pixel (``mpp = 10 / magnification``), or its objective
    power when the mpp is unknown. Upsampling (asking 40x of a 20x scan) is refused, with 5% tolerance.
    """
    given = {k: v for k, v in (("magnification", magnification), ("mpp", mpp), ("downsample", downsample)) if v is not None}
    if len(given) > 1:
        raise ValueError(f"give one of magnification, mpp or downsample, not {len(given)}: got {given}")
    if downsample is not None or not given:
        wanted = float(downsample or 1.0)
    elif slide.mpp is not None:
        wanted = (mpp if mpp is not None else MAGNIFICATION_MPP / magnification) / slide.mpp
    elif magnification is not None and slide.objective_power is not None:
        wanted = slide.objective_power / magnification
    else:
        raise ValueError(f"{slide.path.name}: the file records no microns per pixel or objective power, so "
                         f"{given} cannot be located; give downsample= instead (e.g. 2 for 20x from a 40x scan)")
    if wanted < 0.95:
        raise ValueError(f"{slide.path.name}: {given or 'downsample 1'} would enlarge the slide {1 / wanted:.2f} times "
                         f"(level 0 is {slide.mpp or '?'} um/pixel, objective {slide.objective_power or '?'}x); "
                         "ask for a lower magnification, a larger mpp or a downsample >= 1")
    return max(wanted, 1.0)


@dataclass(frozen=True)
class TileGrid:
    """The tiles of one slide: where to read them, and how much tissue each covers.

    Attributes:
        coords: ``(x, y, level)`` per tile: top-left in level-0 pixels, the level it is read from.
        tissue: tissue fraction of each tile, from :func:`tissue_mask` on a thumbnail (1.0 unmeasured).
        tile_size: side of a tile as returned, pixels.
        downsample: level-0 pixels per tile pixel.

    Shapes:
        coords: (n, 3) int64, tissue: (n,) float32.
    """

    coords: np.ndarray
    tissue: np.ndarray
    tile_size: int
    downsample: float

    @property
    def footprint(self) -> float:
        """Side of a tile in level-0 pixels."""
        return self.tile_size * self.downsample

    def __len__(self) -> int:
        return len(self.coords)

    def subset(self, index: np.ndarray) -> TileGrid:
        return TileGrid(self.coords[index], self.tissue[index], self.tile_size, self.downsample)

    def read_size(self, slide: Slide, level: int) -> int:
        """Side of the box read at ``level`` for one tile (``tile_size`` unless it must be resized)."""
        ratio = self.downsample / slide.level_downsamples[level]
        return self.tile_size if abs(ratio - 1) < 0.01 else max(1, round(self.tile_size * ratio))


def tile_grid(slide: Slide, tile_size: int = 224, *, magnification: float | None = None, mpp: float | None = None,
              downsample: float | None = None, tissue_fraction_min: float = 0.5, mask_side: int | None = None) -> TileGrid:
    """The tiles covering a slide at the wanted resolution, in row-major order, with enough tissue.

    Tiles are read from the coarsest level at or below the wanted downsample and resized when that
    level is not exact (:meth:`TileGrid.read_size`). Edge tiles reach past the image (white there, so
    they count as background). ``tissue_fraction_min = 0`` keeps every tile and builds no mask.

    Args:
        slide: an open slide.
        tile_size: side of a tile, pixels.
        magnification, mpp, downsample: the resolution, at most one (:func:`resolve_downsample`).
        tissue_fraction_min: fraction of a tile's area that must be tissue.
        mask_side: thumbnail side for the tissue mask; default about 8 pixels per tile, 512 to 2048.
    """
    ds = resolve_downsample(slide, magnification=magnification, mpp=mpp, downsample=downsample)
    footprint, (width, height) = tile_size * ds, slide.dimensions
    ny, nx = math.ceil(height / footprint - 1e-9), math.ceil(width / footprint - 1e-9)
    rows, cols = np.divmod(np.arange(nx * ny), nx)
    x, y = np.rint(cols * footprint).astype(np.int64), np.rint(rows * footprint).astype(np.int64)
    coords = np.stack([x, y, np.full_like(x, slide.best_level(ds))], 1)
    if tissue_fraction_min <= 0:
        return TileGrid(coords, np.ones(len(coords), np.float32), tile_size, ds)
    side = mask_side or int(np.clip(8 * max(width, height) / footprint, 512, 2048))
    mask = tissue_mask(slide.thumbnail(side))
    tissue = tissue_fractions(mask, (mask.shape[1] / width, mask.shape[0] / height), x, y, footprint)
    keep = tissue >= tissue_fraction_min
    return TileGrid(coords[keep], tissue[keep], tile_size, ds)


def tissue_fractions(mask: np.ndarray, scale: tuple[float, float], x: np.ndarray, y: np.ndarray,
                     footprint: float) -> np.ndarray:
    """Fraction of each square ``(x, y, footprint)`` (level-0 pixels) that ``mask`` marks as tissue.

    ``scale`` is mask pixels per level-0 pixel along x and y; what lies outside the mask is background.

    Shapes:
        mask: (h, w) bool; x, y: (n,) -> (n,) float32.
    """
    table = np.pad(mask.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    x0, y0 = np.floor(x * scale[0]).astype(int), np.floor(y * scale[1]).astype(int)
    x1 = np.maximum(np.ceil((x + footprint) * scale[0]).astype(int), x0 + 1)
    y1 = np.maximum(np.ceil((y + footprint) * scale[1]).astype(int), y0 + 1)
    area = (x1 - x0) * (y1 - y0)
    h, w = mask.shape
    x0, x1, y0, y1 = np.clip(x0, 0, w), np.clip(x1, 0, w), np.clip(y0, 0, h), np.clip(y1, 0, h)
    count = table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]
    return (count / area).astype(np.float32)


def read_tile(slide: Slide, grid: TileGrid, index: int) -> np.ndarray:
    """Tile ``index`` of ``grid``.

    Shapes:
        returns (tile_size, tile_size, 3) uint8.
    """
    x, y, level = (int(v) for v in grid.coords[index])
    side = grid.read_size(slide, level)
    return resize(slide.read_region((x, y), level, (side, side)), (grid.tile_size, grid.tile_size))


def iter_tiles(slide: Slide, grid: TileGrid) -> Iterator[np.ndarray]:
    """The tiles of ``grid``, read one at a time (memory: one tile and the TIFF tiles it touches).

    Shapes:
        yields (tile_size, tile_size, 3) uint8.
    """
    for index in range(len(grid)):
        yield read_tile(slide, grid, index)
