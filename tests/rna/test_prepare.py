"""ExpressionScaler on tables small enough to check by hand; restrict_tokens; read_gene_chromosomes."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from safetensors.torch import load, save

from gliotype.rna import GeneTokens, read_gene_chromosomes
from gliotype.rna.prepare import ExpressionScaler, ScalerConfig, looks_raw, restrict_tokens

# A: mean 3, population std sqrt(3.5); B: constant; C: one value missing; D: mean 1, std 1
TRAIN = pd.DataFrame({"A": [1.0, 2.0, 3.0, 6.0], "B": [5.0] * 4, "C": [1.0, np.nan, 2.0, 3.0],
                      "D": [0.0, 0.0, 2.0, 2.0]}, index=["s1", "s2", "s3", "s4"])


def test_train_statistics_are_used_for_new_samples_and_bad_genes_dropped():
    scaler = ExpressionScaler().fit(TRAIN)
    assert scaler.genes == ["A", "D"]  # B constant, C incomplete
    assert scaler.report == {"samples": 4, "genes_in": 4, "incomplete": 1, "low_variance": 1, "genes": 2,
                             "log2": False}
    assert np.allclose(scaler.mean, [3.0, 1.0]) and np.allclose(scaler.scale, [math.sqrt(3.5), 1.0])
    test = pd.DataFrame({"D": [3.0, 1.0], "A": [4.5, 3.0], "B": [0.0, 9.0]})  # columns in another order
    z = scaler.transform(test)
    assert z.dtype == np.float32 and z.shape == (2, 2)
    assert np.allclose(z, [[1.5 / math.sqrt(3.5), 2.0], [0.0, 0.0]], atol=1e-6)  # 0.8018, 2


def test_values_are_clipped_and_a_missing_gene_sits_at_the_mean():
    scaler = ExpressionScaler(ScalerConfig(max_missing_genes=0.5)).fit(TRAIN)
    z = scaler.transform(pd.DataFrame({"D": [10.0, np.nan]}))  # A absent; D = 10 is 9 sd above
    assert np.allclose(z, [[0.0, 5.0], [0.0, 0.0]])
    unclipped = ExpressionScaler(ScalerConfig(clip=None)).fit(TRAIN)
    assert np.allclose(unclipped.transform(pd.DataFrame({"A": [3.0], "D": [10.0]})), [[0.0, 9.0]])


def test_too_many_missing_genes_is_refused():
    scaler = ExpressionScaler().fit(TRAIN)  # max_missing_genes 0.1: none of 2 genes may be missing
    with pytest.raises(ValueError, match=r"lacks 1 of the model's 2 genes \(e.g. \['A'\]\)"):
        scaler.transform(pd.DataFrame({"D": [1.0]}))


def test_log_rule():
    counts = pd.DataFrame({"A": [0.0, 10.0, 1000.0], "B": [3.0, 7.0, 15.0]})
    assert looks_raw(counts.to_numpy()) and not looks_raw(np.array([0.0, 5.0, 99.0]))
    assert not looks_raw(np.array([-1.0, 500.0]))  # z-scores or log-ratios: negatives
    scaler = ExpressionScaler().fit(counts)
    assert scaler.log2 and np.allclose(scaler.mean, [np.log2([1, 11, 1001]).mean(), np.log2([4, 8, 16]).mean()])
    assert np.allclose(scaler.mean[1], 3.0) and np.allclose(scaler.scale[1], math.sqrt(2 / 3))
    assert np.allclose(scaler.transform(pd.DataFrame({"A": [0.0], "B": [7.0]}))[0, 1], 0.0)  # log2(8) = mean
    assert not ExpressionScaler().fit(counts / 100).log2  # max 10: already on a log scale
    assert not ExpressionScaler(ScalerConfig(log=False)).fit(counts).log2
    with pytest.raises(ValueError, match="log=True needs non-negative"):
        ExpressionScaler(ScalerConfig(log=True)).fit(TRAIN - 2)


def test_keep_top_variance_keeps_the_most_variable_genes_in_table_order():
    frame = pd.DataFrame({"A": [0.0, 1.0], "B": [0.0, 4.0], "C": [0.0, 2.0], "D": [0.0, 3.0]})
    assert ExpressionScaler(ScalerConfig(keep_top_variance=2)).fit(frame).genes == ["B", "D"]


def test_state_round_trips_through_safetensors_and_json():
    scaler = ExpressionScaler().fit(TRAIN)
    tensors, meta = scaler.state()
    back = ExpressionScaler.from_state(load(save(tensors)), json.loads(json.dumps(meta)))
    test = pd.DataFrame({"A": [4.5, -1.0], "D": [3.0, 0.5]})
    assert back.genes == ["A", "D"] and np.array_equal(back.transform(test), scaler.transform(test))


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="must be numbers; 1 are not, e.g. \\['name'\\]"):
        ExpressionScaler().fit(TRAIN.assign(name="x"))
    with pytest.raises(ValueError, match="no gene varies"):
        ExpressionScaler().fit(TRAIN[["B"]])
    with pytest.raises(RuntimeError, match="call fit"):
        ExpressionScaler().transform(TRAIN)


def test_restrict_tokens_drops_filtered_genes_and_empty_tokens():
    tokens = GeneTokens(("ppi-0", "ppi-1", "remainder"), (("A", "B"), ("C",), ("D", "E")), "ppi", {"genes": 5})
    kept = restrict_tokens(tokens, ["A", "D", "E"])
    assert kept.names == ("ppi-0", "remainder") and kept.genes == (("A",), ("D", "E"))
    assert kept.report == {"genes": 5, "filtered_out": 2, "dropped_tokens": ["ppi-1"]}


def test_read_gene_chromosomes_takes_biomart_headers(tmp_path):
    path = tmp_path / "mart.tsv"
    path.write_text("Gene stable ID\tGene name\tChromosome/scaffold name\n"
                    "ENSG1\tTP53\t17\nENSG2\tEGFR\t7\nENSG3\tEGFR\t7\nENSG4\tNOCHR\t\n")
    assert read_gene_chromosomes(path) == {"TP53": "17", "EGFR": "7"}
    two = tmp_path / "two.csv"
    two.write_text("hugo,where\nTP53,chr17\n")
    assert read_gene_chromosomes(two) == {"TP53": "chr17"}
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(ValueError, match="bad.csv: cannot find the gene and chromosome columns"):
        read_gene_chromosomes(bad)
