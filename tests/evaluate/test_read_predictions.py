"""read_predictions: labels stay text, unknown labels are NaN, problems are named."""

import pandas as pd
import pytest

from gliotype.evaluate import read_predictions

CSV = """patient_id,target,fold,y_true,y_pred,prob_2,prob_3,prob_4
A,grade,0,2,2,0.7,0.2,0.1
B,grade,0,,4,0.1,0.2,0.7
C,grade,1,4,3,0.1,0.6,0.3
"""


def test_grade_classes_stay_text_and_empty_labels_are_nan(tmp_path):
    (tmp_path / "predictions.csv").write_text(CSV)
    frame, classes = read_predictions(tmp_path / "predictions.csv")
    assert classes == ["2", "3", "4"]
    assert frame["y_true"].iloc[0] == "2" and pd.isna(frame["y_true"].iloc[1])
    assert frame["patient_id"].tolist() == ["A", "B", "C"]


def test_missing_column_is_named(tmp_path):
    (tmp_path / "predictions.csv").write_text(CSV.replace("fold,", "split,"))
    with pytest.raises(ValueError, match=r"missing column\(s\) \['fold'\]"):
        read_predictions(tmp_path / "predictions.csv")


def test_label_outside_the_classes_is_named(tmp_path):
    (tmp_path / "predictions.csv").write_text(CSV.replace("C,grade,1,4", "C,grade,1,G4"))
    with pytest.raises(ValueError, match=r"\['G4'\] are not among the classes \['2', '3', '4'\]"):
        read_predictions(tmp_path / "predictions.csv")


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_predictions(tmp_path / "nope.csv")
