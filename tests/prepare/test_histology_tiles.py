"""The histology tiles stage: ROIs resized, slides tiled at 20x on tissue, bad files and patients skipped, cached."""

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from gliotype.cohort import Cohort
from gliotype.prepare import load_prepared, run_stage
from gliotype.prepare.histology_tiles import HistologyTilesConfig, fit_roi, pick_evenly
from gliotype.prepare.slide import open_slide

from test_slide import write_pyramid_tiff
from test_tiles import PINK

RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)


def quadrants(side: int) -> np.ndarray:
    """A square ROI: red, green / blue, yellow quadrants (top-left, top-right / bottom-left, bottom-right)."""
    rgb = np.empty((side, side, 3), np.uint8)
    half = side // 2
    rgb[:half, :half], rgb[:half, half:], rgb[half:, :half], rgb[half:, half:] = RED, GREEN, BLUE, YELLOW
    return rgb


def tissue_slide(path) -> None:
    """2048 x 2048 at 0.25 um/pixel (40x), pink tissue over the top-left 1024 x 1024, glass elsewhere."""
    rgb = np.full((2048, 2048, 3), 245, np.uint8)
    rgb[:1024, :1024] = PINK
    write_pyramid_tiff(path, rgb, levels=3, mpp=0.25)


@pytest.fixture
def cohort(tmp_path):
    """H1: two ROIs and a slide; H2: a good ROI and a truncated one; H3: only a corrupt .svs."""
    root = tmp_path / "cohort"
    for pid in ("H1", "H2", "H3"):
        (root / pid / "histology").mkdir(parents=True)
    Image.fromarray(quadrants(448)).save(root / "H1" / "histology" / "a_roi.png")
    Image.fromarray(quadrants(448)[:, :224]).save(root / "H1" / "histology" / "b_roi.png")  # 224 wide, 448 high
    tissue_slide(root / "H1" / "histology" / "c_slide.tif")
    Image.fromarray(quadrants(448)).save(root / "H2" / "histology" / "good.png")
    noise = np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)
    Image.fromarray(noise).save(root / "H2" / "histology" / "bad.png")
    cut = root / "H2" / "histology" / "bad.png"
    cut.write_bytes(cut.read_bytes()[:3000])
    (root / "H3" / "histology" / "x.svs").write_bytes(np.random.default_rng(1).bytes(4096))
    (root / "labels.csv").write_text("patient_id,idh,codel_1p19q,grade\nH1,mutant,intact,3\n"
                                     "H2,wildtype,intact,4\nH3,mutant,codeleted,2\n")
    return Cohort.from_folder(root)


def test_config_defaults_to_20x_and_refuses_two_resolutions():
    config = HistologyTilesConfig()
    assert (config.tile_size, config.magnification, config.mpp, config.downsample) == (224, 20.0, None, None)
    assert HistologyTilesConfig(downsample=2).magnification is None
    assert HistologyTilesConfig.model_validate(config.model_dump()) == config
    with pytest.raises(ValidationError, match="one of magnification, mpp or downsample"):
        HistologyTilesConfig(magnification=20, downsample=2)


def test_pick_evenly():
    assert pick_evenly(16, 4).tolist() == [0, 5, 10, 15]
    assert pick_evenly(3, 4).tolist() == [0, 1, 2]


def test_roi_is_resized_to_fit_and_centred(tmp_path):
    Image.fromarray(quadrants(448)).save(tmp_path / "square.png")
    Image.fromarray(quadrants(448)[:224]).save(tmp_path / "wide.png")  # 448 wide, 224 high: red | green
    with open_slide(tmp_path / "square.png") as square, open_slide(tmp_path / "wide.png") as wide:
        tile, band = fit_roi(square, 224), fit_roi(wide, 224)
    np.testing.assert_array_equal(tile, quadrants(224))  # 2 x 2 means of single colours are exact
    assert (band[:56] == 255).all() and (band[168:] == 255).all()  # 112 rows of ROI, centred
    assert (band[56:168, :112] == RED).all() and (band[56:168, 112:] == GREEN).all()


