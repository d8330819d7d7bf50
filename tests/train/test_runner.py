"""The CV runner: Contract 2 files, patient-level splits, leakage guard, refusals."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from gliotype.train import evaluate, predict, train

CHECK_RUN = "check_run.py"


def run_checker(shared_data, run):
    tool = shared_data.parent / "tools" / CHECK_RUN
    if not tool.is_file():
        pytest.skip(f"{tool} not found")
    return subprocess.run([sys.executable, str(tool), str(run)], capture_output=True, text=True)


def test_rnaseq_lr_writes_contract_files_and_learns_planted_gene(tiny_mri_cohort, tmp_path):
    run = train(tiny_mri_cohort, "rnaseq-lr", "idh", tmp_path / "run", folds=4)
    for name in ("config.yaml", "splits.csv", "predictions.csv", "metrics.json", "cohort.json",
                 "model/fold0.safetensors", "model/fold0.json"):
        assert (run / name).is_file(), name
    pred = pd.read_csv(run / "predictions.csv")
    assert list(pred.columns) == ["patient_id", "target", "fold", "y_true", "y_pred", "prob_wildtype", "prob_mutant"]
    assert len(pred) == 16 and pred.patient_id.is_unique
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["metrics"]["auc"]["value"] >= 0.95  # G0 separates the classes by 4 SD
    assert metrics["ci"]["n_boot"] == 1000 and metrics["ci"]["unit"] == "patient"


def test_splits_are_patient_level_and_validation_comes_from_training(tiny_mri_cohort, tmp_path):
    run = train(tiny_mri_cohort, "rnaseq-lr", "idh", tmp_path / "run", folds=4)
    splits = pd.read_csv(run / "splits.csv")
    tests = splits[splits.role == "test"]
    assert sorted(tests.patient_id) == sorted(splits.patient_id.unique())  # everyone tested exactly once
    assert not splits.duplicated(["patient_id", "fold"]).any()
    per_fold = tests.groupby("fold").patient_id.apply(list)
    labels = pd.read_csv(tiny_mri_cohort / "labels.csv").set_index("patient_id").idh
    for fold, ids in per_fold.items():
        assert sorted(labels[ids].value_counts().tolist()) == [2, 2]  # stratified: 2 + 2 in each of 4 folds


def test_label_like_columns_are_never_features(tmp_path):
    rng = np.random.default_rng(1)
    n = 40
    y = np.array(["mutant", "wildtype"] * (n // 2))
    table = pd.DataFrame(rng.normal(size=(n, 5)), columns=[f"N{i}" for i in range(5)])  # noise genes only
    table.insert(0, "patient_id", [f"Q{i}" for i in range(n)])
    table["IDH1_mut"] = (y == "mutant").astype(float)  # the label in disguise
    table.to_csv(tmp_path / "rnaseq.tsv", sep="\t", index=False)
    pd.DataFrame({"patient_id": table.patient_id, "idh": y}).to_csv(tmp_path / "labels.csv", index=False)
    run = train(tmp_path, "rnaseq-lr", "idh", tmp_path / "run", folds=5)
    genes = json.loads((run / "model" / "fold0.json").read_text())["method_state"]["genes"]
    assert "IDH1_mut" not in genes and genes == [f"N{i}" for i in range(5)]
    assert json.loads((run / "metrics.json").read_text())["metrics"]["auc"]["value"] < 0.75


def test_evaluate_and_predict_apply_the_fold_ensemble(tiny_mri_cohort, tmp_path):
    run = train(tiny_mri_cohort, "rnaseq-lr", "idh", tmp_path / "run", folds=4)
    out = evaluate(run, tiny_mri_cohort, tmp_path / "ext")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "fold_ensemble" and metrics["n_models"] == 4 and metrics["n"] == 16
    frame = predict(run, tiny_mri_cohort, tmp_path / "pred.csv")
    ext = pd.read_csv(out / "predictions.csv")
    assert np.allclose(frame.prob_mutant, ext.prob_mutant) and (ext.fold == "ensemble").all()


def test_contract_checker_accepts_train_and_evaluate_runs(tiny_mri_cohort, tmp_path, shared_data):
    run = train(tiny_mri_cohort, "rnaseq-lr", "idh", tmp_path / "run", folds=4)
    ext = evaluate(run, tiny_mri_cohort, tmp_path / "ext")
    for folder in (run, ext):
        result = run_checker(shared_data, folder)
        assert result.returncode == 0, result.stdout


def test_refusals_name_the_problem(tiny_mri_cohort, tmp_path):
    with pytest.raises(ValueError, match="did you mean 'rnaseq-lr'"):
        train(tiny_mri_cohort, "rnaseq-lrr", "idh", tmp_path / "a")
    with pytest.raises(ValueError, match=r"only one class present"):
        train(tiny_mri_cohort, "rnaseq-lr", "codel_1p19q", tmp_path / "b", folds=2)
    with pytest.raises(ValueError, match="too small for 9 stratified parts"):
        train(tiny_mri_cohort, "rnaseq-lr", "idh", tmp_path / "c", folds=9)
    train(tiny_mri_cohort, "rnaseq-lr", "idh", tmp_path / "d", folds=2)
    with pytest.raises(ValueError, match="already holds a run with another configuration"):
        train(tiny_mri_cohort, "rnaseq-lr", "idh", tmp_path / "d", folds=3)
    with pytest.raises(ValueError, match="bad configuration for 'rnaseq-lr': C: Input should be greater than 0"):
        train(tiny_mri_cohort, "rnaseq-lr", "idh", tmp_path / "e", overrides={"C": -1})


def test_a_method_without_its_modality_names_it(tmp_path):
    (tmp_path / "labels.csv").write_text("patient_id,idh\nA,mutant\nB,wildtype\n")
    (tmp_path / "rnaseq.tsv").write_text("patient_id\tG1\nA\t1\nB\t2\n")
    with pytest.raises(ValueError, match=r"no patient can be used by 'cnn3d'.*needs \['mri', 'seg'\].*lacks mri, seg"):
        train(tmp_path, "cnn3d", "idh", tmp_path / "run")


def test_holdout_and_config_file(tiny_mri_cohort, tmp_path):
    (tmp_path / "lr.yaml").write_text("C: 2.0\nclip: null\n")
    run = train(tiny_mri_cohort, "rnaseq-svm", "idh", tmp_path / "run", folds=1, holdout_fraction=0.25,
                config_file=tmp_path / "lr.yaml")
    splits = pd.read_csv(run / "splits.csv")
    assert (splits.fold == 0).all() and (splits.role == "test").sum() == 4 and (splits.role == "train").sum() == 12
    config = (run / "config.yaml").read_text()
    assert "C: 2.0" in config and "clip: null" in config and "holdout: 0.25" in config
    assert len(pd.read_csv(run / "predictions.csv")) == 4
