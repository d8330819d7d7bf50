"""Histology images behind one reader: ROI tiles (PNG/JPEG) and whole-slide images, read region by region.

:func:`open_slide` returns a :class:`Slide` for any histology file of a cohort (DESIGN.md Contract 1):

* TIFF-family files (``.tif``, ``.svs``, ``.ndpi``, ...) through ``tiffslide``, which decodes only the
  TIFF tiles (or strips) a region touches, so a slide is never loaded whole; formats tiffslide cannot
  read (``.mrxs``, ``.vms``, ...) through ``openslide-python`` when it is installed;
* PNG/JPEG/BMP ROI images through Pillow, decoded once (these formats have no random access).

Coordinates follow OpenSlide: a region's ``location`` is ``(x, y)`` in level-0 pixels, its ``size`` is
``(width, height)`` in pixels of the level read; what lies outside the image reads as white. The
microns per pixel (``mpp``) come from the file (Aperio/NDPI metadata, TIFF resolution tags, PNG/JPEG
dpi) and are ``None`` when missing or implausible for a microscope (outside 0.05-20 um: a 72 dpi screen
default is not a magnification).

Tiling a slide: :func:`tissue_mask` on a thumbnail, :func:`tile_grid` (the tissue tiles at a chosen
magnification, microns per pixel or downsample) and :func:`iter_tiles` (one tile at a time).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

BACKGROUND = 255
"""Value of every channel outside the image: glass is white."""
PIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
MPP_RANGE = (0.05, 20.0)
"""Microns per pixel accepted as a microscope's (100x oil is ~0.05, a 0.5x overview ~20)."""
THUMBNAIL_BLOCK = 1024
"""Side, in pixels of the level read, of the blocks a thumbnail is built from (bounds its memory)."""


