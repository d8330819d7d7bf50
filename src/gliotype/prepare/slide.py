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

Tiling a slide (tissue mask, tile grid, tiles one at a time) is :mod:`gliotype.prepare.tiles`.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
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


class Slide(ABC):
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

    @abstractmethod
    def _read_inside(self, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        """Pixels of a region lying wholly inside ``level`` (the subclass's backend)."""

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
