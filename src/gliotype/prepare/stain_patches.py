"""The stain-patches stage (paper 003): non-overlapping patches of each histology file, kept by stain score.

Each file of ``<patient>/histology/`` is cut into ``size`` x ``size`` patches on a grid from its top-left
corner, scored by :class:`~gliotype.prepare.stain.StainFilterConfig` (``score="brown"``: the HSL brown-pixel
fraction for DAB immunohistochemistry; ``score="tissue"``: the tissue-mask fraction for H&E) and kept when
the score exceeds ``threshold`` (paper: 20%).

* An image whose longer side is at most ``roi_max_side`` (an ROI) is read whole at its own resolution and
  scored with :func:`~gliotype.prepare.stain.select_patches` (the tissue mask sees the whole image).
* A larger file (a whole slide) is read tile by tile at level 0 (or ``downsample``), never whole; each
  tile is scored on its own.

At most ``max_patches_per_file`` of the kept patches are stored, spread evenly over them in row-major
order (deterministic). A file that cannot be read or keeps no patch is skipped with its reason in
``meta["skipped"]``; a patient whose files all fail raises ``ValueError`` (``run_stage`` lists it).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from pydantic import Field

from gliotype.cohort import Case
from gliotype.prepare.histology_tiles import pick_evenly
from gliotype.prepare.slide import open_slide
from gliotype.prepare.stage import register_stage
from gliotype.prepare.stain import StainFilterConfig, brown_fraction, tissue_fraction
from gliotype.prepare.tiles import iter_tiles, read_tile, tile_grid

log = logging.getLogger(__name__)


class StainPatchesConfig(StainFilterConfig):
    """Which patches of a patient's histology are kept (paper 003 defaults, H&E tissue scoring selectable)."""

    roi_max_side: int = Field(4096, ge=16, description="files up to this side are read whole; larger ones tile by tile")
    downsample: float = Field(1.0, ge=1, description="slides: read at level-0 pixels / downsample (1 = level 0)")
    max_patches_per_file: int = Field(64, ge=1)


def _score_tile(tile: np.ndarray, config: StainPatchesConfig) -> float:
    if config.score == "brown":
        return float(brown_fraction(tile[None], config.hue, config.hue_width,
                                    (config.lightness_low, config.lightness_high))[0])
    return float(tissue_fraction(tile, config.size)[0])


def patches_of_file(path: Path, config: StainPatchesConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The kept patches of one histology file, their origins, their scores and the number of patches scored.

    Shapes:
        returns patches (k, size, size, 3) uint8, origins (k, 2) int64 (row, column in level-0 pixels),
        scores (k,) float64, and n (all patches scored).
    """
    with open_slide(path) as slide:
        width, height = slide.dimensions
        if max(width, height) <= config.roi_max_side:
            chosen = config.select(slide.read_region((0, 0), 0, (width, height)))
            patches, origins, scores = chosen.kept_patches, chosen.kept_origins, chosen.scores[chosen.kept]
            n = len(chosen.scores)
        else:
            grid = tile_grid(slide, config.size, downsample=config.downsample, tissue_fraction_min=0)
            scores_all = np.array([_score_tile(t, config) for t in iter_tiles(slide, grid)])
            keep = np.flatnonzero(scores_all > config.threshold)
            patches = np.zeros((len(keep), config.size, config.size, 3), np.uint8)
            for row, i in enumerate(keep):
                patches[row] = read_tile(slide, grid, int(i))
            origins, scores, n = grid.coords[keep][:, [1, 0]], scores_all[keep], len(scores_all)
    pick = pick_evenly(len(patches), config.max_patches_per_file)
    return patches[pick], np.asarray(origins, np.int64)[pick], scores[pick], n


@register_stage("stain_patches", needs=("histology",), config_type=StainPatchesConfig)
def stain_patches(case: Case, config: StainPatchesConfig) -> tuple[dict[str, np.ndarray], dict]:
    """Cut and filter one patient's histology patches.

    Shapes:
        returns ``patches`` (n, S, S, 3) uint8 (S = ``size``), ``source`` (n,) int64 (index into
        ``meta["files"]``), ``origins`` (n, 2) int64 and ``scores`` (n,) float64.
    """
    if not case.histology:
        raise ValueError(f"{case.patient_id}: no histology files; put ROI images or slides in "
                         f"{case.patient_id}/histology/ (.png, .jpg, .tif, .svs ...)")
    parts, skipped, scored = [], {}, []
    for index, path in enumerate(case.histology):
        try:
            patches, origins, scores, n = patches_of_file(path, config)
            if not len(patches):
                raise ValueError(f"{path.name}: none of its {n} patches of {config.size} px has a {config.score} "
                                 f"score above {config.threshold:.0%}; check the stain (score='brown' is for DAB "
                                 "immunohistochemistry, 'tissue' for H&E) or lower threshold")
        except ValueError as err:
            log.warning("%s: skipping %s", case.patient_id, err)
            skipped[path.name] = str(err)
            scored.append(0)
            continue
        scored.append(n)
        parts.append((patches, np.full(len(patches), index, np.int64), origins, scores))
    if not parts:
        raise ValueError(f"{case.patient_id}: none of the {len(case.histology)} histology files kept a patch: "
                         + "; ".join(skipped.values()))
    patches, source, origins, scores = (np.concatenate(p) for p in zip(*parts))
    meta = {"files": [p.name for p in case.histology], "n_scored": scored, "skipped": skipped, "size": config.size,
            "score": config.score, "threshold": config.threshold}
    return {"patches": patches, "source": source, "origins": origins, "scores": scores}, meta
