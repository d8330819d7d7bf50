"""The histology methods of paper 004 end to end on tiny ROI cohorts with planted signals.

The cohort (``tests/conftest.py``): IDH-mutant patients' ROIs carry a dark square in the top-left quadrant,
and their ``cnv_EGFR`` is 0 (2 when wildtype). Image methods must find the square; the fusion baselines must
find IDH through the genomics when the images carry nothing, and an image-only method must not.
"""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from gliotype.cohort import Cohort
from gliotype.methods import create_method
from gliotype.methods.histology import expand, mean_by
from gliotype.train import evaluate, train
from gliotype.train.checkpoint import load_checkpoint

TINY = {"tile_size": 32, "patch": 8, "embed": 32, "depth": 3, "heads": 2, "batch_size": 4, "lr": 1e-3,
        "patience": 30}


def auc_of(run) -> float:
    return json.loads((run / "metrics.json").read_text())["metrics"]["auc"]["value"]


@pytest.fixture(scope="module")
def fof_run(tiny_histology_cohort, tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # two threads on two shared cores stall on each other
    try:
        return train(tiny_histology_cohort, "fof", "idh", tmp_path_factory.mktemp("fof") / "run", folds=2,
                     epochs=25, seed=0, overrides={**TINY, "biomarkers": ["codel_1p19q", "cnv_EGFR"]})
    finally:
        torch.set_num_threads(before)


def test_fof_finds_the_planted_square_and_saves_its_aggregation(fof_run):
    assert auc_of(fof_run) >= 0.9
    config = (fof_run / "config.yaml").read_text()
    assert "aggregation: mean" in config and "frl: true" in config and "mca: true" in config
    rows = pd.read_csv(fof_run / "predictions.csv")
    assert len(rows) == 16 and set(rows.fold) == {0, 1}


def test_patient_probability_is_the_mean_of_its_images(fof_run, tiny_histology_cohort):
    method = create_method("fof", **{**TINY, "biomarkers": ["codel_1p19q", "cnv_EGFR"]})
    cohort = Cohort.from_folder(tiny_histology_cohort)
    items = method.prepare(cohort, ["H000", "H001"]).inputs
    state, _ = load_checkpoint(fof_run / "model" / "fold0.safetensors")
    patients = method.predict_proba(state, [items["H000"], items["H001"]], 2, "cpu")
    model = method.load_model(state, 2, "cpu")
    with torch.no_grad():
        per_image = torch.softmax(model(method.images({"image": items["H001"]["tiles"]})), 1).numpy()
    assert items["H001"]["tiles"].shape == (3, 3, 32, 32)
    np.testing.assert_allclose(patients[1], per_image.mean(0), atol=1e-6)
    np.testing.assert_allclose(patients.sum(1), 1.0, atol=1e-6)


def test_mean_by_and_expand_by_hand():
    np.testing.assert_allclose(mean_by(np.array([0, 0, 1]), np.array([[1.0, 0.0], [0.0, 1.0], [0.2, 0.8]]), 2),
                               [[0.5, 0.5], [0.2, 0.8]])
    items = [{"tiles": torch.zeros(2, 3, 4, 4, dtype=torch.uint8), "patient_id": "A", "markers": torch.tensor([1])},
             {"tiles": torch.ones(1, 3, 4, 4, dtype=torch.uint8), "patient_id": "B", "markers": torch.tensor([0])}]
    rois, y = expand(items, np.array([1, 0]))
    assert len(rois) == 3 and y.tolist() == [1, 1, 0]
    assert set(rois[0]) == {"image", "markers"} and int(rois[2]["image"].max()) == 1


def test_genomics_are_one_hot_without_the_target_and_zero_when_unknown():
    method = create_method("concat-fusion", genomics=["idh", "codel_1p19q", "cnv_EGFR"])
    method._genomic = method.genomic_columns("idh")
    assert method._genomic == ["codel_1p19q", "cnv_EGFR"] and method.genomic_dim() == 2 + 5
    markers = torch.tensor([[1, 0, 4], [0, -1, -1]])  # idh, codel (intact, codeleted), cnv (-2..2)
    np.testing.assert_array_equal(method.genomics({"markers": markers}).numpy(),
                                  [[1, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0]])


def test_fusion_skips_a_patient_without_genomics_and_image_methods_keep_it(make_histology_cohort, tmp_path):
    root = make_histology_cohort(tmp_path / "c", n=4)
    labels = (root / "labels.csv").read_text().replace("H002,wildtype,intact,4,2", "H002,wildtype,,4,")
    (root / "labels.csv").write_text(labels)
    cohort = Cohort.from_folder(root)
    fusion = create_method("concat-fusion", genomics=["codel_1p19q", "cnv_EGFR"], tile_size=32)
    prepared = fusion.prepare(cohort, cohort.patient_ids)
    assert sorted(prepared.inputs) == ["H000", "H001", "H003"]
    assert "H002" in prepared.failed["H002"] and "fof" in prepared.failed["H002"]
    assert prepared.inputs["H001"]["markers"].tolist() == [0, 2]  # intact, CNV 0
    assert "H002" in create_method("kd", genomics=["codel_1p19q", "cnv_EGFR"], tile_size=32).prepare(
        cohort, cohort.patient_ids).inputs


def test_fusion_finds_idh_in_the_genomics_and_an_image_method_does_not(make_histology_cohort, tmp_path, one_thread):
    root = make_histology_cohort(tmp_path / "blank", n=16, image_signal=False)
    fusion = train(root, "concat-fusion", "idh", tmp_path / "fusion", folds=2, epochs=10, seed=0,
                   overrides={**TINY, "genomics": ["cnv_EGFR"]})
    image_only = train(root, "vit", "idh", tmp_path / "vit", folds=2, epochs=10, seed=0, overrides=TINY)
    assert auc_of(fusion) >= 0.9
    assert auc_of(image_only) <= 0.8


def test_kd_distils_a_fusion_teacher_and_predicts_from_images_alone(tiny_histology_cohort, tmp_path, one_thread):
    run = train(tiny_histology_cohort, "kd", "idh", tmp_path / "kd", folds=2, epochs=25, seed=0,
                overrides={**TINY, "genomics": ["cnv_EGFR"]})
    assert (run / "work" / "fold0" / "teacher" / "best.safetensors").is_file()
    assert (run / "work" / "fold0" / "student" / "best.safetensors").is_file()
    assert auc_of(run) >= 0.9
    unlabelled = tmp_path / "images-only"
    (unlabelled).mkdir()
    for pid in ("H000", "H001"):
        (unlabelled / pid).symlink_to(tiny_histology_cohort / pid, target_is_directory=True)
    (unlabelled / "labels.csv").write_text("patient_id,idh\nH000,wildtype\nH001,mutant\n")
    out = evaluate(run, unlabelled, tmp_path / "eval")
    assert len(pd.read_csv(out / "predictions.csv")) == 2


def test_fusion_refuses_genomics_that_are_only_the_target(tiny_histology_cohort, tmp_path):
    with pytest.raises(ValueError, match="no column besides the target 'idh'"):
        train(tiny_histology_cohort, "concat-fusion", "idh", tmp_path / "run", folds=2, epochs=1,
              overrides={**TINY, "genomics": ["idh"]})
