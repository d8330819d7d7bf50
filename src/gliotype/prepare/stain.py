"""Choosing histology patches by their stain: brown (DAB) pixels in HSL, or tissue for H&E.

The ``wsi-rna`` method (paper 003, METHODS.md section 4) cuts an image into non-overlapping 256x256 RGB
patches, scores each in HSL by the fraction of its pixels whose hue is brown, and keeps those above
20% as tumour-cell patches. This scorer is not in the authors' code; the parameters are theirs.

* :func:`patch_grid` cuts an image into square patches, row-major, the partial border dropped;
* :func:`rgb_to_hls` is :func:`colorsys.rgb_to_hls` for whole arrays;
* :func:`brown_fraction` scores patches by brown pixels (immunohistochemistry, DAB);
* :func:`tissue_fraction` scores them by tissue (H&E), with the tissue mask of
  :func:`gliotype.prepare.tiles.tissue_mask`;
* :func:`select_patches` (or :meth:`StainFilterConfig.select`) scores and thresholds in one call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from gliotype.prepare.stage import StageConfig
from gliotype.prepare.tiles import tissue_mask

SCORES = ("brown", "tissue")
"""The patch scores :func:`select_patches` knows."""


def _check_rgb(array: np.ndarray, name: str, ndim: int, layout: str) -> None:
    """Raise a ``ValueError`` unless ``array`` is a uint8 array of ``ndim`` axes ending in 3 channels."""
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{name} must be a numpy array {layout} uint8, got {type(array).__name__}")
    if array.ndim != ndim or array.shape[-1] != 3:
        raise ValueError(f"{name} must be {layout} (RGB), got shape {array.shape}; drop an alpha channel "
                         "with [..., :3] and stack grey images to 3 channels")
    if array.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 (0-255), got dtype {array.dtype}; convert a 0-1 float image "
                         "with skimage.util.img_as_ubyte")


def _check_image(image: np.ndarray, size: int) -> None:
    """Raise a ``ValueError`` unless ``image`` is (h, w, 3) uint8 and holds at least one patch."""
    _check_rgb(image, "image", 3, "(height, width, 3)")
    if size < 1 or image.shape[0] < size or image.shape[1] < size:
        raise ValueError(f"image is {image.shape[0]}x{image.shape[1]} pixels, smaller than one {size}x{size} "
                         f"patch; give a size between 1 and {min(image.shape[:2])}, or a larger image")


def _grid(array: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping ``size`` x ``size`` blocks of an (h, w, ...) array, row-major, border dropped."""
    rows, cols = array.shape[0] // size, array.shape[1] // size
    blocks = array[: rows * size, : cols * size].reshape(rows, size, cols, size, *array.shape[2:])
    blocks = blocks.swapaxes(1, 2).reshape(rows * cols, size, size, *array.shape[2:])
    r, c = np.meshgrid(np.arange(rows) * size, np.arange(cols) * size, indexing="ij")
    return blocks, np.stack([r.ravel(), c.ravel()], axis=1).astype(np.int64)


