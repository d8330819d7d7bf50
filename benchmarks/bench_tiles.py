"""Histology tile extraction (``gliotype.prepare.tiles``) from a whole-slide pyramid, tiles per second.

The slide: 8192 x 8192 at 0.25 um/pixel (40x), a tiled (256) JPEG (quality 85) pyramidal TIFF with
levels 4096 and 2048 as SubIFDs, H&E-like (pink tissue with purple nuclei over ~45% of the area, grey
glass elsewhere, pixel noise so that JPEG has work to do). It is written once per run into ``ctx.work``
by a separate process, untimed and outside the case's peak RSS.

``tiles-level0``: 224-pixel tiles read at level 0 (downsample 1). ``tiles-level1``: downsample 2, read
exactly from level 1. ``tiles-resize``: downsample 3, read as 336-pixel boxes of level 1 and shrunk to
224 (a magnification between levels). All three read every tile of the grid (no tissue filter), one at a
time, through :func:`iter_tiles`; ``--quick`` reads the first 256 tiles. ``tiles-grid``: :func:`tile_grid`
at 20x with its tissue mask (thumbnail, Otsu, tissue fraction per tile), per slide.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from _harness import Case, Context, Row, make_row, measure

SIDE, TILE, MPP, QUALITY = 8192, 224, 0.25, 85
QUICK_TILES = 256
CASES = [Case("tiles-level0", "8k", params={"downsample": 1.0}),
         Case("tiles-level1", "8k", params={"downsample": 2.0}),
         Case("tiles-resize", "8k", params={"downsample": 3.0}),
         Case("tiles-grid", "8k", params={"magnification": 20.0})]


def render(level: int, y0: int, x0: int, size: int = 256):
    """One (size, size, 3) uint8 block of the synthetic H&E slide at ``level`` (deterministic)."""
    import numpy as np

    scale = 2 ** level
    rng = np.random.default_rng([level, y0, x0])
    y, x = np.mgrid[y0:y0 + size, x0:x0 + size] * scale
    field = np.sin(x / 900) + np.sin(y / 1300) + np.sin((x + y) / 700)
    tissue = field > 0.2
    noise = rng.normal(0, 8, (size, size, 3))
    nuclei = tissue & (rng.random((size, size)) < 0.04 * scale)
    rgb = np.where(tissue[..., None], (222, 140, 196), (243, 243, 243)) + noise
    rgb[nuclei] = (95, 55, 145)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def build_slide(path: str | Path, levels: int = 3) -> None:
    """Write the benchmark slide, block by block (its whole level 0 is never in memory)."""
    import tifffile

    def blocks(level: int):
        side = SIDE // 2 ** level
        for y0 in range(0, side, 256):
            for x0 in range(0, side, 256):
                yield render(level, y0, x0)

    options = {"tile": (256, 256), "photometric": "rgb", "compression": "jpeg", "compressionargs": {"level": QUALITY},
               "dtype": "uint8", "metadata": None}
    res = 1e4 / MPP
    with tifffile.TiffWriter(path, bigtiff=False) as tif:
        tif.write(blocks(0), shape=(SIDE, SIDE, 3), subifds=levels - 1, resolution=(res, res),
                  resolutionunit="CENTIMETER", **options)
        for level in range(1, levels):
            side = SIDE // 2 ** level
            tif.write(blocks(level), shape=(side, side, 3), subfiletype=1, **options)


def slide_fixture(work: Path) -> Path:
    """The run's benchmark slide, written by a separate process the first time a case asks."""
    path = work / f"bench-slide-{SIDE}-q{QUALITY}.tif"
    if not path.is_file():
        tmp = path.with_suffix(".tmp.tif")
        code = "import sys; sys.path.insert(0, sys.argv[1]); import bench_tiles; bench_tiles.build_slide(sys.argv[2])"
        subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), str(tmp)], check=True)
        tmp.rename(path)
    return path


def run(case: Case, ctx: Context) -> list[Row]:
    from gliotype.prepare.slide import open_slide
    from gliotype.prepare.tiles import iter_tiles, tile_grid

    path = slide_fixture(ctx.work)
    size_mb = path.stat().st_size / 1e6
    with open_slide(path) as slide:
        if case.name == "tiles-grid":
            grid = tile_grid(slide, TILE, **case.params)
            times = measure(lambda: tile_grid(slide, TILE, **case.params), ctx.repeats(3))
            note = (f"tile_grid at 20x: {len(grid)} tissue tiles kept of "
                    f"{(-(-SIDE // int(grid.footprint))) ** 2}; thumbnail + mask + fractions; {size_mb:.0f} MB JPEG TIFF")
            return [make_row(case, times, per="slide", items=1, unit="slides/s", note=note)]
        grid = tile_grid(slide, TILE, tissue_fraction_min=0, **case.params)
        if ctx.quick:
            grid = grid.subset(slice(0, QUICK_TILES))
        level = int(grid.coords[0, 2])

        def read_all() -> None:
            for _ in iter_tiles(slide, grid):
                pass

        times = measure(read_all, ctx.repeats(3))
        note = (f"{len(grid)} tiles of {TILE} px per run, downsample {grid.downsample:g}: level {level}, "
                f"{grid.read_size(slide, level)} px read; {slide.dimensions[0]}^2 JPEG q{QUALITY} TIFF, {size_mb:.0f} MB")
    return [make_row(case, times, per="tile", per_run=len(grid), items=len(grid), unit="tiles/s", note=note)]
