"""The stain-patches stage: the brown patches of a real DAB image, tissue patches of a slide read tile by tile."""

import numpy as np
import pytest
from PIL import Image
from skimage import data

from gliotype.cohort import Cohort
from gliotype.prepare import load_prepared, run_stage
from gliotype.prepare.stain import select_patches
from gliotype.prepare.stain_patches import StainPatchesConfig

from test_slide import write_pyramid_tiff
from test_tiles import PINK


@pytest.fixture
def cohort(tmp_path):
    """IHC: scikit-image's DAB image as an ROI; SLIDE: a 2048 px slide, pink tissue in its top-left 1024 px
    and glass elsewhere; BLANK: only glass."""
    root = tmp_path / "cohort"
    for pid in ("IHC", "SLIDE", "BLANK"):
        (root / pid / "histology").mkdir(parents=True)
    Image.fromarray(data.immunohistochemistry()).save(root / "IHC" / "histology" / "ihc.png")
    slide = np.full((2048, 2048, 3), 245, np.uint8)
    slide[:1024, :1024] = PINK
    slide[:1024, :1024, 0] -= np.random.default_rng(0).integers(0, 20, (1024, 1024), dtype=np.uint8)  # texture
    write_pyramid_tiff(root / "SLIDE" / "histology" / "s.tif", slide, levels=3, mpp=0.25)
    Image.fromarray(np.full((512, 512, 3), 245, np.uint8)).save(root / "BLANK" / "histology" / "glass.png")
    (root / "labels.csv").write_text("patient_id,idh\nIHC,mutant\nSLIDE,wildtype\nBLANK,mutant\n")
    return Cohort.from_folder(root)


def test_brown_patches_of_the_dab_image_are_the_scorers(cohort, tmp_path):
    config = StainPatchesConfig(size=64, score="brown")
    result = run_stage("stain_patches", cohort, ["IHC"], config, cache_dir=tmp_path / "cache")
    arrays, meta = load_prepared(result.done["IHC"])
    image = data.immunohistochemistry()
    expected = select_patches(image, 64, "brown", 0.2)
    assert meta["n_scored"] == [64] and len(arrays["patches"]) == int(expected.kept.sum()) == 44
    np.testing.assert_array_equal(arrays["origins"], expected.kept_origins)
    assert (arrays["scores"] > 0.2).all()
    r, c = arrays["origins"][5]
    np.testing.assert_array_equal(arrays["patches"][5], image[r:r + 64, c:c + 64])


def test_a_slide_is_read_tile_by_tile_and_glass_is_left_out(cohort, tmp_path):
    config = StainPatchesConfig(score="tissue", roi_max_side=1024, max_patches_per_file=8)
    result = run_stage("stain_patches", cohort, ["SLIDE", "BLANK"], config, cache_dir=tmp_path / "cache")
    arrays, meta = load_prepared(result.done["SLIDE"])
    # 8 x 8 tiles of 256 px, the 16 of the top-left quadrant are tissue; 8 of them kept, spread evenly
    assert meta["n_scored"] == [64] and len(arrays["patches"]) == 8
    assert (arrays["origins"] < 1024).all() and (arrays["scores"] > 0.9).all()
    assert arrays["origins"][0].tolist() == [0, 0] and arrays["origins"][-1].tolist() == [768, 768]
    assert list(result.failed) == ["BLANK"] and "glass.png" in result.failed["BLANK"]
    assert "lower threshold" in result.failed["BLANK"]
