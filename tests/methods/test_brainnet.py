"""``brainnet`` (paper 001) on the tiny hand-made cohort: configuration, splits, heads, label isolation, explain."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from gliotype.explain import explain_patient
from gliotype.methods import feature_heads as fh
from gliotype.methods.brainnet import VARIANTS, BrainNetConfig, split_for_classifiers
from gliotype.train import evaluate, train

CHECK_RUN = Path(__file__).resolve().parents[2] / ".." / "shared" / "tools" / "check_run.py"
# noise-cube "brains" register to MNI152 badly (Dice ~0.2): min_dice 0 here; the real-patient test checks Dice
TINY = {"size": 32, "spacing": 3.0, "batch_size": 4, "n_points": 64, "patience": 5, "transform": "Affine",
        "min_dice": 0.0, "n_voxels": 8, "image_channels": [4, 4, 8, 8, 8], "gat_channels": [8, 8],
        "generator_epochs": 2, "generator_patients": 4, "generator_hidden": [16, 8], "generator_fa_hidden": [8],
        "population_epochs": 20}


@pytest.fixture(scope="module")
def brainnet_run(tiny_mri_cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("brainnet") / "run"
    return train(tiny_mri_cohort, "brainnet", "idh", out, folds=2, epochs=2, seed=0, overrides=TINY)


def test_config_refuses_combinations_that_cannot_work():
    with pytest.raises(ValidationError, match="classifier_fraction > 0"):
        BrainNetConfig(classifier="mlp", classifier_fraction=0.0)
    with pytest.raises(ValidationError, match="needs features of encoders that are off"):
        BrainNetConfig(encoders=["image", "geometry"], population="uTB-rB")
    for name, options in VARIANTS.items():  # every named variant is a valid configuration
        assert BrainNetConfig(**options).encoders, name


def test_split_for_classifiers_halves_each_class_and_never_overlaps():
    y = np.array([0] * 10 + [1] * 6)
    encoder, classifier = split_for_classifiers(y, 0.5, seed=3, n_classes=2)
    assert len(set(encoder) & set(classifier)) == 0 and len(encoder) + len(classifier) == 16
    assert np.bincount(y[classifier]).tolist() == [5, 3] and np.bincount(y[encoder]).tolist() == [5, 3]
    with pytest.raises(ValueError, match="too few to split"):
        split_for_classifiers(np.array([0, 0, 0, 1]), 0.5, seed=0, n_classes=2)


def test_population_choices_pick_the_papers_node_and_edge_features():
    tumour, brain = np.ones((3, 2)), np.zeros((3, 4))
    nodes, edges = fh.population_features("uT-rB", tumour, brain)
    assert nodes.shape == (3, 2) and edges.shape == (3, 4)
    nodes, edges = fh.population_features("uTB-rT", tumour, brain)
    assert nodes.shape == (3, 6) and edges.shape == (3, 2)
    assert fh.population_needs("uB-rT") == {"tumour", "brain"} and fh.population_needs("uTB-rB") == {"tumour", "brain"}


def test_feature_heads_give_the_population_graph_no_test_label(monkeypatch):
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 20)
    pattern = np.array([1.0, -1.0] * 4)  # a pattern, not a level: eq. 8's correlation ignores a row's mean
    brain = rng.normal(size=(40, 8)) + 2.0 * (y[:, None] - 0.5) * pattern  # the brain features carry the label
    tumour = rng.normal(size=(40, 8))
    seen = {}
    real = fh.fit_predict_population

    def spy(nodes, edges, labels, *args, **kwargs):
        seen["labels"] = np.asarray(labels).copy()
        return real(nodes, edges, labels, *args, **kwargs)

    monkeypatch.setattr(fh, "fit_predict_population", spy)
    train_idx, test_idx = np.arange(0, 40, 2), np.arange(1, 40, 2)
    heads = fh.feature_heads({"tumour": tumour[train_idx], "brain": brain[train_idx]}, y[train_idx],
                             {"tumour": tumour[test_idx], "brain": brain[test_idx]}, 2,
                             config=fh.PopulationConfig(epochs=60))
    assert (seen["labels"][20:] == -1).all() and (seen["labels"][:20] == y[train_idx]).all()
    from sklearn.metrics import roc_auc_score

    for head in ("population", "mlp", "svm"):
        assert heads[head].shape == (20, 2)
        assert roc_auc_score(y[test_idx], heads[head][:, 1]) >= 0.9, head


def test_brainnet_run_writes_every_head_and_passes_the_contract(brainnet_run):
    heads = pd.read_csv(brainnet_run / "head_predictions.csv", dtype={"patient_id": str})
    assert set(heads["head"]) == {"encoder", "population", "mlp", "svm"}
    pred = pd.read_csv(brainnet_run / "predictions.csv", dtype={"patient_id": str}).set_index("patient_id")
    population = heads[heads["head"] == "population"].set_index("patient_id")
    np.testing.assert_allclose(pred.loc[population.index, "prob_mutant"], population["prob_mutant"], atol=1e-9)
    fold = json.loads((brainnet_run / "model" / "fold0.json").read_text())
    assert fold["fit"]["n_classifier_patients"] > 0 and fold["fit"]["generator"]["edge_training"]
    if CHECK_RUN.is_file():
        subprocess.run([sys.executable, str(CHECK_RUN), str(brainnet_run)], check=True, capture_output=True)


def test_test_labels_never_change_a_prediction(brainnet_run, tiny_mri_cohort, tmp_path):
    flipped = tmp_path / "flipped"
    shutil.copytree(tiny_mri_cohort, flipped, ignore=shutil.ignore_patterns(".gliotype-cache"))
    labels = pd.read_csv(flipped / "labels.csv", dtype=str)
    labels["idh"] = labels["idh"].map({"mutant": "wildtype", "wildtype": "mutant"})
    labels.to_csv(flipped / "labels.csv", index=False)
    cache = tiny_mri_cohort / ".gliotype-cache"
    a = pd.read_csv(evaluate(brainnet_run, tiny_mri_cohort, tmp_path / "a", cache_dir=cache) / "predictions.csv")
    b = pd.read_csv(evaluate(brainnet_run, flipped, tmp_path / "b", cache_dir=cache) / "predictions.csv")
    np.testing.assert_array_equal(a["prob_mutant"].to_numpy(), b["prob_mutant"].to_numpy())
    assert (a["y_true"] != b["y_true"]).all()


@pytest.mark.realdata
def test_explain_the_real_patient_writes_its_pathways_on_its_own_grid(brainnet_run, shared_data, tmp_path):
    cohort = shared_data / "tcga-mri"
    result = explain_patient(brainnet_run, cohort, "TCGA-DU-7294", tmp_path / "x", gnn_epochs=20,
                             cache_dir=tmp_path / "cache")
    summary = json.loads(result.files["summary"].read_text())["network"]
    assert summary["registration_dice"] >= 0.85 and summary["pathways_attended"] > 0
    t1 = nib.load(cohort / "TCGA-DU-7294" / "TCGA-DU-7294-t1n.nii.gz")
    edges_map = nib.load(result.files["network_edges_map"])
    assert edges_map.shape == t1.shape and np.array_equal(edges_map.affine, t1.affine)
    kept = pd.read_csv(result.files["network_edges"])
    assert list(kept.columns) == ["region_a", "region_b", "importance", "edge_attention"]
    assert (kept.importance > 0.5).all()
    values = np.asarray(edges_map.dataobj)
    assert (values.max() > 0.5) == (len(kept) > 0) and values.max() <= 1
    attended = pd.read_csv(result.files["network_attention"])
    assert (attended.edge_attention > 0).all() and len(attended) == summary["pathways_attended"]
