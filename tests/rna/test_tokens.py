"""Gene tokens on a graph small enough to check by hand, and on the real TCGA genes with STRING."""

from __future__ import annotations

import time
from itertools import combinations

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from gliotype.rna import (REMAINDER, GeneTokens, TokenConfig, build_tokens, chromosome_tokens, merge_smallest,
                          ppi_tokens)

A, B, T = ["A1", "A2", "A3", "A4"], ["B1", "B2", "B3", "B4"], ["T1", "T2", "T3"]
# Two 4-cliques joined by A1-B1, a triangle hanging off B2; I1 interacts only with OUT, a gene not in the table.
EDGES = [*combinations(A, 2), *combinations(B, 2), *combinations(T, 2), ("A1", "B1"), ("T1", "B2"), ("I1", "OUT")]
GENES = [*A, *B, *T, "Z1", "Z2", "I1"]  # Z1, Z2: absent from the PPI


@pytest.fixture
def edges() -> pd.DataFrame:
    return pd.DataFrame(EDGES, columns=["gene_a", "gene_b"]).assign(score=900.0)


def test_louvain_finds_the_two_cliques_and_the_triangle(edges):
    tokens = ppi_tokens(GENES, edges, n_tokens=7)
    assert tokens.names == ("ppi-0", "ppi-1", "ppi-2", REMAINDER)
    assert tokens.genes == (tuple(A), tuple(B), tuple(T), ("I1", "Z1", "Z2"))
    assert tokens.sizes == (4, 4, 3, 3) and tokens.source == "ppi"
    assert {k: tokens.report[k] for k in ("genes", "in_ppi", "not_in_ppi", "isolated", "edges", "communities",
                                          "tokens", "remainder")} == \
        {"genes": 14, "in_ppi": 12, "not_in_ppi": 2, "isolated": 1, "edges": 17, "communities": 3, "tokens": 3,
         "remainder": 3}
    assert tokens.summary() == "3 ppi tokens of 11 genes (sizes 4, 4, 3); remainder 3 genes"


def test_the_smallest_community_merges_into_the_one_it_shares_edges_with(edges):
    tokens = ppi_tokens(GENES, edges, n_tokens=2)
    # by size alone the triangle would join A (tied with B, first gene first); it shares its one edge with B
    assert tokens.genes == ((*B, *T), tuple(A), ("I1", "Z1", "Z2"))
    assert tokens.report["communities"] == 3 and tokens.report["tokens"] == 2


def test_merge_costs_the_least_modularity_not_the_most_shared_weight():
    k = [f"K{i}" for i in range(6)]
    graph = nx.Graph([*combinations(k, 2), ("S1", "S2"), ("S2", "S3"), ("S1", "S3"), ("P1", "P2"),
                      ("P1", "K0"), ("P2", "K1"), ("P1", "S1")])
    nx.set_edge_attributes(graph, 1.0, "weight")
    # m = 15 + 3 + 1 + 3 = 22; degrees P 5, S 7, K 32. P shares 2 edges with K and 1 with S, yet
    # into K: 2/22 - 5*32/(2*22^2) = -0.074, into S: 1/22 - 5*7/(2*22^2) = +0.009 -> P joins S
    assert sorted(map(sorted, merge_smallest(graph, [k, ["S1", "S2", "S3"], ["P1", "P2"]], 2))) == \
        [k, ["P1", "P2", "S1", "S2", "S3"]]
    # with no edge to anyone, P joins the community of least degree: S (6) rather than K (30)
    graph.remove_edges_from([("P1", "K0"), ("P2", "K1"), ("P1", "S1")])
    assert sorted(map(sorted, merge_smallest(graph, [k, ["S1", "S2", "S3"], ["P1", "P2"]], 2))) == \
        [k, ["P1", "P2", "S1", "S2", "S3"]]
    assert len(merge_smallest(graph, [k, ["S1", "S2", "S3"], ["P1", "P2"]], 1)) == 1


def test_same_seed_and_shuffled_edges_give_the_same_tokens(edges):
    first = ppi_tokens(GENES, edges, seed=3)
    again = ppi_tokens(GENES[::-1], edges.sample(frac=1.0, random_state=1), seed=3)
    assert first == again and first.report == again.report


def test_directed_runs_on_a_digraph(edges):
    tokens = ppi_tokens(GENES, edges, directed=True)
    assert tokens.genes[:3] == (tuple(A), tuple(B), tuple(T)) and tokens.report["directed"] is True
    graph = nx.DiGraph(EDGES[:-1])  # directed modularity differs from the undirected one (0.5242)
    assert tokens.report["modularity"] == round(nx.community.modularity(graph, [A, B, T]), 4) == 0.5294
    assert ppi_tokens(GENES, edges, n_tokens=2, directed=True).genes[:2] == ((*B, *T), tuple(A))


def test_ppi_reads_a_string_file_and_raw_string_columns(tmp_path, edges):
    raw = edges.rename(columns={"gene_a": "symbol_1", "gene_b": "symbol_2", "score": "combined_score"})
    raw.insert(0, "id_1", range(len(raw)))
    raw.to_csv(tmp_path / "string.csv.gz", index=False)
    expected = ppi_tokens(GENES, edges)
    assert ppi_tokens(GENES, tmp_path / "string.csv.gz") == expected
    assert ppi_tokens(GENES, raw, weight="combined_score") == expected
    assert ppi_tokens(GENES, edges, weight=None) == expected


