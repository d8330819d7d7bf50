"""Reading histology region by region: pyramids and ROIs read back pixel for pixel, damaged files named."""

import numpy as np
import pytest
from PIL import Image

from gliotype.prepare.slide import as_rgb, open_slide
from gliotype.prepare.tiles import tissue_mask


def halve(rgb: np.ndarray) -> np.ndarray:
    """The next pyramid level: means of 2 x 2 blocks, rounded (odd edges dropped)."""
    h, w = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
    return rgb[:h, :w].reshape(h // 2, 2, w // 2, 2, 3).mean((1, 3)).round().astype(np.uint8)


def write_pyramid_tiff(path, rgb: np.ndarray, levels: int = 3, mpp: float | None = 0.5, compression="zlib"):
    """A tiled (256) pyramidal TIFF, reduced levels as SubIFDs, resolution tag = ``mpp``; returns the levels."""
    import tifffile

    pyramid = [rgb]
    for _ in range(levels - 1):
        pyramid.append(halve(pyramid[-1]))
    res = {"resolution": (1e4 / mpp, 1e4 / mpp), "resolutionunit": "CENTIMETER"} if mpp else {}
    options = {"tile": (256, 256), "photometric": "rgb", "compression": compression, "metadata": None}
    with tifffile.TiffWriter(path) as tif:
        tif.write(rgb, subifds=levels - 1, **res, **options)
        for level in pyramid[1:]:
            tif.write(level, subfiletype=1, **options)
    return pyramid


def gradient(width: int, height: int) -> np.ndarray:
    """Red = x mod 256, green = y mod 256, blue = 60 / 120 / 180 / 240 by quadrant (TL, TR, BL, BR)."""
    y, x = np.mgrid[0:height, 0:width]
    blue = 60 * (1 + (x >= width // 2) + 2 * (y >= height // 2))
    return np.stack([x % 256, y % 256, blue], -1).astype(np.uint8)


@pytest.fixture
def pyramid(tmp_path):
    source = gradient(1000, 600)
    levels = write_pyramid_tiff(tmp_path / "grad.tif", source)
    return tmp_path / "grad.tif", levels


def test_pyramid_geometry_and_microns_per_pixel(pyramid):
    with open_slide(pyramid[0]) as slide:
        assert slide.dimensions == (1000, 600)
        assert slide.level_dimensions == ((1000, 600), (500, 300), (250, 150))
        assert slide.level_downsamples == (1.0, 2.0, 4.0)
        assert slide.mpp == pytest.approx(0.5)


def test_known_pixels(pyramid):
    with open_slide(pyramid[0]) as slide:
        assert slide.read_region((300, 100), 0, (1, 1))[0, 0].tolist() == [300 % 256, 100, 60]
        assert slide.read_region((700, 400), 0, (1, 1))[0, 0].tolist() == [700 % 256, 400 % 256, 240]


def test_level0_read_tile_by_tile_is_pixel_exact(pyramid):
    path, levels = pyramid
    mosaic = np.zeros((3 * 224, 5 * 224, 3), np.uint8)
    with open_slide(path) as slide:
        for y in range(0, 600, 224):
            for x in range(0, 1000, 224):
                mosaic[y:y + 224, x:x + 224] = slide.read_region((x, y), 0, (224, 224))
    np.testing.assert_array_equal(mosaic[:600, :1000], levels[0])
    assert (mosaic[600:] == 255).all() and (mosaic[:, 1000:] == 255).all()  # outside the slide: white


def test_level1_is_the_two_by_two_mean(pyramid):
    path, levels = pyramid
    with open_slide(path) as slide:
        whole = slide.read_region((0, 0), 1, (500, 300))
        part = slide.read_region((200, 100), 1, (10, 10))  # level-0 (200, 100) is level-1 (100, 50)
    np.testing.assert_array_equal(whole, levels[1])
    np.testing.assert_array_equal(part, levels[1][50:60, 100:110])
    mean = levels[0].reshape(300, 2, 500, 2, 3).mean((1, 3))
    assert np.abs(whole - mean).max() <= 0.5


def test_region_across_the_corner_is_padded_white(pyramid):
    with open_slide(pyramid[0]) as slide:
        region = slide.read_region((-5, -5), 0, (10, 10))
    assert (region[:5] == 255).all() and (region[:, :5] == 255).all()
    np.testing.assert_array_equal(region[5:, 5:], pyramid[1][0][:5, :5])


def test_thumbnail_is_the_level_it_fits(pyramid):
    with open_slide(pyramid[0]) as slide:
        thumb = slide.thumbnail(250)
    assert thumb.shape == (150, 250, 3)
    np.testing.assert_array_equal(thumb, pyramid[1][2])


def test_png_roi_reads_exactly_and_its_dpi_gives_mpp(tmp_path):
    source = gradient(300, 200)
    Image.fromarray(source).save(tmp_path / "roi.png", dpi=(50800, 50800))  # 50800 dpi = 0.5 um/pixel
    Image.fromarray(source).save(tmp_path / "screen.png", dpi=(72, 72))  # a screen default, not a microscope's
    with open_slide(tmp_path / "roi.png") as roi, open_slide(tmp_path / "screen.png") as screen:
        assert roi.level_count == 1 and roi.dimensions == (300, 200)
        assert roi.mpp == pytest.approx(0.5, abs=1e-3) and screen.mpp is None
        np.testing.assert_array_equal(roi.read_region((100, 50), 0, (150, 100)), source[50:150, 100:250])


def test_plain_tiff_roi_reads_exactly(tmp_path):
    import tifffile

    source = gradient(300, 200)
    tifffile.imwrite(tmp_path / "roi.tif", source, photometric="rgb", rowsperstrip=16)  # strips, no tiles, no pyramid
    with open_slide(tmp_path / "roi.tif") as roi:
        assert roi.level_count == 1 and roi.dimensions == (300, 200) and roi.mpp is None
        np.testing.assert_array_equal(roi.read_region((0, 0), 0, (300, 200)), source)


def test_grey_and_transparent_pixels_become_rgb_on_white(tmp_path):
    grey = np.array([[0, 128]], np.uint8)
    rgba = np.array([[[255, 0, 0, 255], [255, 0, 0, 0], [0, 0, 0, 128]]], np.uint8)
    assert as_rgb(grey, tmp_path).tolist() == [[[0, 0, 0], [128, 128, 128]]]
    assert as_rgb(rgba, tmp_path).tolist() == [[[255, 0, 0], [255, 255, 255], [127, 127, 127]]]
    with pytest.raises(ValueError, match="8-bit RGB"):
        as_rgb(np.zeros((2, 2, 3), np.uint16), tmp_path / "scan.tif")


def test_reads_the_synthetic_cohort_slide(tmp_path):
    from gliotype.cohort.synth.io import write_pyramid

    source = np.random.default_rng(0).integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
    write_pyramid(tmp_path / "P-slide.tif", source, levels=3)
    with open_slide(tmp_path / "P-slide.tif") as slide:
        assert slide.level_dimensions == ((1024, 1024), (512, 512), (256, 256))
        assert slide.mpp == pytest.approx(0.25)  # 40000 pixels/cm
        np.testing.assert_array_equal(slide.read_region((256, 512), 0, (224, 224)), source[512:736, 256:480])
        np.testing.assert_array_equal(slide.read_region((0, 0), 2, (256, 256)), halve(halve(source)))


def test_openslide_is_the_fallback_for_other_formats(tmp_path, monkeypatch):
    import sys
    import types

    source = gradient(64, 32)

    class FakeOpenSlide:  # what openslide.OpenSlide offers: RGBA PIL regions, string properties
        level_dimensions, level_downsamples = ((64, 32),), (1.0,)
        properties = {"openslide.mpp-x": "0.5", "openslide.objective-power": "20"}

        def __init__(self, filename):
            self.filename = filename

        def read_region(self, location, level, size):
            (x, y), (w, h) = location, size
            return Image.fromarray(source[y:y + h, x:x + w]).convert("RGBA")

        def close(self):
            pass

    monkeypatch.setitem(sys.modules, "openslide", types.SimpleNamespace(OpenSlide=FakeOpenSlide))
    (tmp_path / "scan.mrxs").write_bytes(b"MIRAX index, not a TIFF")
    with open_slide(tmp_path / "scan.mrxs") as slide:
        assert (slide.mpp, slide.objective_power, slide.dimensions) == (0.5, 20.0, (64, 32))
        np.testing.assert_array_equal(slide.read_region((10, 5), 0, (60, 30))[:27, :54], source[5:, 10:])


@pytest.mark.parametrize("name, content", [
    ("slide.svs", np.random.default_rng(1).bytes(4096)),
    ("tile.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40),
    ("notes.tif", b"not an image at all\n"),
])
def test_damaged_file_raises_one_line_naming_it(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ValueError, match=name) as info:
        open_slide(tmp_path / name)
    assert "\n" not in str(info.value) and "again" in str(info.value)


def test_truncated_png_raises_naming_it(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "roi.png")  # 180 kB that do not compress
    (tmp_path / "cut.png").write_bytes((tmp_path / "roi.png").read_bytes()[:2000])
    with pytest.raises(ValueError, match=r"cut\.png: .*truncated"):
        open_slide(tmp_path / "cut.png")


def test_truncated_slide_raises_naming_it_when_read(pyramid, tmp_path):
    data = pyramid[0].read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[:len(data) // 3])  # the header survives, most tiles do not
    with pytest.raises(ValueError, match=r"cut\.tif: its pixel data cannot be decoded"):
        with open_slide(tmp_path / "cut.tif") as slide:
            slide.read_region((0, 0), 0, (1000, 600))


@pytest.mark.realdata
def test_real_roi_as_a_pyramid_reads_back(shared_data, tmp_path):
    png_path = shared_data / "histology" / "TCGA-HT-7470_roi.png"
    source = np.asarray(Image.open(png_path).convert("RGB"))
    write_pyramid_tiff(tmp_path / "roi.tif", source, levels=2, mpp=0.5)
    write_pyramid_tiff(tmp_path / "roi-jpeg.tif", source, levels=2, mpp=0.5, compression="jpeg")
    with open_slide(png_path) as png, open_slide(tmp_path / "roi.tif") as tif, open_slide(tmp_path / "roi-jpeg.tif") as jpeg:
        assert png.dimensions == tif.dimensions == jpeg.dimensions == (1024, 1024)
        np.testing.assert_array_equal(png.read_region((224, 448), 0, (224, 224)), source[448:672, 224:448])
        level0 = np.concatenate([tif.read_region((x, 0), 0, (256, 1024)) for x in range(0, 1024, 256)], 1)
        level1 = tif.read_region((0, 0), 1, (512, 512))
        lossy = jpeg.read_region((0, 0), 0, (1024, 1024))
        assert tissue_mask(png.thumbnail(256)).mean() > 0.95  # an ROI is all tissue
    np.testing.assert_array_equal(level0, source)
    assert np.abs(level1 - source.reshape(512, 2, 512, 2, 3).mean((1, 3))).max() <= 0.5
    assert np.abs(lossy.astype(int) - source).mean() < 6  # JPEG at tifffile's default quality: close, not exact
