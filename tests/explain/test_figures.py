"""Explanation figures: valid PNGs, the heat visibly drawn, the convention stated, bad input refused."""

import numpy as np
import pytest
from PIL import Image

from gliotype.explain import points_scatter_png, slice_overlay_png


def pixels(path):
    with Image.open(path) as img:
        assert img.format == "PNG"
        return np.asarray(img.convert("RGB"), dtype=int)


def colourful(rgb):
    """Pixels far from grey (R, G and B differ)."""
    return int((np.abs(rgb - rgb.mean(-1, keepdims=True)).sum(-1) > 60).sum())


@pytest.fixture
def volume():
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in (20, 24, 16)], indexing="ij"), -1)
    brain = ((grid - [10, 12, 8]) ** 2 / [81, 121, 49]).sum(-1) <= 1
    tumour = ((grid - [13, 12, 8]) ** 2).sum(-1) <= 9
    heat = np.where(tumour, 1.0 - ((grid - [13, 12, 8]) ** 2).sum(-1) / 10, 0.0)
    return brain * 100.0, heat, tumour


def test_slice_overlay_draws_the_heat(tmp_path, volume):
    background, heat, tumour = volume
    centre, spacing = (13, 12, 8), (1.0, 1.0, 2.0)
    out = slice_overlay_png(background, heat, tumour, centre, tmp_path / "figs" / "cam.png", "P001", spacing=spacing)
    cold = slice_overlay_png(background, 0 * heat, tumour, centre, tmp_path / "cold.png", "P001", spacing=spacing)
    hot, none = pixels(out), pixels(cold)
    assert hot.shape[0] > 200 and hot.shape[1] > 600
    assert hot.shape == none.shape
    assert (hot != none).any(-1).sum() > 5000
    # the tumour covers ~28 voxels of ~15x15 pixels in each panel; the colour bar is colourful in both
    assert colourful(hot) - colourful(none) > 5000
    assert [p.name for p in out.parent.iterdir()] == ["cam.png"]


def test_slice_overlay_without_a_mask_and_with_bad_input(tmp_path, volume):
    background, heat, _ = volume
    assert pixels(slice_overlay_png(background, heat, None, (0, 0, 0), tmp_path / "a.png", "edge")).size
    with pytest.raises(ValueError, match=r"centre must be a voxel .* inside \(20, 24, 16\); got \[20, 0, 0\]"):
        slice_overlay_png(background, heat, None, (20, 0, 0), tmp_path / "b.png", "t")
    with pytest.raises(ValueError, match="must be 3-D on one grid"):
        slice_overlay_png(background, heat[:-1], None, (1, 1, 1), tmp_path / "b.png", "t")


def test_convention_is_in_the_title():
    from gliotype.explain.figures import CONVENTION

    assert "radiological" in CONVENTION and "right" in CONVENTION


def test_points_scatter(tmp_path):
    points = np.random.default_rng(0).normal(size=(50, 3))
    values = np.linspace(0, 1, 50)
    a = pixels(points_scatter_png(points, values, tmp_path / "a.png", "GNNExplainer"))
    b = pixels(points_scatter_png(points, values[::-1], tmp_path / "b.png", "GNNExplainer"))
    assert a.shape[0] > 200 and a.shape == b.shape and (a != b).any(-1).sum() > 50
    with pytest.raises(ValueError, match="one value per point"):
        points_scatter_png(points, values[:-1], tmp_path / "c.png", "t")


def test_habitat_scores_land_on_their_voxels_of_the_full_grid():
    from gliotype.explain.perfusion import code_volume, spread

    labels = np.array([[[1]], [[2]], [[0]]], np.int32)  # a 3x1x1 crop: habitats 1, 2 and one outside voxel
    volume = spread(np.array([2.0, 5.0]), labels, np.array([1, 0, 0]), (5, 1, 1), sigma=0)
    assert volume[:, 0, 0].tolist() == [0.0, 2.0, 5.0, 0.0, 0.0]
    codes = code_volume({"habitat_map": labels, "coarse_code": np.array([7, 3])}, np.array([2, 0, 0]), (5, 1, 1))
    assert codes[:, 0, 0].tolist() == [0, 0, 7, 3, 0]
