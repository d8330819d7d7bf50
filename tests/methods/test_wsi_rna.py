"""wsi-rna: patches retrieve the RNA of their own lineage when both are driven by one latent; blind images cannot.

Each tiny patient has two lineages, each with a latent ``(a, b)``: its histology tiles are flat colours whose
red and blue channels follow ``a`` and ``b`` (plus pixel noise) and its RNA has 8 "lineage" genes loading on
``(a, b)`` among 24 noise genes. A control cohort draws the tile colours from another, unrelated latent.
"""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gliotype.methods.wsi_rna import assign_files
from gliotype.report import write_report
from gliotype.train import evaluate, train
from gliotype.train.retrieval import explain_retrieval

FAST = {"size": 32, "image_size": 32, "patch": 8, "embed": 32, "depth": 1, "heads": 2, "projection": 16,
        "rna_dim": 32, "rna_heads": 2, "n_tokens": 2, "epochs": 150, "lineages_per_batch": 8, "lr": 1e-3,
        "matching": False, "score": "tissue", "threshold": 0.0}


def write_cohort(root, n=24, seed=0, blind=False):
    rng = np.random.default_rng(seed)
    genes = [f"LIN{i}" for i in range(8)] + [f"N{i}" for i in range(24)]
    loading = np.zeros((len(genes), 2))
    loading[:8] = rng.normal(size=(8, 2)) * 2
    rows, labels, truth = [], [], {}
    for p in range(n):
        pid = f"P{p:02d}"
        (root / pid / "histology").mkdir(parents=True)
        labels.append(f"{pid},{'mutant' if p % 2 else 'wildtype'}")
        for k in (1, 2):
            sid, latent = f"{pid}-L{k}", rng.normal(size=2)
            truth[sid] = latent
            shown = rng.normal(size=2) if blind else latent
            x = loading @ latent + rng.normal(0, 0.3, len(genes))
            rows.append({"patient_id": pid, "sample_id": sid, **dict(zip(genes, x + 5))})
            for r in (1, 2):
                colour = np.array([128 + 40 * shown[0], 100, 128 + 40 * shown[1]])
                tile = np.clip(colour + rng.normal(0, 8, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(tile).save(root / pid / "histology" / f"{sid}_roi{r}.png")
    pd.DataFrame(rows).to_csv(root / "rnaseq.tsv", sep="\t", index=False)
    (root / "labels.csv").write_text("patient_id,idh\n" + "\n".join(labels) + "\n")
    modules = [genes[:8], genes[8:20], genes[20:]]  # a PPI with three dense modules
    edges = [(a, b) for m in modules for i, a in enumerate(m) for b in m[i + 1:]]
    pd.DataFrame(edges, columns=["gene_a", "gene_b"]).to_csv(root / "ppi.csv", index=False)
    return root


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory):
    base = tmp_path_factory.mktemp("wsi")
    return write_cohort(base / "linked"), write_cohort(base / "blind", blind=True)


def test_files_go_to_the_sample_their_name_starts_with():
    assert assign_files(["T-01A-TS1.svs", "T-01B_x.png"], ["T-01A", "T-01B", "T-01"]) == {
        "T-01A-TS1.svs": "T-01A", "T-01B_x.png": "T-01B"}
    assert assign_files(["anything.png"], ["only"]) == {"anything.png": "only"}


@pytest.mark.usefixtures("one_thread")
def test_held_out_lineages_are_retrieved_only_when_images_show_the_latent(cohorts, tmp_path):
    linked, blind = cohorts
    runs = {name: train(root, "wsi-rna", "lineage", tmp_path / name, folds=3, seed=0, overrides=FAST)
            for name, root in (("linked", linked), ("blind", blind))}
    metrics = {k: json.loads((v / "metrics.json").read_text()) for k, v in runs.items()}
    chance = metrics["linked"]["chance"]["lineage_accuracy"]
    assert chance == pytest.approx(1 / 16)  # a fold holds out 8 patients: 16 RNA samples in the gallery
    # measured: linked 0.333 (5.3 x chance), blind 0.042
    assert metrics["linked"]["metrics"]["lineage_accuracy"]["value"] >= 4 * chance
    assert metrics["linked"]["metrics"]["lineage_accuracy"]["ci_low"] > chance
    assert metrics["blind"]["metrics"]["lineage_accuracy"]["value"] <= 2 * chance
    # held out: no tested patient is among its fold's training patients
    splits = pd.read_csv(runs["linked"] / "splits.csv")
    retrievals = pd.read_csv(runs["linked"] / "retrievals.csv")
    for fold, rows in retrievals.groupby("fold"):
        trained = set(splits[(splits.fold == fold) & (splits.role == "train")].patient_id)
        assert not trained & set(rows.patient_id) and not trained & set(rows.retrieved_patient)
    # the genes that carry the lineage are the ones the retrievals lean on (8 of 32 genes; measured: 3 of the
    # top 5 linked, none blind)
    top = {k: pd.read_csv(v / "top_genes.csv").gene.head(5) for k, v in runs.items()}
    assert top["linked"].str.startswith("LIN").sum() >= 3 > top["blind"].str.startswith("LIN").sum()

    html = write_report([runs["linked"]], tmp_path / "report.html").read_text()
    value = metrics["linked"]["metrics"]["lineage_accuracy"]
    assert f"{value['value']:.3f} [{value['ci_low']:.3f}, {value['ci_high']:.3f}]" in html  # recomputed, equal
    assert "Top genes" in html and f"<td>{chance:.3f}</td>" in html

    again = evaluate(runs["linked"], linked, tmp_path / "external")
    external = json.loads((again / "metrics.json").read_text())
    assert external["model"] == "fold_ensemble" and external["n"] == 24 * 2 * 2
    assert external["chance"]["lineage_accuracy"] == pytest.approx(1 / 48)

    # the overall gene votes are recomputable from the genes each retrieval lists
    listed = retrievals.top_genes.str.split(";").explode().value_counts()
    ranked = pd.read_csv(runs["linked"] / "top_genes.csv")
    assert ranked.retrievals.tolist() == listed[ranked.gene].tolist()
    # one patient's retrievals with each of the 3 fold models: 2 lineages x 2 ROIs, among all 48 samples
    explained = explain_retrieval(runs["linked"], linked, "P05", tmp_path / "explain")
    rows = pd.read_csv(explained["files"]["retrievals"])
    assert explained["n_models"] == 3 and explained["n_patches"] == 4 and len(rows) == 12
    assert set(rows.patient_id) == {"P05"} and set(rows.fold) == {0, 1, 2} and (rows.gallery_size == 48).all()
    assert explained["lineage_accuracy"] == pytest.approx((rows.retrieved_lineage == rows.lineage).mean())
    assert explained["top_genes"] == pd.read_csv(explained["files"]["top_genes"]).gene.tolist()
