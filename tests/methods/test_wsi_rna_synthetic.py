"""Acceptance (slow): wsi-rna on the synthetic cohort retrieves held-out lineages above chance, and each
retrieval's most important genes include the generator's lineage-specific genes of the retrieved sample.

The generator (``gliotype.cohort.synth``) gives each lineage a latent that shifts its tiles' eosin tint,
nuclear size and cellularity and the ``GM10`` genes of its RNA, plus 5 lineage-specific genes raised by
1.8 (``synth.json``: ``lineage_genes``). Those 5 genes differ between samples, so no gene list ranked over
all retrievals can hold them; they are checked per retrieval (``retrievals.csv``, ``top_genes``).
"""

import json
from math import comb

import pandas as pd
import pytest

from gliotype.cohort.synth import synthesize
from gliotype.train import train

SETTINGS = {"image_size": 64, "embed": 96, "depth": 2, "epochs": 300, "matching": False}


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_synthetic_lineages_are_retrieved_and_their_genes_found(tmp_path):
    cohort = synthesize(tmp_path / "c40", n_patients=40, seed=3, optional=("histology",))
    run = train(cohort, "wsi-rna", "lineage", tmp_path / "run", folds=5, seed=0, overrides=SETTINGS)
    metrics = json.loads((run / "metrics.json").read_text())
    lineage, chance = metrics["metrics"]["lineage_accuracy"], metrics["chance"]["lineage_accuracy"]
    retrievals = pd.read_csv(run / "retrievals.csv")
    truth = json.loads((cohort / "synth.json").read_text())["patients"]
    specific = {s: set(g) for t in truth.values() for s, g in t["lineage_genes"].items()}
    found = [bool(set(genes.split(";")) & specific[s]) for genes, s in zip(retrievals.top_genes,
                                                                         retrievals.retrieved_lineage)]
    n_genes, k = 450, len(retrievals.top_genes[0].split(";"))
    found_chance = 1 - comb(n_genes - 5, k) / comb(n_genes, k)
    print(f"\nlineage accuracy {lineage['value']:.3f} [{lineage['ci_low']:.3f}, {lineage['ci_high']:.3f}], "
          f"chance {chance:.3f}; patient accuracy {metrics['metrics']['patient_accuracy']['value']:.3f}, chance "
          f"{metrics['chance']['patient_accuracy']:.3f}; lineage genes among a retrieval's top {k}: "
          f"{sum(found) / len(found):.3f} (chance {found_chance:.3f})")
    assert lineage["ci_low"] > chance and lineage["value"] >= 1.5 * chance
    assert sum(found) / len(found) >= 3 * found_chance
