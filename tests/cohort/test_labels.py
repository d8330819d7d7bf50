import pandas as pd
import pytest

from gliotype.cohort.labels import canonical_column, label_classes, normal_class, normalise_cnv, normalise_value, read_labels


@pytest.mark.parametrize("header, canonical", [
    ("patient", "patient_id"), ("IDH.status", "idh"), ("X1p.19q.codeletion", "codel_1p19q"),
    ("Grade", "grade"), ("patient_id", "patient_id"), ("cnv_EGFR", "cnv_EGFR"), ("site", "site"),
])
def test_column_aliases(header, canonical):
    assert canonical_column(header) == canonical


@pytest.mark.parametrize("target, raw, value", [
    ("idh", "Mutant", "mutant"), ("idh", "WT", "wildtype"), ("idh", "1", "mutant"), ("idh", "0", "wildtype"),
    ("idh", "MUT", "mutant"), ("idh", "no", "wildtype"), ("idh", 1.0, "mutant"),
    ("codel_1p19q", "codel", "codeleted"), ("codel_1p19q", "non-codel", "intact"), ("codel_1p19q", "yes", "codeleted"),
    ("grade", "G2", "2"), ("grade", "G4", "4"), ("grade", "III", "3"), ("grade", 3, "3"),
    ("idh", "", None), ("idh", "NA", None), ("grade", float("nan"), None),
])
def test_value_aliases(target, raw, value):
    assert normalise_value(target, raw) == value


def test_unknown_value_lists_accepted_forms():
    with pytest.raises(ValueError, match=r"idh value 'maybe' is not a known class; use one of \['mutant', 'wildtype'\]"):
        normalise_value("idh", "maybe")


def test_read_labels_tcga_names(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("patient,IDH.status,X1p.19q.codeletion,Grade\nA,Mutant,codel,G2\nB,WT,non-codel,G4\n"
                    "C,,,\nD,Mutnat,codel,G5\nA,WT,non-codel,G3\n")
    table, problems = read_labels(path)
    assert list(table.index) == ["A", "B", "C", "D"]
    assert table.loc["A"].to_dict() == {"idh": "mutant", "codel_1p19q": "codeleted", "grade": "2"}
    assert table.loc["B"].to_dict() == {"idh": "wildtype", "codel_1p19q": "intact", "grade": "4"}
    assert table.loc["C"].isna().all()  # empty cells are unknown, not a class
    found = {(p.patient_id, p.column) for p in problems}
    assert found == {("A", "patient_id"), ("D", "idh"), ("D", "grade")}
    assert pd.isna(table.loc["D", "idh"]) and table.loc["D", "codel_1p19q"] == "codeleted"


@pytest.mark.parametrize("raw, value", [("2", "2"), ("-1", "-1"), ("1.0", "1"), ("+1", "1"), (" 0 ", "0"), ("", None),
                                        ("NA", None), (None, None)])
def test_cnv_calls_are_read_as_classes(raw, value):
    assert normalise_cnv(raw) == value


@pytest.mark.parametrize("raw", ["3", "0.5", "amp", "-2.5"])
def test_a_cnv_value_that_is_not_a_call_teaches_the_range(raw):
    with pytest.raises(ValueError, match="integer from -2"):
        normalise_cnv(raw)


def test_cnv_columns_and_normal_statuses(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("patient_id,idh,cnv_EGFR,CNV_pten\nA,mutant,2.0,\nB,wt,7,-1\n")
    table, problems = read_labels(path)
    assert table.loc["A", "cnv_EGFR"] == "2" and table.loc["A", "cnv_pten"] is None
    assert table.loc["B", "cnv_EGFR"] is None and table.loc["B", "cnv_pten"] == "-1"
    assert [(p.patient_id, p.column) for p in problems] == [("B", "cnv_EGFR")]
    assert label_classes("cnv_EGFR") == ("-2", "-1", "0", "1", "2") and label_classes("grade") == ("2", "3", "4")
    assert (normal_class("idh"), normal_class("codel_1p19q"), normal_class("cnv_EGFR")) == (0, 0, 2)
    with pytest.raises(ValueError, match="cnv_<GENE>"):
        label_classes("cnv_")
