"""``colearn``, ``pointgnn`` and their explanation on the tiny hand-made cohort (spherical tumours, T2 label)."""

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from gliotype.explain import explain_patient
from gliotype.methods import create_method
from gliotype.methods.rotation import rotate_batch, rotated_classes
from gliotype.train import evaluate, train

CHECK_RUN = Path(__file__).resolve().parents[2] / ".." / "shared" / "tools" / "check_run.py"
TINY = {"size": 16, "spacing": 3.0, "batch_size": 4, "n_points": 64, "patience": 5}


@pytest.fixture(scope="module")
def colearn_run(tiny_mri_cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("colearn") / "run"
    return train(tiny_mri_cohort, "colearn", "idh", out, folds=2, epochs=2, seed=0, overrides=TINY)


def test_colearn_prediction_is_the_mean_of_its_two_heads(colearn_run):
    pred = pd.read_csv(colearn_run / "predictions.csv", dtype={"patient_id": str})
    heads = pd.read_csv(colearn_run / "head_predictions.csv", dtype={"patient_id": str})
    assert set(heads["head"]) == {"cnn", "gnn"}
    wide = heads.pivot(index="patient_id", columns="head", values="prob_mutant")
    mean = pred.set_index("patient_id")["prob_mutant"]
    np.testing.assert_allclose(mean.loc[wide.index], (wide["cnn"] + wide["gnn"]) / 2, atol=1e-9)
    metrics = json.loads((colearn_run / "metrics.json").read_text())
    assert set(metrics["heads"]) == {"cnn", "gnn"} and "auc" in metrics["heads"]["cnn"]
    if CHECK_RUN.is_file():
        subprocess.run([sys.executable, str(CHECK_RUN), str(colearn_run)], check=True, capture_output=True)


def test_evaluate_writes_the_heads_of_the_fold_ensemble(colearn_run, tiny_mri_cohort, tmp_path):
    out = evaluate(colearn_run, tiny_mri_cohort, tmp_path / "ext")
    heads = pd.read_csv(out / "head_predictions.csv")
    assert set(heads["fold"]) == {"ensemble"} and len(heads) == 2 * 16


def test_explain_colearn_writes_maps_on_the_t1_grid(colearn_run, tiny_mri_cohort, tmp_path):
    result = explain_patient(colearn_run, tiny_mri_cohort, "P003", tmp_path / "x", gnn_epochs=20)
    t1 = nib.load(tiny_mri_cohort / "P003" / "P003-t1n.nii.gz")
    cam = nib.load(result.files["gradcam"])
    assert cam.shape == t1.shape and np.allclose(cam.affine, t1.affine)
    values = np.asarray(cam.dataobj)
    seg = np.asarray(nib.load(tiny_mri_cohort / "P003" / "P003-seg.nii.gz").dataobj) > 0
    assert values.max() <= 1 and values[~seg].max() == 0  # the cube is masked by the tumour: no evidence outside
    points = pd.read_csv(result.files["gnnexplainer_points"])
    assert list(points.columns) == ["x", "y", "z", "importance"] and len(points) == 64
    assert points.importance.between(0, 1).all()
    # the points lie on the tumour surface in scanner mm: back to voxels, they sit next to the mask
    vox = np.c_[points[["x", "y", "z"]].to_numpy(), np.ones(len(points))] @ np.linalg.inv(t1.affine).T
    near = np.round(vox[:, :3]).astype(int).clip(0, np.array(seg.shape) - 1)
    from scipy import ndimage
    assert ndimage.binary_dilation(seg, iterations=1)[tuple(near.T)].mean() > 0.95
    projected = pd.read_csv(result.files["gradcam_points"])
    assert list(projected.columns) == ["x", "y", "z", "gradcam"] and projected.gradcam.between(0, 1).all()
    summary = json.loads((tmp_path / "x" / "explain.json").read_text())
    assert summary["n_models"] == 2 and set(summary["probabilities"]) == {"prediction", "cnn", "gnn"}
    for png in ("gradcam_slices", "gnnexplainer_points_png"):
        assert result.files[png].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("method", ["cnn3d", "pointgnn"])
def test_explain_works_for_each_learner_alone(method, tiny_mri_cohort, tmp_path):
    run = train(tiny_mri_cohort, method, "idh", tmp_path / "run", folds=2, epochs=1, seed=0,
                overrides={k: v for k, v in TINY.items() if k in type(create_method(method).config).model_fields})
    files = explain_patient(run, tiny_mri_cohort, "P000", tmp_path / "x", gnn_epochs=10).files
    assert ("gradcam" in files) == (method == "cnn3d")
    assert ("gnnexplainer_points" in files) == (method == "pointgnn")


def test_explain_names_a_missing_patient(colearn_run, tiny_mri_cohort, tmp_path):
    with pytest.raises(ValueError, match="NOPE: no such patient"):
        explain_patient(colearn_run, tiny_mri_cohort, "NOPE", tmp_path / "x")


def test_colearn_loss_is_two_cross_entropies_plus_weighted_kl():
    method = create_method("colearn", kl_weight=0.0)
    torch.manual_seed(0)
    model = method.build(2).eval()
    batch = {"image": torch.randn(3, 4, 16, 16, 16), "points": torch.rand(3, 64, 3) * 2 - 1}
    y, weight = torch.tensor([0, 1, 1]), torch.ones(2)
    with torch.no_grad():
        loss, log_prob = method.loss(model, batch, y, weight)
        lu, lv, zu, zv = model(batch["image"], batch["points"])
        ce = torch.nn.functional.cross_entropy(lu, y) + torch.nn.functional.cross_entropy(lv, y)
        assert torch.allclose(loss, ce)
        assert torch.allclose(log_prob.exp(), (lu.softmax(1) + lv.softmax(1)) / 2)
        method.config.kl_weight = 2.0
        with_kl, _ = method.loss(model, batch, y, weight)
        p, q = zu.softmax(1), zv.softmax(1)
        kl = ((p * (p.log() - q.log())).sum(1) + (q * (q.log() - p.log())).sum(1)).mean()
        assert torch.allclose(with_kl, ce + 2.0 * kl, atol=1e-6)


def test_minority_rotation_turns_cube_and_points_alike_and_leaves_the_majority():
    assert rotated_classes(np.array([0, 0, 0, 1]), 2, "minority") == [1]
    assert rotated_classes(np.array([0, 1]), 2, "minority") == []
    assert rotated_classes(np.array([0, 1]), 2, "all") == [0, 1]
    image = torch.zeros(2, 1, 17, 17, 17)
    image[:, 0, 14, 8, 8] = 1.0  # a voxel 6 voxels along +x from the centre (8, 8, 8)
    points = torch.tensor([[[6 / 8, 0.0, 0.0]]]).repeat(2, 1, 1)
    torch.manual_seed(3)
    batch = {"image": image, "points": points}
    assert rotate_batch(batch, torch.tensor([0, 1]), [], max_deg=90) is batch
    out = rotate_batch(batch, torch.tensor([0, 1]), [1], max_deg=90)
    assert torch.equal(out["image"][0], image[0]) and torch.equal(out["points"][0], points[0])
    vol = out["image"][1, 0]
    com = (torch.stack(torch.meshgrid(*[torch.arange(17.0)] * 3, indexing="ij")) * vol).flatten(1).sum(1) / vol.sum()
    assert torch.allclose((com - 8) / 8, out["points"][1, 0], atol=0.15)
    assert not torch.allclose(out["points"][1, 0], points[1, 0])


def test_report_shows_each_head(colearn_run, tmp_path):
    from gliotype.report import write_report

    html = write_report([colearn_run], tmp_path / "report.html").read_text()
    heads = json.loads((colearn_run / "metrics.json").read_text())["heads"]
    assert "<h3>Heads</h3>" in html and f"{heads['gnn']['auc']['value']:.3f}" in html


@pytest.mark.realdata
def test_explain_on_the_real_tcga_patient_writes_gradcam_on_its_own_grid(colearn_run, shared_data, tmp_path):
    cohort = shared_data / "tcga-mri"
    result = explain_patient(colearn_run, cohort, "TCGA-DU-7294", tmp_path / "x", gnn_epochs=10,
                             cache_dir=tmp_path / "cache")
    t1 = nib.load(cohort / "TCGA-DU-7294" / "TCGA-DU-7294-t1n.nii.gz")  # stored LPS: written back as LPS
    cam = nib.load(result.files["gradcam"])
    assert cam.shape == t1.shape and np.array_equal(cam.affine, t1.affine)
    seg = np.asarray(nib.load(cohort / "TCGA-DU-7294" / "TCGA-DU-7294-seg.nii.gz").dataobj)
    values = np.asarray(cam.dataobj)
    assert values.max() == pytest.approx(1.0) and values[seg == 0].max() == 0  # core = label 1 here
    assert len(pd.read_csv(result.files["gnnexplainer_points"])) == 64
