"""Tests for gliotype.nn.population: the population graph of paper 001 (eq. 8) and its GAT."""

import pytest
import torch
from pydantic import ValidationError
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from torch_geometric.nn import GATConv

from gliotype.nn import population
from gliotype.nn.population import (DenseEdgeGATConv, PopulationConfig, PopulationGAT, correlation_edges,
                                    fit_predict_population, population_summary)

SMALL = PopulationConfig(channels=(8, 8), epochs=5)


def edges(edge_index):
    return list(zip(edge_index[0].tolist(), edge_index[1].tolist()))


def planted(n=60, node_dim=16, edge_dim=32, noise=0.3, seed=0):
    """Two alternating classes; edge features = class prototype + noise (within-class r about 0.8-0.98,
    across classes about 0); node features pure noise. Returns (node, edge, classes)."""
    g = torch.Generator().manual_seed(seed)
    cls = torch.arange(n) % 2
    edge = torch.randn(2, edge_dim, generator=g)[cls] + noise * torch.randn(n, edge_dim, generator=g)
    return torch.randn(n, node_dim, generator=g), edge, cls


# ------------------------------------------------------------------------------------ edges (eq. 8)

# rows: r(0, 1) = 1 (row 1 = 2 x row 0), r(0, 2) = r(1, 2) = -1 (reversed), row 3 has zero variance
ROWS = torch.tensor([[1.0, 2, 3], [2, 4, 6], [3, 2, 1], [1, 1, 1]])


def test_correlation_edges_keep_r_at_least_threshold_in_both_directions():
    edge_index, weight = correlation_edges(ROWS, threshold=0.5)
    assert edges(edge_index) == [(0, 1), (1, 0)]
    assert weight.tolist() == pytest.approx([1.0, 1.0])
    assert weight.dtype == torch.float32 and edge_index.dtype == torch.long


def test_correlation_edges_zero_variance_row_joins_nothing_and_no_self_loops():
    edge_index, weight = correlation_edges(ROWS, threshold=-1.0)  # every pair with a correlation
    assert edges(edge_index) == [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]
    assert weight.tolist() == pytest.approx([1, -1, 1, -1, -1, -1])
    assert not torch.isnan(weight).any()


def test_correlation_edges_threshold_on_r_of_one_half():
    # row 4 = [1, 3, 2]: centred [-1, 1, 0]; row 0 centred [-1, 0, 1] -> r = 1 / (sqrt2 * sqrt2) = 0.5
    rows = torch.cat([ROWS, torch.tensor([[1.0, 3, 2]])])
    assert edges(correlation_edges(rows, 0.4)[0]) == [(0, 1), (0, 4), (1, 0), (1, 4), (4, 0), (4, 1)]
    assert correlation_edges(rows, 0.4)[1][1].item() == pytest.approx(0.5)
    assert edges(correlation_edges(rows, 0.6)[0]) == [(0, 1), (1, 0)]


def test_correlation_edges_are_scale_free_per_row():
    scaled = ROWS * torch.tensor([[10.0], [0.1], [3.0], [7.0]]) + 5.0
    assert torch.equal(correlation_edges(scaled)[0], correlation_edges(ROWS)[0])


def test_correlation_edges_reject_bad_input():
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        correlation_edges(torch.ones(3))
    with pytest.raises(ValueError, match="threshold"):
        correlation_edges(ROWS, threshold=1.5)


# ------------------------------------------------------------------------------------ the network


def paired_convs(heads=1, seed=0):
    """A GATConv and a DenseEdgeGATConv with the same (non-zero) parameters."""
    torch.manual_seed(seed)
    ref = GATConv(3, 4, heads=heads, edge_dim=1, fill_value=1.0)
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_()
    dense = DenseEdgeGATConv(3, 4, heads=heads, edge_dim=1, fill_value=1.0)
    dense.load_state_dict(ref.state_dict())
    return ref, dense