def patch_grid(image: np.ndarray, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping square patches of an RGB image, row-major; a partial last row or column is dropped.

    The patches are in general a copy of the cropped image (a grid cannot be one axis of a view): as
    much memory as the image, so cut a whole slide region by region.

    Returns:
        ``(patches, origins)``: the patches, and the (row, column) of each patch's top-left pixel.

    Shapes:
        image: (h, w, 3) uint8 -> patches: (n, size, size, 3) uint8, origins: (n, 2) int64,
        n = (h // size) * (w // size).
    """
    _check_image(image, size)
    return _grid(image, size)


def _hue_parts(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Integer parts of HLS: hue = ``num / (6 * spread)``, lightness = ``total / 510``; all exact.

    ``num`` is in [0, 6 * spread): 0 red, spread yellow, 2 * spread green, 4 * spread blue.
    """
    x = rgb.astype(np.int32)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    high, low = x.max(-1), x.min(-1)
    spread, total = high - low, high + low
    num = np.where(r == high, g - b, np.where(g == high, 2 * spread + b - r, 4 * spread + r - g))
    return np.where(num < 0, num + 6 * spread, num), spread, total, spread == 0


def rgb_to_hls(rgb: np.ndarray) -> np.ndarray:
    """:func:`colorsys.rgb_to_hls` on every pixel at once: hue, lightness, saturation, each in [0, 1].

    With r, g, b = rgb / 255, max and min over the channels and d = max - min:
    L = (max + min) / 2; S = d / (max + min) if L <= 0.5 else d / (2 - max - min);
    H = ((g - b) / d if r is the max, else 2 + (b - r) / d if g is, else 4 + (r - g) / d) / 6 mod 1
    (in [0, 1): 0 red, 1/6 yellow, 1/3 green, 2/3 blue). Grey pixels (max == min: black, white) have
    no hue: H = S = 0, as in colorsys. Each value is one division of integers (within 1e-15 of colorsys).

    Shapes:
        rgb: (..., 3) uint8 -> (..., 3) float64, channels (H, L, S).
    """
    num, spread, total, grey = _hue_parts(rgb)
    d = np.where(grey, 1, spread)
    hue = np.where(grey, 0.0, num / (6 * d))
    sat = np.where(grey, 0.0, spread / np.where(total <= 255, np.maximum(total, 1), np.maximum(510 - total, 1)))
    return np.stack([hue, total / 510, sat], axis=-1)


def brown_fraction(patches: np.ndarray, hue: float = 35, hue_width: float = 15,
                   lightness: tuple[float, float] = (0.05, 0.8)) -> np.ndarray:
    """Fraction of each patch's pixels that are brown: hue in a band, neither too dark nor too light.

    A pixel counts when ``hue - hue_width <= 255 * H <= hue + hue_width`` and
    ``lightness[0] <= L <= lightness[1]``, with H in [0, 1) and L in [0, 1] as in :func:`rgb_to_hls`
    (colorsys). Hue is on a 0-255 scale (255 * H; 0-255 spans 0-360 degrees, so 1 unit = 1.41 degrees).
    Grey pixels (max == min) have no hue and never count. The hue band does not wrap around 0/255.
    The defaults are the authors' parameters (paper 003; METHODS.md section 4): hue 35 +- 15 on 0-255
    (28 to 71 degrees: orange-brown to yellow-brown), lightness 0.05-0.8. Note that the dark DAB of
    ``skimage.data.immunohistochemistry()`` lies at hue ~15-23, partly below this band.

    Shapes:
        patches: (n, h, w, 3) uint8 -> (n,) float64.
    """
    _check_rgb(patches, "patches", 4, "(n_patches, height, width, 3)")
    num, spread, total, grey = _hue_parts(patches)
    hue255 = 255 * num / (6 * np.where(grey, 1, spread))
    light = total / 510
    brown = ((np.abs(hue255 - hue) <= hue_width) & ~grey
             & (light >= lightness[0]) & (light <= lightness[1]))
    return brown.mean(axis=(1, 2), dtype=np.float64)


def tissue_fraction(image: np.ndarray, size: int = 256, min_object: int | None = None) -> np.ndarray:
    """Fraction of each :func:`patch_grid` patch that is tissue, for H&E slides (no DAB to look for).

    The mask is :func:`gliotype.prepare.tiles.tissue_mask` (Otsu on HSV saturation clipped to
    :data:`~gliotype.prepare.tiles.SATURATION_CLIP`, specks and pinholes under ``min_object`` pixels
    removed), computed on the whole image, not per patch, so that the threshold and the speck removal
    see the slide rather than one patch: hence this takes the image, not the patches.

    Shapes:
        image: (h, w, 3) uint8 -> (n,) float64, in the order of :func:`patch_grid`.
    """
    _check_image(image, size)
    blocks, _ = _grid(tissue_mask(image, min_object), size)
    return blocks.mean(axis=(1, 2), dtype=np.float64)


@dataclass(frozen=True)
class PatchSelection:
    """Every patch of an image, its score, and which were kept (``score > threshold``).

    Shapes:
        patches: (n, size, size, 3) uint8, origins: (n, 2) int64 (row, column), scores: (n,) float64,
        kept: (n,) bool.
    """

    patches: np.ndarray
    origins: np.ndarray
    scores: np.ndarray
    kept: np.ndarray

    @property
    def kept_patches(self) -> np.ndarray:
        return self.patches[self.kept]

    @property
    def kept_origins(self) -> np.ndarray:
        return self.origins[self.kept]


def select_patches(image: np.ndarray, size: int = 256, score: str = "brown", threshold: float = 0.2, *,
                   hue: float = 35, hue_width: float = 15,
                   lightness: tuple[float, float] = (0.05, 0.8)) -> PatchSelection:
    """Cut ``image`` into patches and keep those whose score exceeds ``threshold`` (the paper: > 20%).

    ``score="brown"`` is :func:`brown_fraction` (immunohistochemistry; ``hue``, ``hue_width`` and
    ``lightness`` are passed to it), ``score="tissue"`` is :func:`tissue_fraction` (H&E).

    Shapes:
        image: (h, w, 3) uint8 -> a :class:`PatchSelection` of n = (h // size) * (w // size) patches.
    """
    if score not in SCORES:
        raise ValueError(f"unknown patch score {score!r}; known scores: {list(SCORES)} "
                         "('brown' for DAB immunohistochemistry, 'tissue' for H&E)")
    patches, origins = patch_grid(image, size)
    if score == "brown":
        scores = brown_fraction(patches, hue, hue_width, lightness)
    else:
        scores = tissue_fraction(image, size)
    return PatchSelection(patches, origins, scores, scores > threshold)


class StainFilterConfig(StageConfig):
    """How patches are chosen by stain; the defaults are paper 003's (METHODS.md section 4)."""

    size: int = Field(256, ge=1)
    score: Literal["brown", "tissue"] = "brown"
    threshold: float = Field(0.2, ge=0, le=1)
    hue: float = Field(35, ge=0, le=255)
    hue_width: float = Field(15, ge=0, le=128)
    lightness_low: float = Field(0.05, ge=0, le=1)
    lightness_high: float = Field(0.8, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered_lightness(self):
        if self.lightness_low > self.lightness_high:
            raise ValueError(f"lightness_low {self.lightness_low!r} is above lightness_high "
                             f"{self.lightness_high!r}; give lightness_low <= lightness_high")
        return self

    def select(self, image: np.ndarray) -> PatchSelection:
        """:func:`select_patches` with this configuration."""
        return select_patches(image, self.size, self.score, self.threshold, hue=self.hue,
                              hue_width=self.hue_width, lightness=(self.lightness_low, self.lightness_high))