class Slide:
    """One histology image: a pyramid of levels, read region by region.

    Subclasses provide :meth:`_read_inside` (a box within one level) and :meth:`close`.

    Attributes:
        path: the file.
        level_dimensions: ``(width, height)`` of each level, level 0 the full resolution.
        level_downsamples: level-0 pixels per pixel of each level (1.0 for level 0).
        mpp: microns per level-0 pixel, ``None`` when unknown.
        objective_power: the scanner's objective magnification (20, 40), ``None`` when unknown.
    """

    def __init__(self, path: Path, level_dimensions, level_downsamples, mpp: float | None,
                 objective_power: float | None = None):
        self.path = Path(path)
        self.level_dimensions = tuple((int(w), int(h)) for w, h in level_dimensions)
        self.level_downsamples = tuple(float(d) for d in level_downsamples)
        self.mpp = plausible_mpp(mpp, self.path)
        self.objective_power = float(objective_power) if objective_power else None

    @property
    def dimensions(self) -> tuple[int, int]:
        """``(width, height)`` of level 0."""
        return self.level_dimensions[0]

    @property
    def level_count(self) -> int:
        return len(self.level_dimensions)

    def best_level(self, downsample: float) -> int:
        """The coarsest level whose downsample is at most ``downsample`` (1% tolerance): never upsample."""
        fits = [i for i, d in enumerate(self.level_downsamples) if d <= downsample * 1.01]
        return max(fits, key=lambda i: self.level_downsamples[i]) if fits else 0

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        """The pixels of a ``size = (w, h)`` box of ``level`` whose top-left is level-0 pixel ``location``.

        Shapes:
            returns (h, w, 3) uint8 RGB; white where the box leaves the image.
        """
        if not 0 <= level < self.level_count:
            raise ValueError(f"{self.path.name}: level {level!r} does not exist; the slide has levels "
                             f"0..{self.level_count - 1} with downsamples {self.level_downsamples}")
        ds = self.level_downsamples[level]
        return self.read_level(level, math.floor(location[0] / ds), math.floor(location[1] / ds), *size)

    def read_level(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        """Like :meth:`read_region`, with the top-left ``(x, y)`` in pixels of ``level``.

        Shapes:
            returns (h, w, 3) uint8 RGB.
        """
        out = np.full((h, w, 3), BACKGROUND, np.uint8)
        width, height = self.level_dimensions[level]
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
        if x1 > x0 and y1 > y0:
            try:
                inside = self._read_inside(level, x0, y0, x1 - x0, y1 - y0)
            except Exception as err:  # decoders raise many types for a damaged file
                raise ValueError(unreadable(self.path, err, "its pixel data cannot be decoded")) from err
            out[y0 - y:y1 - y, x0 - x:x1 - x] = as_rgb(inside, self.path)
        return out

    def thumbnail(self, max_side: int) -> np.ndarray:
        """The whole image shrunk (area average) so that its longer side is at most ``max_side``.

        Built from the coarsest level that is still at least as large, in blocks of at most
        :data:`THUMBNAIL_BLOCK` pixels, so a slide without a pyramid is never decoded whole.

        Shapes:
            returns (th, tw, 3) uint8 with ``max(th, tw) == min(max_side, max(width, height))``.
        """
        width, height = self.dimensions
        scale = min(1.0, max_side / max(width, height))
        tw, th = max(1, round(width * scale)), max(1, round(height * scale))
        level = self.best_level(1 / scale)
        lw, lh = self.level_dimensions[level]
        fx, fy = lw / tw, lh / th
        step = max(1, int(THUMBNAIL_BLOCK // max(fx, fy)))
        out = np.empty((th, tw, 3), np.uint8)
        for ty in range(0, th, step):
            for tx in range(0, tw, step):
                ty1, tx1 = min(ty + step, th), min(tx + step, tw)
                x0, y0, x1, y1 = round(tx * fx), round(ty * fy), round(tx1 * fx), round(ty1 * fy)
                block = self.read_level(level, x0, y0, max(x1 - x0, 1), max(y1 - y0, 1))
                out[ty:ty1, tx:tx1] = resize(block, (tx1 - tx, ty1 - ty))
        return out

    def _read_inside(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        """Release the file."""

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.path.name!r}, dimensions={self.dimensions}, "
                f"levels={self.level_count}, mpp={self.mpp})")


class ImageSlide(Slide):
    """A PNG/JPEG/BMP ROI: one level, decoded once when opened."""

    def __init__(self, path: Path):
        try:
            with Image.open(path) as im:
                im.load()
                dpi = im.info.get("dpi")
                pixels = np.asarray(im.convert("RGBA") if "A" in im.getbands() else im.convert("RGB"))
        except Image.DecompressionBombError as err:
            raise ValueError(f"{path.name}: too large for a PNG/JPEG ROI, which is decoded whole ({err}); convert "
                             "it to a tiled pyramidal TIFF (e.g. `vips tiffsave IN OUT.tif --tile --pyramid`)") from err
        except Exception as err:  # Pillow raises OSError, SyntaxError, ValueError ... for a damaged file
            raise ValueError(unreadable(path, err, "it is not a readable image")) from err
        self._pixels = as_rgb(pixels, path)
        mpp = 25400.0 / float(dpi[0]) if dpi and float(dpi[0]) > 0 else None
        h, w = self._pixels.shape[:2]
        super().__init__(path, [(w, h)], [1.0], mpp)

    def _read_inside(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        return self._pixels[y:y + h, x:x + w]

    def close(self) -> None:
        self._pixels = np.empty((0, 0, 3), np.uint8)


class OpenSlideLike(Slide):
    """A whole-slide image opened by tiffslide (or openslide-python, which has the same interface)."""

    def __init__(self, path: Path, handle, prefix: str):
        self._handle = handle
        self._as_array = prefix == "tiffslide"
        props = handle.properties
        super().__init__(path, handle.level_dimensions, handle.level_downsamples,
                         _float(props.get(f"{prefix}.mpp-x")), _float(props.get(f"{prefix}.objective-power")))

    def _read_inside(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        ds = self.level_downsamples[level]
        # the backend maps level-0 -> level pixels with int(x0 / ds): ceil makes that land exactly on x
        location = (math.ceil(x * ds - 1e-6), math.ceil(y * ds - 1e-6))
        if self._as_array:
            return self._handle.read_region(location, level, (w, h), as_array=True, padding=False)
        return np.asarray(self._handle.read_region(location, level, (w, h)))

    def close(self) -> None:
        self._handle.close()


def open_slide(path: str | Path) -> Slide:
    """Open a histology file: an ROI image or a whole-slide image (see the module docstring).

    Raises:
        ValueError: the file is missing, damaged or not an image; the message names it and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such histology file; check the path (a cohort keeps them in <patient>/histology/)")
    if path.suffix.lower() in PIL_SUFFIXES:
        return ImageSlide(path)
    errors = []
    for opener in (_open_tiffslide, _open_openslide):
        try:
            return opener(path)
        except ImportError:
            continue
        except Exception as err:  # tifffile/openslide raise their own error types for a foreign file
            errors.append(err)
    hint = "" if _has_openslide() else "; for formats other than TIFF, install openslide-python and openslide-bin"
    raise ValueError(unreadable(path, errors[0] if errors else None, "it is not a readable slide") + hint)


def _open_tiffslide(path: Path) -> Slide:
    import tiffslide

    return OpenSlideLike(path, tiffslide.TiffSlide(path), "tiffslide")


def _open_openslide(path: Path) -> Slide:
    import openslide

    return OpenSlideLike(path, openslide.OpenSlide(str(path)), "openslide")


def _has_openslide() -> bool:
    import importlib.util

    return importlib.util.find_spec("openslide") is not None


def unreadable(path: Path, err: Exception | None, what: str) -> str:
    """The one-line message for a histology file that cannot be read."""
    cause = f" ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})" if err is not None else ""
    return (f"{path.name}: {what}{cause}; the file is damaged or not an image: export the ROI or copy the slide "
            "again, or remove it from the histology folder")


def as_rgb(pixels: np.ndarray, path: Path) -> np.ndarray:
    """Grey, grey+alpha, RGB or RGBA uint8 pixels as RGB; transparent pixels become white.

    Shapes:
        pixels: (h, w) or (h, w, 1..4) -> (h, w, 3) uint8.
    """
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        raise ValueError(f"{path.name}: pixels are {pixels.dtype}, 8-bit RGB is expected; export the image as "
                         "8-bit RGB (brightfield H&E)")
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    channels = pixels.shape[-1]
    if channels in (2, 4):
        alpha = pixels[..., -1:].astype(np.float32) / 255
        colour = pixels[..., :-1].astype(np.float32) * alpha + BACKGROUND * (1 - alpha)
        pixels = np.rint(colour).astype(np.uint8)
    if pixels.shape[-1] == 1:
        return np.repeat(pixels, 3, axis=-1)
    if pixels.shape[-1] != 3:
        raise ValueError(f"{path.name}: {channels} channels per pixel; grey, RGB or RGBA are expected")
    return pixels


def resize(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to ``size = (w, h)``: area average when shrinking (exact means), bilinear when enlarging.

    Shapes:
        rgb: (h0, w0, 3) uint8 -> (h, w, 3) uint8.
    """
    if rgb.shape[1::-1] == tuple(size):
        return rgb
    shrink = size[0] <= rgb.shape[1] and size[1] <= rgb.shape[0]
    method = Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR
    return np.asarray(Image.fromarray(rgb).resize(tuple(size), method))


def plausible_mpp(mpp: float | None, path: Path) -> float | None:
    """``mpp`` if it is a microscope's (:data:`MPP_RANGE`), else ``None`` (logged)."""
    if mpp is None or MPP_RANGE[0] <= mpp <= MPP_RANGE[1]:
        return mpp
    log.debug("%s: ignoring a resolution of %.4g um/pixel (not a microscope's)", path.name, mpp)
    return None


def _float(value) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


# --- tiling: tissue mask, tile grid, tiles one at a time -------------------------------------------------

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