def test_stage_tiles_a_cohort_and_skips_what_is_bad(cohort, tmp_path):
    config = HistologyTilesConfig(tile_size=128, max_tiles_per_slide=4)
    result = run_stage("histology_tiles", cohort, ["H1", "H2", "H3"], config, cache_dir=tmp_path / "cache")
    assert sorted(result.done) == ["H1", "H2"] and result.built == 2
    assert list(result.failed) == ["H3"] and "H3" in result.failed["H3"] and "x.svs" in result.failed["H3"]

    arrays, meta = load_prepared(result.done["H1"])
    assert arrays["tiles"].shape == (6, 128, 128, 3) and arrays["tiles"].dtype == np.uint8
    assert meta["files"] == ["a_roi.png", "b_roi.png", "c_slide.tif"] and meta["n_tiles"] == [1, 1, 4]
    assert arrays["source"].tolist() == [0, 1, 2, 2, 2, 2] and meta["kind"] == ["roi", "roi", "slide"]
    assert meta["mpp"] == [None, None, 0.25] and meta["downsample"][2] == 2.0 and meta["skipped"] == {}
    # the slide at 20x: 256 level-0 pixels a tile, 16 tissue tiles (4 x 4), 4 kept: tissue tiles 0, 5, 10, 15
    assert arrays["coords"][2:].tolist() == [[0, 0, 1], [256, 256, 1], [512, 512, 1], [768, 768, 1]]
    assert (arrays["tiles"][2:] == PINK).all()
    np.testing.assert_array_equal(arrays["tiles"][0], quadrants(128))
    assert (arrays["tiles"][1][:, :32] == 255).all() and (arrays["tiles"][1][:64, 32:96] == RED).all()

    arrays, meta = load_prepared(result.done["H2"])
    assert meta["files"] == ["bad.png", "good.png"] and arrays["source"].tolist() == [1]
    assert list(meta["skipped"]) == ["bad.png"] and "truncated" in meta["skipped"]["bad.png"]

    again = run_stage("histology_tiles", cohort, ["H1", "H2"], config, cache_dir=tmp_path / "cache")
    assert again.built == 0 and again.done == {k: result.done[k] for k in ("H1", "H2")}


def test_blank_slide_is_skipped_with_the_reason(cohort, tmp_path, caplog):
    blank = cohort["H1"].folder / "histology" / "d_blank.tif"
    write_pyramid_tiff(blank, np.full((1024, 1024, 3), 245, np.uint8), levels=2, mpp=0.25)
    cohort = Cohort.from_folder(cohort.root)
    with caplog.at_level("WARNING"):
        result = run_stage("histology_tiles", cohort, ["H1"], HistologyTilesConfig(tile_size=128), cache_dir=tmp_path / "c")
    _, meta = load_prepared(result.done["H1"])
    assert "tissue_fraction_min" in meta["skipped"]["d_blank.tif"] and meta["n_tiles"][3] == 0
    assert "d_blank.tif" in caplog.text


@pytest.mark.realdata
def test_real_roi_becomes_one_resized_tile(shared_data, tmp_path):
    import shutil

    (tmp_path / "c" / "TCGA-HT-7470" / "histology").mkdir(parents=True)
    shutil.copy(shared_data / "histology" / "TCGA-HT-7470_roi.png", tmp_path / "c" / "TCGA-HT-7470" / "histology")
    (tmp_path / "c" / "labels.csv").write_text("patient_id,idh\nTCGA-HT-7470,mutant\n")
    cohort = Cohort.from_folder(tmp_path / "c")
    result = run_stage("histology_tiles", cohort, ["TCGA-HT-7470"], cache_dir=tmp_path / "cache")
    arrays, meta = load_prepared(result.done["TCGA-HT-7470"])
    source = Image.open(shared_data / "histology" / "TCGA-HT-7470_roi.png").convert("RGB")
    expected = np.asarray(source.resize((224, 224), Image.Resampling.BOX))  # 1024 -> 224: area average
    np.testing.assert_array_equal(arrays["tiles"][0], expected)
    assert meta["kind"] == ["roi"] and meta["downsample"] == [pytest.approx(1024 / 224)]
