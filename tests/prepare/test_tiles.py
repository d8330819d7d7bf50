"""Tiling histology: tissue found, resolutions turned into downsamples, tiles read exactly and bounded in memory."""

import tracemalloc

import numpy as np
import pytest
from PIL import Image

from gliotype.prepare.slide import open_slide
from gliotype.prepare.tiles import iter_tiles, resolve_downsample, tile_grid, tissue_mask

from test_slide import gradient, write_pyramid_tiff

PINK = (200, 110, 190)  # an eosin-like colour: saturation 0.45


def test_tissue_mask_finds_a_blob_and_drops_specks():
    rgb = np.full((200, 300, 3), 250, np.uint8)
    y, x = np.mgrid[0:200, 0:300]
    disc = (x - 150) ** 2 + (y - 100) ** 2 <= 40 ** 2
    rgb[disc] = PINK
    rgb[10:12, 10:12] = PINK  # a 4-pixel speck of dust
    rgb[0:200, 290:300] = 0  # a black scanner border
    mask = tissue_mask(rgb)
    assert (mask == disc).all()
    assert not tissue_mask(np.full((50, 50, 3), 255, np.uint8)).any()
    assert tissue_mask(np.full((50, 50, 3), PINK, np.uint8)).all()  # all tissue: not cut in two by Otsu


def test_resolution_to_downsample(tmp_path):
    write_pyramid_tiff(tmp_path / "grad.tif", gradient(1000, 600))
    with open_slide(tmp_path / "grad.tif") as slide:  # 0.5 um/pixel: a 20x scan
        assert resolve_downsample(slide, magnification=10) == pytest.approx(2.0)
        assert resolve_downsample(slide, mpp=2.0) == pytest.approx(4.0)
        assert resolve_downsample(slide) == 1.0
        with pytest.raises(ValueError, match="enlarge"):
            resolve_downsample(slide, magnification=40)
        with pytest.raises(ValueError, match="one of"):
            resolve_downsample(slide, magnification=10, downsample=2)


def test_magnification_without_mpp_asks_for_downsample(tmp_path):
    write_pyramid_tiff(tmp_path / "bare.tif", gradient(512, 512), levels=2, mpp=None)
    with open_slide(tmp_path / "bare.tif") as slide, pytest.raises(ValueError, match=r"bare\.tif.*downsample="):
        resolve_downsample(slide, magnification=20)


@pytest.fixture
def tissue_slide(tmp_path):
    """2048 x 2048 at 0.25 um/pixel (40x): pink tissue over the top-left 1024 x 1024, glass elsewhere."""
    rgb = np.full((2048, 2048, 3), 245, np.uint8)
    rgb[:1024, :1024] = PINK
    rgb[:1024, :1024, 0] = np.arange(1024) % 256  # a pattern inside the tissue
    levels = write_pyramid_tiff(tmp_path / "tissue.tif", rgb, levels=3, mpp=0.25)
    return tmp_path / "tissue.tif", levels


def test_tile_grid_keeps_the_tissue_tiles_at_20x(tissue_slide):
    path, levels = tissue_slide
    with open_slide(path) as slide:
        grid = tile_grid(slide, 128, magnification=20)  # downsample 2: 256 level-0 pixels a tile, 8 x 8 tiles
        tiles = list(iter_tiles(slide, grid))
    assert grid.downsample == 2.0 and len(grid) == 16
    assert sorted(map(tuple, grid.coords[:, :2].tolist())) == [(x, y) for x in range(0, 1024, 256) for y in range(0, 1024, 256)]
    assert (grid.coords[:, 2] == 1).all() and (grid.tissue > 0.9).all()
    x, y = grid.coords[5, :2] // 2  # the level-1 pixel of tile 5
    np.testing.assert_array_equal(tiles[5], levels[1][y:y + 128, x:x + 128])


def test_tile_between_levels_is_read_below_and_shrunk(tissue_slide):
    path, levels = tissue_slide
    with open_slide(path) as slide:
        grid = tile_grid(slide, 128, downsample=3, tissue_fraction_min=0)  # level 1 (x2), 192 pixels -> 128
        tile = next(iter_tiles(slide, grid.subset(np.array([0]))))
    assert grid.read_size(slide, 1) == 192 and grid.coords[0].tolist() == [0, 0, 1]
    expected = np.asarray(Image.fromarray(levels[1][:192, :192]).resize((128, 128), Image.Resampling.BOX))
    np.testing.assert_array_equal(tile, expected)


def test_iterating_tiles_keeps_memory_to_a_few_tiles(tmp_path):
    import tifffile

    ramp = (np.arange(3072) % 256).astype(np.uint8)
    rgb = np.empty((3072, 3072, 3), np.uint8)  # 28 MB of pixels: red ramps along x, green along y
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = ramp[None, :], ramp[:, None], 128
    tifffile.imwrite(tmp_path / "big.tif", rgb, tile=(256, 256), photometric="rgb", compression="zlib",
                     compressionargs={"level": 1})
    del rgb
    with open_slide(tmp_path / "big.tif") as slide:
        grid = tile_grid(slide, 224, tissue_fraction_min=0)
        tracemalloc.start()
        count = 0
        for tile in iter_tiles(slide, grid):
            count += 1
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    tile_bytes, image_bytes = 224 * 224 * 3, 3072 * 3072 * 3
    assert count == 14 * 14 and grid.coords[-1].tolist() == [2912, 2912, 0]
    assert tile[0, 0].tolist() == [2912 % 256, 2912 % 256, 128] and (tile[160:] == 255).all()  # 160 px left, then white
    assert peak < 16 * tile_bytes < image_bytes / 10, f"peak {peak / 1e6:.1f} MB"