@pytest.mark.parametrize("kwargs, message", [
    ({"n_tokens": 0}, "n_tokens must be a whole number >= 1, got 0"),
    ({"weight": "confidence"}, "no edge-weight column 'confidence'"),
    ({"resolution": 0.0}, "resolution must be > 0"),
])
def test_bad_arguments_are_explained(edges, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ppi_tokens(GENES, edges, **kwargs)


def test_no_shared_genes_are_explained(edges):
    with pytest.raises(ValueError, match=r"none of the 2 genes of the expression table .* check that both use "
                                         r"gene symbols \(the table's genes look like Ensembl ids"):
        ppi_tokens(["ENSG00000141510", "ENSG00000146648"], edges)
    with pytest.raises(ValueError, match="no edge between two of the table's genes"):
        ppi_tokens(["A1", "T1", "Z1"], edges)
    with pytest.raises(ValueError, match=r"genes must be unique; repeated: \['A1'\]"):
        ppi_tokens(["A1", "A2", "A1"], edges)


def test_chromosome_tokens_are_ordered_1_to_22_x_y_mt():
    table = {"G1": "chr1", "G2": "1", "G3": 10, "G4": "2", "G5": "chrX", "G6": "M", "G7": "chrMT", "G8": None}
    tokens = chromosome_tokens(["G8", "G7", "G6", "G5", "G4", "G3", "G2", "G1", "G9"], table)
    assert tokens.names == ("chr1", "chr2", "chr10", "chrX", "chrMT", REMAINDER)
    assert tokens.genes == (("G1", "G2"), ("G4",), ("G3",), ("G5",), ("G6", "G7"), ("G8", "G9"))
    assert tokens.source == "chromosome" and tokens.report == {"genes": 9, "chromosomes": 5, "unknown": 2,
                                                                "remainder": 2}
    with pytest.raises(ValueError, match="none of the 1 genes"):
        chromosome_tokens(["TP53"], table)


def test_json_round_trip_and_index_in_a_table_order(edges):
    tokens = ppi_tokens(GENES, edges)
    back = GeneTokens.from_json(tokens.to_json())
    assert back == tokens and back.report == tokens.report
    order = ["Z2", "T3", "T2", "T1", "B4", "B3", "B2", "B1", "EXTRA", "A4", "A3", "A2", "A1", "I1", "Z1"]
    index = back.index(order)
    assert [i.tolist() for i in index] == [[12, 11, 10, 9], [7, 6, 5, 4], [3, 2, 1], [13, 14, 0]]
    assert all(i.dtype == np.int64 for i in index)
    with pytest.raises(ValueError, match=r"1 of the 14 token genes are not among the table's 15 genes, e.g. \['Z1'\]"):
        back.index(order[:-1] + ["Y"])
    with pytest.raises(ValueError, match="not a gene-token file"):
        GeneTokens.from_json('{"tokens": {}}')
    with pytest.raises(ValueError, match="gene 'A1' is in two tokens, 'a' and 'b'"):
        GeneTokens(("a", "b"), (("A1",), ("A1", "A2")), "ppi")


def test_config_picks_the_grouping_and_names_missing_inputs(edges):
    assert build_tokens(GENES, TokenConfig(n_tokens=2), ppi=edges) == ppi_tokens(GENES, edges, n_tokens=2)
    config = TokenConfig(grouping="chromosome")
    assert build_tokens(["G1"], config, chromosome_of={"G1": "1"}).names == ("chr1",)
    with pytest.raises(ValueError, match="grouping 'chromosome' needs a gene -> chromosome table"):
        build_tokens(GENES, config, ppi=edges)
    with pytest.raises(ValueError, match="grouping 'ppi' needs protein interactions"):
        build_tokens(GENES, TokenConfig())
    with pytest.raises(ValidationError):
        TokenConfig(grouping="pathway")
    assert TokenConfig.model_validate(TokenConfig(seed=4).model_dump()) == TokenConfig(seed=4)


@pytest.mark.realdata
def test_real_tcga_genes_with_string(shared_data):
    from gliotype.cohort.tables import read_ppi, read_rnaseq

    genes = list(read_rnaseq(shared_data / "tcga-rnaseq" / "rnaseq.tsv").columns[1:])
    ppi = read_ppi(shared_data / "ppi" / "string_v12_edges.csv.gz")
    start = time.perf_counter()
    tokens = ppi_tokens(genes, ppi)
    seconds = time.perf_counter() - start
    print(f"{tokens.summary()} in {seconds:.2f}s; {tokens.report}")
    in_string = set(ppi["gene_a"]) | set(ppi["gene_b"])
    assert len(genes) == 1544 and tokens.names == (*(f"ppi-{i}" for i in range(7)), REMAINDER)
    assert sorted(g for token in tokens.genes for g in token) == sorted(genes)  # each gene in exactly one token
    assert set(genes) - in_string <= set(tokens.genes[-1])
    report = tokens.report
    assert report["not_in_ppi"] == len(set(genes) - in_string) == 49
    assert report["remainder"] == report["not_in_ppi"] + report["isolated"] == tokens.sizes[-1]
    assert min(tokens.sizes[:-1]) >= 20 and report["communities"] > 7
    assert seconds < 20, f"PPI clustering of {len(genes)} genes took {seconds:.1f}s"
