"""``gliotype explain`` for the histology methods: FRL maps per ROI and the positive / negative token views.

The tiny cohort (``tiny_histology_cohort``): 16 patients, 3 ROIs of 48 px each, resized to 32 px tiles, so
with patch 8 every tile is a 4 x 4 grid of 16 tokens. IDH-mutant patients (odd ids) have a dark 18 px square
(12 px after resizing) in the top-left quadrant of every ROI, i.e. inside tokens with row < 2 and col < 2.
"""

from __future__ import annotations

import json
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from gliotype.explain import explain_patient
from gliotype.explain.histology import FIGURE_PX, _outline, explain_tiles, tile_names
from gliotype.methods import create_method
from gliotype.nn.vit import VisionTransformer
from gliotype.train import predict, train

TINY = {"tile_size": 32, "patch": 8, "embed": 32, "depth": 3, "heads": 2, "batch_size": 8, "lr": 1e-3}
EPOCHS = 60  # 30 epochs leaves p(mutant) ~ 0.5 and a map that misses the square; 60 reaches AUC 1 (2 folds)


@contextmanager
def one_torch_thread():
    """Two intra-op threads on two shared cores make the tiny ViT's training ~7x slower (96 s vs 13 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def fof_run(tiny_histology_cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("fof") / "run"
    with one_torch_thread():
        return train(tiny_histology_cohort, "fof", "idh", out, folds=2, epochs=EPOCHS, seed=0,
                     overrides={**TINY, "biomarkers": ["cnv_EGFR"]})


@pytest.fixture(scope="module")
def mutant(fof_run, tiny_histology_cohort, tmp_path_factory):
    """The explanation of H001 (mutant) and its token table."""
    with one_torch_thread():
        result = explain_patient(fof_run, tiny_histology_cohort, "H001", tmp_path_factory.mktemp("x") / "H001",
                                 device="cpu")
    return result, pd.read_csv(result.files["token_masks"])


def test_token_table_has_16_tokens_per_tile_and_views_at_theta(mutant):
    result, table = mutant
    assert list(table.columns) == ["tile", "file", "token", "row", "col", "cam", "view"]
    assert len(table) == 3 * 16  # 3 ROIs x (32 px / patch 8)^2
    assert table.groupby("tile").file.first().tolist() == ["H001_roi0.png", "H001_roi1.png", "H001_roi2.png"]
    assert (table.row == table.token // 4).all() and (table.col == table.token % 4).all()
    assert table.token.tolist() == list(range(16)) * 3
    assert (table.view == np.where(table.cam >= 0.5, "positive", "negative")).all()
    assert table.groupby("tile").cam.max().tolist() == [1.0, 1.0, 1.0]  # min-max normalised per tile
    assert table.groupby("tile").cam.min().tolist() == [0.0, 0.0, 0.0]
    kept = table[table.view == "positive"].groupby("tile").size()
    assert [t["positive_tokens"] for t in result.summary["tiles"]] == kept.reindex(range(3), fill_value=0).tolist()


def test_a_png_per_roi(mutant):
    result, _ = mutant
    names = sorted(p.name for p in result.out.glob("frl_*.png"))
    assert names == ["frl_H001_roi0.png", "frl_H001_roi1.png", "frl_H001_roi2.png"]
    for name in names:
        with Image.open(result.out / name) as image:
            assert image.format == "PNG" and image.size == FIGURE_PX == (400, 440)
    assert result.summary["files"]["token_masks"] == "token_masks.csv"


def test_patient_probability_is_the_mean_of_its_tiles_and_matches_predict(mutant, fof_run, tiny_histology_cohort,
                                                                           tmp_path):
    result, _ = mutant
    summary = json.loads((result.out / "explain.json").read_text())
    tiles = [t["probabilities"]["mutant"] for t in summary["tiles"]]
    patient = summary["probabilities"]["prediction"]["mutant"]
    assert len(tiles) == 3 and patient == pytest.approx(np.mean(tiles), abs=1e-12)
    frame = predict(fof_run, tiny_histology_cohort, tmp_path / "p.csv").set_index("patient_id")
    assert patient == pytest.approx(frame.loc["H001", "prob_mutant"], abs=1e-5)
    assert summary["class_explained"] == "mutant" and patient > 0.5
    assert summary["frl"] == {**summary["frl"], "cam_block": -2, "theta": 0.5, "grid": [4, 4]}
    assert summary["n_models"] == 2


@pytest.mark.parametrize("patient", ["H001", "H003"])
def test_mutant_focus_is_the_dark_square_in_the_top_left_quadrant(patient, mutant, fof_run, tiny_histology_cohort,
                                                                  tmp_path):
    table = mutant[1] if patient == "H001" else pd.read_csv(
        explain_patient(fof_run, tiny_histology_cohort, patient, tmp_path / "x", device="cpu").files["token_masks"])
    positive = table[table.view == "positive"]
    top_left = (positive.row < 2) & (positive.col < 2)
    assert len(positive) > 0 and top_left.mean() >= 0.75  # chance: 4 of 16 tokens = 0.25 (measured: 1.0)


def test_a_named_class_is_explained(fof_run, tiny_histology_cohort, tmp_path):
    result = explain_patient(fof_run, tiny_histology_cohort, "H001", tmp_path / "x", class_name="wildtype",
                             device="cpu")
    assert result.summary["class_explained"] == "wildtype"
    with pytest.raises(ValueError, match="'grade4'.*wildtype"):
        explain_patient(fof_run, tiny_histology_cohort, "H001", tmp_path / "y", class_name="grade4")


def test_a_fusion_run_is_refused(tiny_histology_cohort, tmp_path, one_thread):
    run = train(tiny_histology_cohort, "concat-fusion", "idh", tmp_path / "run", folds=2, epochs=1, seed=0,
                overrides=TINY)
    with pytest.raises(ValueError, match="concat-fusion: .*genomics"):
        explain_patient(run, tiny_histology_cohort, "H001", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_kd_student_is_explained_on_its_own_vit():
    # kd's model is the VisionTransformer itself (fof's is FoFNetwork.vit); its config has no theta or cam_block
    method = create_method("kd", **TINY)
    torch.manual_seed(0)
    model = method.build(2).eval()
    assert isinstance(model, VisionTransformer)
    tiles = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    frl = explain_tiles(method, [model, model], tiles, 2, lambda p: 1)
    assert frl["cam"].shape == (3, 16) and frl["grid"] == (4, 4) and (frl["cam_block"], frl["theta"]) == (-2, 0.5)
    assert frl["target"] == 1 and frl["probabilities"].shape == (3, 2)
    np.testing.assert_allclose(frl["probabilities"].sum(1), 1, atol=1e-6)
    np.testing.assert_array_equal(frl["positive_mask"], frl["cam"] < 0.5)


def test_tile_names_number_the_tiles_of_a_file_that_gives_several():
    assert tile_names(["a.png", "b.svs"], np.array([0, 1, 1])) == ["frl_a.png", "frl_b_0.png", "frl_b_1.png"]
    assert tile_names(["a.png", "a.tif"], np.array([0, 1])) == ["frl_a_png.png", "frl_a_tif.png"]


def test_outline_of_an_l_of_three_patches_is_its_eight_boundary_edges():
    kept = np.array([[True, True], [True, False]])  # patches of 8 px: (0, 0), (0, 1), (1, 0)
    segments = {tuple(map(tuple, s)) for s in _outline(kept, 8.0, 8.0)}  # ((x0, y0), (x1, y1))
    assert segments == {((0, 0), (8, 0)), ((8, 0), (16, 0)),      # top
                        ((16, 0), (16, 8)), ((8, 8), (16, 8)),    # right of (0, 1), below it
                        ((8, 8), (8, 16)), ((0, 16), (8, 16)),    # right of (1, 0), below it
                        ((0, 0), (0, 8)), ((0, 8), (0, 16))}      # left
