"""``rnaseq``: a planted gene-module signal is learnt, a random label is not, restore is exact, no leak.

Synthetic cohort: 300 genes, 5 PPI modules of 56 genes (each gene linked to the next 4 of its module, one
edge between neighbouring modules) and 20 genes outside the PPI. Every module has a per-sample factor
(its genes co-vary); in module M0 the mutant patients' first 28 genes are shifted by +1 sd and the other
28 by -1 sd (a shift of all of them would hide in the module factor). 160 patients, 100 to train and 60 to
test; one patient in four has two samples. ``IDH1_mut`` is the label itself: were it a feature, the
random-label control would score 1.
"""

from __future__ import annotations

import json
import re
import shutil
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from gliotype.cohort import Cohort
from gliotype.methods import FitContext, create_method
from gliotype.rna import REMAINDER
from gliotype.train.checkpoint import load_checkpoint, save_checkpoint

MODULES, PER_MODULE, OUTSIDE = 5, 56, 20
FAST = dict(dim=32, heads=4, batch_size=16, pretrain_epochs=3, epochs=30, n_tokens=5)


def write_cohort(root, n=160, seed=0, shift=1.0, random_label=False, ppi=True):
    rng = np.random.default_rng(seed)
    genes = [f"M{m}G{g:02d}" for m in range(MODULES) for g in range(PER_MODULE)] + [f"X{g:02d}" for g in range(OUTSIDE)]
    mutant = np.arange(n) % 2 == 1
    label = rng.permutation(mutant) if random_label else mutant
    rows, samples = [], []
    for i in range(n):
        for s in range(2 if i % 4 == 0 else 1):
            factors = np.repeat(rng.normal(0, 1, MODULES), PER_MODULE)
            x = np.concatenate([factors, np.zeros(OUTSIDE)]) + rng.normal(0, 1, len(genes))
            x[:PER_MODULE] += shift * mutant[i] * np.repeat([1, -1], PER_MODULE // 2)
            rows.append([f"P{i:03d}", f"P{i:03d}-{s}", float(label[i])] + list(np.round(x, 4)))
        samples.append((f"P{i:03d}", "mutant" if label[i] else "wildtype"))
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["patient_id", "sample_id", "IDH1_mut", *genes]).to_csv(root / "rnaseq.tsv", sep="\t",
                                                                                       index=False)
    pd.DataFrame(samples, columns=["patient_id", "idh"]).to_csv(root / "labels.csv", index=False)
    if ppi:
        edges = [(f"M{m}G{g:02d}", f"M{m}G{(g + k) % PER_MODULE:02d}") for m in range(MODULES)
                 for g in range(PER_MODULE) for k in range(1, 5)]
        edges += [(f"M{m}G00", f"M{m + 1}G00") for m in range(MODULES - 1)]
        pd.DataFrame(edges, columns=["gene_a", "gene_b"]).assign(score=900).to_csv(root / "ppi.csv", index=False)
    return root


def fit_and_score(root, work, n_train=100, **config):
    """Train on the first ``n_train`` patients, test on the others; returns the method, state, test items, AUC."""
    cohort = Cohort.from_folder(root)
    method = create_method("rnaseq", **{**FAST, **config})
    ids = sorted(cohort.cases)
    prepared = method.prepare(cohort, ids)
    y = np.array([int(cohort[p].label("idh") == "mutant") for p in ids])
    items = [prepared.inputs[p] for p in ids]
    state = method.fit(items[:n_train], y[:n_train], [], y[:0], 2, FitContext(work, seed=0))
    probs = method.predict_proba(state, items[n_train:], 2)
    return method, state, items[n_train:], roc_auc_score(y[n_train:], probs[:, 1]), prepared


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = write_cohort(tmp_path_factory.mktemp("planted") / "cohort")
    start = time.perf_counter()
    result = fit_and_score(root, tmp_path_factory.mktemp("work"))
    return (*result, time.perf_counter() - start, root)


def test_planted_module_signal_is_learnt(planted):
    method, state, _, auc, prepared, seconds, _ = planted
    print(f"planted signal: held-out AUC {auc:.3f} in {seconds:.1f}s")
    assert auc > 0.9
    tokens = prepared.fingerprint["tokens"]
    assert tokens["count"] == 6 and tokens["names"][-1] == REMAINDER and tokens["remainder"] == OUTSIDE
    assert tokens["sizes"] == [PER_MODULE] * MODULES + [OUTSIDE]  # Louvain finds the five modules
    assert method.fit_summary["samples"] == 100 + 25 and method.fit_summary["patients"] == 100


def test_label_columns_are_never_features(planted):
    method, state, _, _, prepared, _, _ = planted
    assert prepared.fingerprint["dropped_label_columns"] == ["IDH1_mut"]
    assert "IDH1_mut" not in method.scaler_meta["genes"] and len(method.scaler_meta["genes"]) == 300
    assert "IDH1_mut" not in {g for token in method.used.genes for g in token}


def test_random_label_stays_near_chance(tmp_path):
    # IDH1_mut equals this random label: using it would give AUC 1. For 30 + 30 test patients a chance AUC has
    # sd ~ 0.075 (Hanley-McNeil), so +-0.25 is over 3 sd
    auc = fit_and_score(write_cohort(tmp_path / "c", random_label=True), tmp_path / "w")[3]
    print(f"random label: held-out AUC {auc:.3f}")
    assert abs(auc - 0.5) < 0.25


