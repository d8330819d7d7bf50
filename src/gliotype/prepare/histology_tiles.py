"""The histology tiles stage: fixed-size RGB tiles from each patient's ROI images and whole slides.

Each file of ``<patient>/histology/`` (DESIGN.md Contract 1) is one of:

* an **ROI** (one level, longer side at most ``roi_max_side``, not a slide format such as ``.svs``):
  with ``roi="resize"`` (default) the whole ROI is resized (area average) so that its longer side is
  ``tile_size`` and centred on a white square: one tile per ROI, coordinates ``(0, 0, 0)``. ROIs are
  regions a pathologist or a dataset already chose, at the dataset's magnification, so no tissue mask
  is applied. With ``roi="tile"`` an ROI is tiled like a slide, at its own resolution (downsample 1).
* a **slide**: tiled at ``magnification`` (default 20x), ``mpp`` or ``downsample`` (one of them) with
  :func:`gliotype.prepare.tiles.tile_grid`; tiles with less than ``tissue_fraction_min`` tissue are
  dropped and at most ``max_tiles_per_slide`` are kept, spread evenly over the tissue tiles in
  row-major order (deterministic: the same slide always gives the same tiles).

A file that cannot be read, or gives no tile, is skipped with its reason in ``meta["skipped"]`` and a
logged warning; a patient whose files all fail raises ``ValueError`` (``run_stage`` lists it).

Meta, one entry per file of ``files`` (the patient's histology files, in order, skipped ones included):
``kind`` (``"roi"``, ``"slide"``, ``None`` if skipped), ``mpp`` (microns per level-0 pixel or ``None``),
``downsample`` (file pixels per tile pixel) and ``n_tiles``; ``skipped`` maps file names to reasons.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from gliotype.cohort import Case
from gliotype.prepare.slide import Slide, open_slide, resize
from gliotype.prepare.stage import StageConfig, register_stage
from gliotype.prepare.tiles import TileGrid, iter_tiles, tile_grid

log = logging.getLogger(__name__)

SLIDE_SUFFIXES = (".svs", ".ndpi", ".scn", ".bif", ".mrxs", ".vms", ".vmu", ".svslide")
"""Formats that are always whole slides, whatever their size."""
DEFAULT_MAGNIFICATION = 20.0


class HistologyTilesConfig(StageConfig):
    """How tiles are cut. Of ``magnification``, ``mpp`` and ``downsample`` give one (none: 20x)."""

    tile_size: int = Field(224, ge=16)
    magnification: float | None = Field(None, gt=0)
    mpp: float | None = Field(None, gt=0)
    downsample: float | None = Field(None, ge=1)
    roi: Literal["resize", "tile"] = "resize"
    roi_max_side: int = Field(4096, ge=16)
    max_tiles_per_slide: int = Field(64, ge=1)
    tissue_fraction_min: float = Field(0.5, ge=0, le=1)

    @model_validator(mode="before")
    @classmethod
    def _one_resolution(cls, data):
        if not isinstance(data, dict):
            return data
        given = {k: data[k] for k in ("magnification", "mpp", "downsample") if data.get(k) is not None}
        if len(given) > 1:
            raise ValueError(f"give one of magnification, mpp or downsample, not {len(given)}: got {given}; "
                             "set the others to null")
        return data if given else {**data, "magnification": DEFAULT_MAGNIFICATION}


def is_roi(slide: Slide, config: HistologyTilesConfig) -> bool:
    """Whether a file is an ROI image (resized or tiled at its own resolution) rather than a slide."""
    return (slide.level_count == 1 and max(slide.dimensions) <= config.roi_max_side
            and slide.path.suffix.lower() not in SLIDE_SUFFIXES)


def fit_roi(slide: Slide, size: int) -> np.ndarray:
    """The whole ROI resized so that its longer side is ``size``, centred on a white square.

    Shapes:
        returns (size, size, 3) uint8.
    """
    width, height = slide.dimensions
    scale = size / max(width, height)
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    out = np.full((size, size, 3), 255, np.uint8)
    top, left = (size - h) // 2, (size - w) // 2
    out[top:top + h, left:left + w] = resize(slide.read_region((0, 0), 0, (width, height)), (w, h))
    return out


def pick_evenly(n: int, k: int) -> np.ndarray:
    """``min(n, k)`` indices spread evenly over ``range(n)``, first and last included."""
    if n <= k:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, k).round().astype(np.int64))


def slide_grid(slide: Slide, config: HistologyTilesConfig) -> TileGrid:
    """The tiles kept from one slide (or from an ROI with ``roi="tile"``)."""
    resolution = ({"downsample": 1.0} if is_roi(slide, config) else
                  {"magnification": config.magnification, "mpp": config.mpp, "downsample": config.downsample})
    grid = tile_grid(slide, config.tile_size, tissue_fraction_min=config.tissue_fraction_min, **resolution)
    if len(grid) == 0:
        raise ValueError(f"{slide.path.name}: no {config.tile_size}-pixel tile has {config.tissue_fraction_min:.0%} "
                         "tissue; check that the file shows stained tissue, or lower tissue_fraction_min")
    return grid.subset(pick_evenly(len(grid), config.max_tiles_per_slide))


def tiles_of_file(path: Path, config: HistologyTilesConfig) -> tuple[np.ndarray, np.ndarray, dict]:
    """Tiles, their coordinates and a summary of one histology file.

    Shapes:
        returns tiles (n, S, S, 3) uint8, coords (n, 3) int64 ``(x, y, level)``, and
        ``{"kind", "mpp", "downsample"}``.
    """
    with open_slide(path) as slide:
        if is_roi(slide, config) and config.roi == "resize":
            tile = fit_roi(slide, config.tile_size)[None]
            scale = max(slide.dimensions) / config.tile_size
            return tile, np.zeros((1, 3), np.int64), {"kind": "roi", "mpp": slide.mpp, "downsample": scale}
        grid = slide_grid(slide, config)
        tiles = np.empty((len(grid), config.tile_size, config.tile_size, 3), np.uint8)
        for i, tile in enumerate(iter_tiles(slide, grid)):
            tiles[i] = tile
        kind = "roi" if is_roi(slide, config) else "slide"
        return tiles, grid.coords, {"kind": kind, "mpp": slide.mpp, "downsample": grid.downsample}


@register_stage("histology_tiles", needs=("histology",), config_type=HistologyTilesConfig)
def histology_tiles(case: Case, config: HistologyTilesConfig) -> tuple[dict[str, np.ndarray], dict]:
    """Cut the tiles of one patient's histology files.

    Shapes:
        returns ``tiles`` (n, S, S, 3) uint8 with S = ``tile_size``, ``source`` (n,) int64 (index into
        ``meta["files"]``, the patient's histology files in order) and ``coords`` (n, 3) int64
        ``(x, y, level)`` (top-left in level-0 pixels, the level read; zeros for a resized ROI).
    """
    if not case.histology:
        raise ValueError(f"{case.patient_id}: no histology files; put ROI images or slides in "
                         f"{case.patient_id}/histology/ (.png, .jpg, .tif, .svs, .ndpi ...)")
    tiles, sources, coords, skipped = [], [], [], {}
    summary = {"mpp": [], "kind": [], "downsample": [], "n_tiles": []}
    for index, path in enumerate(case.histology):
        try:
            got, where, info = tiles_of_file(path, config)
        except ValueError as err:
            log.warning("%s: skipping %s", case.patient_id, err)
            skipped[path.name], got, where, info = str(err), None, None, {}
        else:
            tiles.append(got)
            coords.append(where)
            sources.append(np.full(len(got), index, np.int64))
        for key in ("mpp", "kind", "downsample"):
            summary[key].append(info.get(key))
        summary["n_tiles"].append(0 if got is None else len(got))
    if not tiles:
        reasons = "; ".join(skipped.values())
        raise ValueError(f"{case.patient_id}: none of the {len(case.histology)} histology files gave a tile: {reasons}")
    arrays = {"tiles": np.concatenate(tiles), "source": np.concatenate(sources), "coords": np.concatenate(coords)}
    meta = {"files": [p.name for p in case.histology], **summary, "skipped": skipped,
            "tile_size": config.tile_size}
    return arrays, meta
