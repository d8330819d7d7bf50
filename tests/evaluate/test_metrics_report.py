"""metrics_report builds Contract 2's metrics.json from predictions alone, and passes check_run.py."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gliotype.evaluate import compute_metrics, metrics_report, read_predictions

CHECKER = Path(__file__).resolve().parents[2].parent / "shared" / "tools" / "check_run.py"
METRICS = ["auc", "accuracy", "sensitivity", "specificity", "f1_macro", "ap", "kappa", "balanced_accuracy"]


def predictions(n=60, classes=("wildtype", "mutant"), target="idh", folds=3, seed=0):
    """A cross-validated predictions frame with informative probabilities; patient 3 is unlabelled."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % len(classes)
    prob = rng.dirichlet(np.ones(len(classes)), n) + 1.5 * np.eye(len(classes))[y] * rng.uniform(0, 1, (n, 1))
    prob /= prob.sum(1, keepdims=True)
    names = np.array(classes, dtype=object)
    frame = pd.DataFrame(
        {
            "patient_id": [f"P{i:03d}" for i in range(n)],
            "target": target,
            "fold": (np.arange(n) // len(classes)) % folds,
            "y_true": names[y],
            "y_pred": names[prob.argmax(1)],
        }
    )
    for k, c in enumerate(classes):
        frame[f"prob_{c}"] = prob[:, k]
    frame.loc[3, "y_true"] = np.nan
    return frame


def write_run(folder: Path, frame: pd.DataFrame, report: dict, train: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / "predictions.csv", index=False)
    (folder / "metrics.json").write_text(json.dumps(report, allow_nan=False))
    if train:
        (folder / "config.yaml").write_text(f"method: {report['method']}\ntarget: {report['target']}\n")
        frame[["patient_id", "fold"]].assign(role="test").to_csv(folder / "splits.csv", index=False)
        (folder / "model").mkdir(exist_ok=True)
        (folder / "model" / "model.safetensors").write_bytes(b"")
    return folder


def test_contract_keys_and_unlabelled_rows():
    report = metrics_report(predictions(), ["wildtype", "mutant"], method="radiomics_rf", target="idh", n_boot=200)
    assert report["n"] == 59 and report["n_unlabelled"] == 1
    assert report["positive_class"] == "mutant" and report["classes"] == ["wildtype", "mutant"]
    assert report["ci"] == {
        "method": "percentile",
        "n_boot": 200,
        "stratified": True,
        "unit": "patient",
        "level": 0.95,
        "seed": 0,
    }
    assert set(METRICS + ["ece"]) == set(report["metrics"])
    assert report["calibration"]["ece"] == report["metrics"]["ece"]["value"]
    assert sum(b["count"] for b in report["calibration"]["bins"]) == 59
    assert set(report["per_fold"]) == {"0", "1", "2"} and sum(report["per_fold_n"].values()) == 59
    assert report["per_fold_summary"]["auc"]["n_folds"] == 3
    assert np.sum(report["confusion_matrix"]["counts"]) == 59
    json.dumps(report, allow_nan=False)  # JSON-safe


def test_every_number_is_recomputable_from_predictions_csv(tmp_path):
    frame = predictions(classes=("2", "3", "4"), target="grade")
    report = metrics_report(frame, ["2", "3", "4"], method="m", target="grade", n_boot=100)
    frame.to_csv(tmp_path / "predictions.csv", index=False)
    again, classes = read_predictions(tmp_path / "predictions.csv")
    rows = again[again["y_true"].notna()]
    y = rows["y_true"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    prob = rows[[f"prob_{c}" for c in classes]].to_numpy()
    recomputed = compute_metrics(y, prob, ordinal=True)
    assert report["ordinal"] and "kappa_quadratic" in report["metrics"]
    for name, value in recomputed.items():
        assert report["metrics"][name]["value"] == pytest.approx(value), name
    fold0 = rows["fold"].to_numpy() == 0
    assert report["per_fold"]["0"]["auc"] == pytest.approx(compute_metrics(y[fold0], prob[fold0], ordinal=True)["auc"])


def test_extra_keys_are_added_but_cannot_replace():
    frame = predictions()
    report = metrics_report(frame, ["wildtype", "mutant"], "m", "idh", n_boot=50, extra={"model": "fold ensemble"})
    assert report["model"] == "fold ensemble"
    with pytest.raises(ValueError, match=r"not replace \['n'\]"):
        metrics_report(frame, ["wildtype", "mutant"], "m", "idh", n_boot=50, extra={"n": 3})


def test_repeated_patient_is_refused_by_name():
    frame = predictions()
    frame.loc[5, "patient_id"] = "P004"
    with pytest.raises(ValueError, match=r"\['P004'\] appear in \[2\] rows"):
        metrics_report(frame, ["wildtype", "mutant"], "m", "idh", n_boot=50)


def test_no_labelled_rows_gives_undefined_metrics():
    frame = predictions()
    frame["y_true"] = np.nan
    report = metrics_report(frame, ["wildtype", "mutant"], "m", "idh", n_boot=50)
    assert report["n"] == 0 and report["n_unlabelled"] == 60
    assert report["metrics"]["auc"] == {"value": None, "ci_low": None, "ci_high": None}


@pytest.mark.parametrize("train", [False, True], ids=["evaluate-folder", "train-folder"])
@pytest.mark.parametrize("classes,target", [(("wildtype", "mutant"), "idh"), (("2", "3", "4"), "grade")])
def test_output_passes_check_run(tmp_path, capsys, train, classes, target):
    if not CHECKER.is_file():
        pytest.skip(f"checker not found at {CHECKER}")
    spec = importlib.util.spec_from_file_location("check_run", CHECKER)
    check_run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check_run)
    frame = predictions(classes=classes, target=target)
    report = metrics_report(frame, list(classes), method="baseline", target=target, n_boot=200)
    run = write_run(tmp_path / "run", frame, report, train)
    assert check_run.check(run) == []
    assert ": ok" in capsys.readouterr().out