def test_restore_from_sidecar_reproduces_predictions(planted, tmp_path):
    method, state, test_items, _, _, _, root = planted
    save_checkpoint(tmp_path / "fold0.safetensors", state, {"method": "rnaseq", "method_state": method.sidecar()})
    tensors, sidecar = load_checkpoint(tmp_path / "fold0.safetensors", expect_method="rnaseq")
    shutil.copytree(root, tmp_path / "external", ignore=shutil.ignore_patterns("ppi.csv"))
    cohort = Cohort.from_folder(tmp_path / "external")  # a cohort without a PPI: prediction needs none
    fresh = create_method("rnaseq", **FAST)
    inputs = fresh.prepare(cohort, sorted(cohort.cases)).inputs
    fresh.restore(json.loads(json.dumps(sidecar["method_state"])))
    external = [inputs[f"P{i:03d}"] for i in range(100, 160)]
    assert np.array_equal(fresh.predict_proba(tensors, external, 2), method.predict_proba(state, test_items, 2))


def test_a_patient_is_the_mean_of_its_samples(planted):
    method, state, test_items, _, _, _, _ = planted
    two = next(item for item in test_items if len(item) == 2)  # P100 has two samples
    each = method.predict_proba(state, [two.iloc[[0]], two.iloc[[1]]], 2)
    assert np.allclose(method.predict_proba(state, [two], 2), each.mean(0, keepdims=True), atol=1e-12)


def test_same_seed_same_model(tmp_path):
    root = write_cohort(tmp_path / "c", n=40)
    cohort = Cohort.from_folder(root)
    states = []
    for run in ("a", "b"):
        method = create_method("rnaseq", **{**FAST, "pretrain_epochs": 1, "epochs": 1})
        prepared = method.prepare(cohort, sorted(cohort.cases))
        items = list(prepared.inputs.values())
        states.append(method.fit(items, np.arange(len(items)) % 2, [], np.zeros(0, int), 2,
                                 FitContext(tmp_path / run, seed=3)))
    assert states[0].keys() == states[1].keys()
    assert all(np.array_equal(states[0][k].numpy(), states[1][k].numpy()) for k in states[0])


@pytest.mark.parametrize("config, message", [
    ({}, r"c: rnaseq groups genes by PPI communities but the cohort has no ppi.csv and no ppi= was given; "
         r"give --set ppi=PATH .* or use --set groups=chromosome --set chromosomes=PATH"),
    ({"ppi": "nowhere.csv"}, r"ppi='nowhere.csv' is not a file"),
    ({"groups": "chromosome"}, r"groups=chromosome needs a gene -> chromosome table; give --set chromosomes=PATH"),
])
def test_missing_ppi_says_how_to_fix(tmp_path, config, message):
    cohort = Cohort.from_folder(write_cohort(tmp_path / "c", n=8, ppi=False))
    method = create_method("rnaseq", **config)
    prepared = method.prepare(cohort, sorted(cohort.cases))  # only fitting needs tokens
    assert re.search(message, prepared.fingerprint["tokens"]["error"])
    with pytest.raises(ValueError, match=message):
        method.fit(list(prepared.inputs.values()), np.arange(8) % 2, [], np.zeros(0, int), 2, FitContext(tmp_path))


def test_chromosome_groups_from_a_table(tmp_path):
    cohort = Cohort.from_folder(write_cohort(tmp_path / "c", n=8, ppi=False))
    table = tmp_path / "chromosomes.csv"
    table.write_text("gene,chromosome\n" + "".join(f"M{m}G{g:02d},{m + 1}\n" for m in range(2) for g in range(56)))
    prepared = create_method("rnaseq", groups="chromosome", chromosomes=str(table)).prepare(cohort, ["P000"])
    tokens = prepared.fingerprint["tokens"]
    assert tokens["names"] == ["chr1", "chr2", REMAINDER] and tokens["sizes"] == [56, 56, 300 - 112]


@pytest.mark.realdata
def test_real_tcga_idh(shared_data, tmp_path):
    from gliotype.train import train

    ppi = shared_data / "ppi" / "string_v12_edges.csv.gz"
    aucs, start = {}, time.perf_counter()
    for name, overrides in (("rnaseq", {"ppi": str(ppi)}), ("rnaseq-lr", {})):
        run = train(shared_data / "tcga-rnaseq", name, "idh", tmp_path / name, folds=5, seed=0, overrides=overrides)
        aucs[name] = json.loads((run / "metrics.json").read_text())["metrics"]["auc"]
    sidecar = json.loads((tmp_path / "rnaseq" / "model" / "fold0.json").read_text())
    tokens = sidecar["preprocessing"]["tokens"]
    print(f"TCGA IDH pooled out-of-fold AUC: {aucs} in {time.perf_counter() - start:.0f}s; tokens {tokens['sizes']}")
    assert tokens["count"] == 8 and tokens["names"][-1] == REMAINDER and tokens["source"] == ppi.name
    assert sum(tokens["sizes"]) == 1544 and tokens["remainder"] == tokens["sizes"][-1]
    assert aucs["rnaseq"]["value"] >= 0.90 and aucs["rnaseq-lr"]["value"] >= 0.90