def test_dense_gat_matches_gatconv_values_and_gradients():
    ref, dense = paired_convs()
    x = torch.randn(5, 3, requires_grad=True)
    # 0 <-> 1, 1 <-> 2, 0 -> 3, a given self-loop on 2 (GATConv replaces it by weight 1), node 4 isolated
    edge_index = torch.tensor([[0, 1, 1, 2, 0, 2], [1, 0, 2, 1, 3, 2]])
    weight = torch.tensor([0.9, 0.9, 0.6, 0.6, 0.7, 0.3])
    a, b = ref(x, edge_index, weight), dense(x, edge_index, weight)
    assert torch.allclose(a, b, atol=1e-5)
    grads_a = torch.autograd.grad(a.square().sum(), [x, *ref.parameters()])
    grads_b = torch.autograd.grad(b.square().sum(), [x, *dense.parameters()])
    for ga, gb in zip(grads_a, grads_b):
        assert torch.allclose(ga, gb, atol=1e-4, rtol=1e-4)
    # no edges at all: every node attends to itself only
    none = torch.empty(2, 0, dtype=torch.long)
    assert torch.allclose(ref(x, none, torch.empty(0)), dense(x, none, torch.empty(0)), atol=1e-5)


def test_dense_gat_falls_back_to_gatconv_outside_its_case():
    ref, dense = paired_convs(heads=2)
    x, edge_index, weight = torch.randn(3, 3), torch.tensor([[0, 1, 0, 0], [1, 0, 2, 2]]), torch.rand(4)
    assert not dense._dense_applies(x, edge_index[:, :2], weight[:2], None, None)  # two heads
    assert torch.equal(ref(x, edge_index, weight), dense(x, edge_index, weight))
    _, one_head = paired_convs()
    assert one_head._dense_applies(x, edge_index[:, :3], weight[:3], None, None)
    assert not one_head._dense_applies(x, edge_index, weight, None, None)  # the edge 0 -> 2 twice


def test_gat_shapes_and_self_loops_for_isolated_nodes():
    torch.manual_seed(0)
    net = PopulationGAT(3, 2, channels=(4, 4), dropout=0.0).eval()
    x = torch.randn(3, 3)
    none = torch.empty(2, 0, dtype=torch.long)
    link = torch.tensor([[0, 1], [1, 0]])  # 0 <-> 1; node 2 isolated
    with torch.no_grad():
        base = net(x, none, torch.empty(0))
        assert base.shape == (3, 2)
        moved = x.clone()
        moved[1] += 5.0
        # without edges each node sees itself only: moving node 1 changes node 1 and no other
        out = net(moved, none, torch.empty(0))
        assert torch.equal(out[[0, 2]], base[[0, 2]]) and not torch.allclose(out[1], base[1])
        # with the edge 0 <-> 1, node 0 hears node 1; isolated node 2 does not
        linked, linked_moved = net(x, link, torch.ones(2)), net(moved, link, torch.ones(2))
        assert not torch.allclose(linked_moved[0], linked[0]) and torch.equal(linked_moved[2], linked[2])


# ------------------------------------------------------------------------------------ helpers


def test_standardise_uses_labelled_nodes_only():
    x = torch.tensor([[0.0, 4.0], [2.0, 4.0], [100.0, -7.0]])
    out = population._standardise(x, torch.tensor([0, 1]))  # mean [1, 4], std [1, 0] from rows 0 and 1
    assert out.tolist() == [[-1.0, 0.0], [1.0, 0.0], [99.0, -11.0]]


def test_class_weights_are_balanced():
    weight = population._class_weights(torch.tensor([0, 0, 0, 1]), 2, balanced=True)
    assert weight.tolist() == pytest.approx([4 / 6, 4 / 2])
    assert population._class_weights(torch.tensor([0, 0, 0, 1]), 2, balanced=False).tolist() == [1.0, 1.0]


def test_population_summary_counts_by_hand():
    # path 0 - 1 - 2 - 3, node 4 isolated; y: 0, 0, 1, unlabelled, 1
    edge_index = torch.tensor([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]])
    s = population_summary(edge_index, torch.tensor([0, 0, 1, -1, 1]))
    assert (s.n_nodes, s.n_edges, s.n_isolated, s.n_labelled_edges) == (5, 3, 1, 2)
    assert s.mean_degree == pytest.approx(6 / 5)  # degrees 1, 2, 2, 1, 0
    assert s.homophily == pytest.approx(0.5)  # 0-1 same class, 1-2 not, 2-3 has an unlabelled end


# ------------------------------------------------------------------------------------ training


