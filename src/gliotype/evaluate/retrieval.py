"""Retrieval evaluation (paper 003, eq. 9): each query patch retrieves the RNA sample of highest cosine similarity.

A retrieval is correct at the **lineage** level when the retrieved sample is the patch's own sample, and at
the **patient** level when it is any sample of the patch's patient. Chance is what a random pick from the
gallery scores: ``1 / gallery size`` for a lineage, ``(samples of the patient in the gallery) / gallery
size`` for a patient, averaged over the queries.

Confidence intervals: percentile bootstrap over **patients** (a patient's patches are resampled together,
since they are not independent), ``n_boot`` resamples, accuracy = correct patches / patches of the resample.
Every number is recomputable from ``retrievals.csv``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gliotype.evaluate.bootstrap import draw_resamples, percentile_interval

RETRIEVAL_COLUMNS = ["patch_id", "patient_id", "lineage", "fold", "retrieved_lineage", "retrieved_patient",
                     "similarity", "gallery_size", "gallery_own_patient"]
"""The columns of ``retrievals.csv``, one row per query patch."""


def retrieval_frame(patch_ids, patients, lineages, fold, gallery_lineages, gallery_patients, best,
                    similarity) -> pd.DataFrame:
    """One row per query patch (:data:`RETRIEVAL_COLUMNS`): ``best`` (M,) indexes the gallery, ``similarity``
    (M,) is the query's similarity to it."""
    gallery_lineages, gallery_patients = np.asarray(gallery_lineages), np.asarray(gallery_patients)
    patients = np.asarray(patients)
    own = (patients[:, None] == gallery_patients[None, :]).sum(axis=1)
    return pd.DataFrame({
        "patch_id": list(patch_ids), "patient_id": patients, "lineage": list(lineages), "fold": fold,
        "retrieved_lineage": gallery_lineages[best], "retrieved_patient": gallery_patients[best],
        "similarity": np.round(similarity, 6), "gallery_size": len(gallery_lineages), "gallery_own_patient": own,
    }, columns=RETRIEVAL_COLUMNS)


def retrieval_metrics(frame: pd.DataFrame, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Lineage and patient top-1 accuracy with patient-bootstrap CIs, and their chance levels.

    Returns:
        ``{"metrics": {"lineage_accuracy": {value, ci_low, ci_high}, "patient_accuracy": {...}},
        "chance": {"lineage_accuracy": c, "patient_accuracy": c}, "n": patches, "n_patients": P, "ci": {...}}``
    """
    missing = [c for c in RETRIEVAL_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"retrievals: missing columns {missing}; expected {RETRIEVAL_COLUMNS}")
    if frame.empty:
        raise ValueError("retrievals: no query patch to evaluate")
    correct = {"lineage_accuracy": (frame.retrieved_lineage.astype(str) == frame.lineage.astype(str)).to_numpy(),
               "patient_accuracy": (frame.retrieved_patient.astype(str) == frame.patient_id.astype(str)).to_numpy()}
    patient_codes, patients = pd.factorize(frame.patient_id)
    count = np.bincount(patient_codes, minlength=len(patients)).astype(float)
    draws = draw_resamples(np.zeros(len(patients)), n_boot, seed, stratified=False)  # patients, together
    metrics = {}
    for name, hit in correct.items():
        per_patient = np.bincount(patient_codes, weights=hit.astype(float), minlength=len(patients))
        resampled = per_patient[draws].sum(axis=1) / count[draws].sum(axis=1)
        low, high = percentile_interval(resampled, level)
        metrics[name] = {"value": float(hit.mean()), "ci_low": low, "ci_high": high}
    chance = {"lineage_accuracy": float((1.0 / frame.gallery_size).mean()),
              "patient_accuracy": float((frame.gallery_own_patient / frame.gallery_size).mean())}
    return {"metrics": metrics, "chance": chance, "n": int(len(frame)), "n_patients": int(len(patients)),
            "ci": {"method": "percentile", "n_boot": n_boot, "stratified": False, "unit": "patient",
                   "level": level}}
