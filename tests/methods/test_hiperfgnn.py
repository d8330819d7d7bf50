"""``hiperfgnn`` end to end on the tiny DSC cohort: multi-task files, another cohort with another T, saliency."""

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from gliotype.cohort import Cohort
from gliotype.explain import explain_patient
from gliotype.methods import create_method
from gliotype.methods.hiperf_graphs import build_graph
from gliotype.methods.hiperfgnn import VARIANTS
from gliotype.prepare import load_prepared, run_stage
from gliotype.train import evaluate, train

SMALL = {"vqvae_epochs": 2, "vqvae_curves": 5000, "hidden": 16, "batch_size": 4}


@pytest.fixture(scope="module")
def multitask_run(tiny_dsc_cohort, tmp_path_factory):
    return train(tiny_dsc_cohort, "hiperfgnn", "idh", tmp_path_factory.mktemp("hiperf") / "run", folds=2, epochs=6,
                 seed=0, overrides={**SMALL, "tasks": ["codel_1p19q", "grade"]})


def test_multitask_run_writes_each_target_with_intervals(multitask_run):
    metrics = json.loads((multitask_run / "metrics.json").read_text())
    assert metrics["target"] == "idh" and metrics["metrics"]["auc"]["value"] >= 0.9  # planted bolus depth
    assert set(metrics["tasks"]) == {"codel_1p19q", "grade"}
    for target, classes in (("codel_1p19q", ["intact", "codeleted"]), ("grade", ["2", "3", "4"])):
        rows = pd.read_csv(multitask_run / "tasks" / target / "predictions.csv", dtype={"y_true": str})
        assert len(rows) == 12 and set(rows.target) == {target}
        assert [c[5:] for c in rows.columns if c.startswith("prob_")] == classes
        np.testing.assert_allclose(rows.filter(like="prob_").sum(axis=1), 1.0, atol=1e-6)
        auc = json.loads((multitask_run / "tasks" / target / "metrics.json").read_text())["metrics"]["auc"]
        assert auc["ci_low"] <= auc["value"] <= auc["ci_high"]
        assert metrics["tasks"][target]["metrics"]["auc"] == auc
    grade = pd.read_csv(multitask_run / "tasks" / "grade" / "predictions.csv", dtype={"y_true": str})
    assert sorted(grade.y_true.unique()) == ["2", "3", "4"]


def test_a_model_is_applied_to_a_cohort_with_other_timepoints(multitask_run, make_dsc_cohort, tmp_path):
    other = make_dsc_cohort(tmp_path / "other", seed=5, timepoints=30)  # trained on 40 time points
    out = evaluate(multitask_run, other, tmp_path / "eval")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 12 and metrics["model"] == "fold_ensemble"
    assert metrics["metrics"]["auc"]["value"] >= 0.9
    assert (out / "tasks" / "grade" / "predictions.csv").is_file()


def test_saliency_lies_on_the_dsc_grid_and_the_tumour(multitask_run, tiny_dsc_cohort, tmp_path):
    result = explain_patient(multitask_run, tiny_dsc_cohort, "D000", tmp_path / "explain")
    dsc = nib.load(tiny_dsc_cohort / "D000" / "D000-dsc.nii.gz")
    saliency, codes = (nib.load(result.files[k]) for k in ("saliency", "codes"))
    assert saliency.shape == dsc.shape[:3] and np.allclose(saliency.affine, dsc.affine)
    tumour = nib.load(tiny_dsc_cohort / "D000" / "D000-seg.nii.gz").get_fdata() > 0
    code_map = np.asarray(codes.dataobj)
    assert ((code_map > 0) == tumour).all() and code_map.max() <= 8
    heat = np.abs(saliency.get_fdata())
    assert heat[tumour].sum() > 0.5 * heat.sum()  # smoothed by 1 voxel, most of it stays in the tumour
    assert result.files["png"].stat().st_size > 10_000
    summary = json.loads((tmp_path / "explain" / "explain.json").read_text())
    assert set(summary["probabilities"]) == {"prediction", "task:codel_1p19q", "task:grade"}
    assert set(summary["probabilities"]["task:grade"]) == {"2", "3", "4"}


def test_structure_only_variant_trains_without_a_vqvae(tiny_dsc_cohort, tmp_path):
    run = train(tiny_dsc_cohort, "hiperfgnn", "idh", tmp_path / "run", folds=2, epochs=2, seed=0,
                overrides={**SMALL, "mode": "fine"})
    assert len(pd.read_csv(run / "predictions.csv")) == 12
    fit = json.loads((run / "model" / "fold0.json").read_text())["fit"]
    assert fit["vqvae"] == {}  # the structure-only variant never trains or reads a VQ-VAE


def test_perfusion_flat_variant_learns_from_the_habitat_graph_alone(tiny_dsc_cohort, tmp_path):
    run = train(tiny_dsc_cohort, "hiperfgnn", "idh", tmp_path / "run", folds=2, epochs=6, seed=0,
                overrides={**SMALL, **VARIANTS["perfusion-flat"]})
    assert json.loads((run / "metrics.json").read_text())["metrics"]["auc"]["value"] >= 0.9  # planted bolus depth
    graphs = list((tiny_dsc_cohort / ".gliotype-cache" / "hiperf_graph").rglob("*.npz"))
    flat = {g.parent.name for g in graphs if "fine_x" not in np.load(g).files and "coarse_x" in np.load(g).files}
    assert len(flat) == 12  # every patient's graph, one per fold's VQ-VAE, without a SLIC level


def test_structure_only_graph_does_not_read_the_perfusion(tiny_dsc_cohort):
    method = create_method("hiperfgnn", mode="fine")
    done = run_stage("perfusion_input", Cohort.from_folder(tiny_dsc_cohort), ["D001"], method.stage_config("perfusion_input"))
    item = method.item({"perfusion_input": load_prepared(done.done["D001"])[0]})
    graph = build_graph(item, None, method.config)
    flat = build_graph({**item, "curves": np.zeros_like(item["curves"])}, None, method.config)
    assert "coarse_x" not in graph and graph["fine_x"].shape[1] == 4
    for key, value in graph.items():
        np.testing.assert_array_equal(value, flat[key])


def test_codel_can_be_learnt_on_idh_mutant_patients_only():
    method = create_method("hiperfgnn", tasks=["idh", "codel_1p19q"], codel_idh_mutant_only=True)
    method._names = ("codel_1p19q", "idh")
    codel = np.array([1, 0, 1, -1])
    idh = np.array([1, 1, 0, 1])  # wildtype, mutant ... in TARGETS order (wildtype = 0)
    labels = method._task_labels(codel, {"idh": idh}, "codel_1p19q")
    np.testing.assert_array_equal(labels[:, 0], [1, 0, -1, -1])  # the wildtype patient's codel is masked
    np.testing.assert_array_equal(labels[:, 1], idh)
    assert method.label_targets("codel_1p19q") == ("idh",) and method.label_targets("idh") == ()