def test_loss_reads_labelled_nodes_only(monkeypatch):
    node, edge, cls = planted(n=12)
    y = cls.clone()
    y[[1, 4, 5, 8, 11]] = -1
    labelled = [0, 2, 3, 6, 7, 9, 10]
    assert population._loss_nodes(y).tolist() == labelled
    seen = []
    real = population.F.cross_entropy

    def spy(logits, target, **kwargs):
        seen.append((logits.shape[0], target.tolist()))
        return real(logits, target, **kwargs)

    monkeypatch.setattr(population.F, "cross_entropy", spy)
    fit_predict_population(node, edge, y, 2, SMALL)
    assert seen == [(7, cls[labelled].tolist())] * SMALL.epochs


def test_node_permutation_permutes_the_output():
    node, edge, cls = planted(n=20, node_dim=5, edge_dim=12, noise=0.8, seed=1)
    y = torch.where(torch.arange(20) < 10, cls, -1)
    perm = torch.randperm(20, generator=torch.Generator().manual_seed(1))
    config = PopulationConfig(channels=(8, 8), epochs=30, dropout=0.0)  # dropout masks follow node order
    p = fit_predict_population(node, edge, y, 2, config)
    q = fit_predict_population(node[perm], edge[perm], y[perm], 2, config)
    assert torch.allclose(p[perm], q, atol=1e-5)


def test_graph_carries_the_label_that_node_features_lack():
    node, edge, cls = planted()
    test = torch.arange(60) >= 30
    y = torch.where(test, -1, cls)
    assert population_summary(correlation_edges(edge)[0], y).homophily == 1.0
    proba = fit_predict_population(node, edge, y, 2, PopulationConfig(), seed=0)  # paper settings, 200 epochs
    assert proba.shape == (60, 2) and torch.allclose(proba.sum(1), torch.ones(60))
    assert roc_auc_score(cls[test], proba[test, 1]) >= 0.9  # measured 1.0
    logistic = LogisticRegression(max_iter=1000).fit(node[~test], cls[~test])
    assert roc_auc_score(cls[test], logistic.predict_proba(node[test])[:, 1]) <= 0.7  # measured 0.32


def test_same_seed_same_probabilities_and_caller_rng_untouched():
    node, edge, cls = planted(n=12)
    y = torch.where(torch.arange(12) < 6, cls, -1)
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    a = fit_predict_population(node, edge, y, 2, SMALL, seed=7)
    assert torch.equal(torch.rand(1), expected)
    assert torch.equal(a, fit_predict_population(node, edge, y, 2, SMALL, seed=7))
    assert not torch.equal(a, fit_predict_population(node, edge, y, 2, SMALL, seed=8))


def test_errors_name_the_problem():
    node, edge, _ = planted(n=6)
    with pytest.raises(ValueError, match="no labelled node"):
        fit_predict_population(node, edge, torch.full((6,), -1), 2, SMALL)
    with pytest.raises(ValueError, match=r"class\(es\) \[1\] have none"):
        fit_predict_population(node, edge, torch.tensor([0, 0, 0, -1, -1, -1]), 2, SMALL)
    with pytest.raises(ValueError, match=r"values \[2\]"):
        fit_predict_population(node, edge, torch.tensor([0, 1, 2, -1, -1, -1]), 2, SMALL)
    with pytest.raises(ValueError, match="same N"):
        fit_predict_population(node, edge[:5], torch.tensor([0, 1, 0, -1, -1, -1]), 2, SMALL)
    with pytest.raises(ValidationError):
        PopulationConfig(batch_size=20)


def test_residual_keeps_a_patients_own_features_in_a_graph_that_mixes_the_classes():
    g = torch.Generator().manual_seed(4)
    cls = torch.arange(60) % 2
    node = 2.0 * torch.randn(2, 16, generator=g)[cls] + torch.randn(60, 16, generator=g)  # the label is here
    edge = torch.randn(60, 32, generator=g)  # r unrelated to the class
    test = torch.arange(60) >= 30
    y = torch.where(test, -1, cls)
    config = PopulationConfig(threshold=0.0)  # about half of all pairs joined, whatever their classes
    assert population_summary(correlation_edges(edge, 0.0)[0], y).homophily == pytest.approx(0.5, abs=0.1)
    auc = {residual: roc_auc_score(cls[test], fit_predict_population(
        node, edge, y, 2, config.model_copy(update={"residual": residual}))[test, 1]) for residual in (False, True)}
    assert auc[False] <= 0.7  # measured 0.44: each patient's features are averaged with half a graph of others
    assert auc[True] >= 0.95  # measured 1.0
