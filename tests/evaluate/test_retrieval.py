"""Retrieval metrics: lineage / patient accuracy, chance, patient-bootstrap CIs (hand-computed)."""

import numpy as np
import pandas as pd
import pytest

from gliotype.evaluate.retrieval import retrieval_frame, retrieval_metrics


def frame():
    # gallery: A-L1, A-L2 (patient A), B-L1 (patient B); 4 query patches
    gallery_lineages, gallery_patients = ["A-L1", "A-L2", "B-L1"], ["A", "A", "B"]
    best = np.array([0, 1, 2, 0])  # A-L1 -> A-L1 (right), A-L1 -> A-L2 (patient right), B-L1 -> B-L1, B-L1 -> A-L1
    return retrieval_frame(["p1", "p2", "p3", "p4"], ["A", "A", "B", "B"], ["A-L1", "A-L1", "B-L1", "B-L1"], 0,
                           gallery_lineages, gallery_patients, best, np.array([0.9, 0.8, 0.7, 0.6]))


def test_accuracy_and_chance_by_hand():
    m = retrieval_metrics(frame(), n_boot=200, seed=0)
    assert m["metrics"]["lineage_accuracy"]["value"] == pytest.approx(2 / 4)
    assert m["metrics"]["patient_accuracy"]["value"] == pytest.approx(3 / 4)
    assert m["chance"]["lineage_accuracy"] == pytest.approx(1 / 3)
    # patient A owns 2 of the 3 gallery samples, B owns 1: (2/3 + 2/3 + 1/3 + 1/3) / 4
    assert m["chance"]["patient_accuracy"] == pytest.approx(0.5)
    assert (m["n"], m["n_patients"], m["ci"]["unit"]) == (4, 2, "patient")


def test_bootstrap_resamples_patients_whole():
    m = retrieval_metrics(frame(), n_boot=500, seed=1)
    lineage = m["metrics"]["lineage_accuracy"]
    # a resample holds patients A and B (each 1 of 2 right) in any mix: every resample scores exactly 0.5
    assert lineage["ci_low"] == lineage["ci_high"] == pytest.approx(0.5)
    patient = m["metrics"]["patient_accuracy"]
    # A alone 1.0, B alone 0.5, both 0.75: the interval spans exactly those
    assert patient["ci_low"] == pytest.approx(0.5) and patient["ci_high"] == pytest.approx(1.0)


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match="missing columns"):
        retrieval_metrics(pd.DataFrame({"patient_id": ["A"]}))
