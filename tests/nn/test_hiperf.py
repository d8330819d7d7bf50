"""Tests for gliotype.nn.hiperf: HiPerfGNN's hierarchical PNA network, its batching and degree histogram."""

import pytest
import torch

from gliotype.nn.hiperf import HierarchicalGNN, HiPerfConfig, collate_hierarchy, degree_histogram

TASKS = {"idh": 2, "codel_1p19q": 2, "grade": 3}
SMALL = dict(coarse_in=8, hidden=16, tasks=TASKS)  # 8-d coarse features keep the tests fast


def ring(n):
    """Both directions of a ring over n nodes; no edges for a single node."""
    if n == 1:
        return torch.zeros(2, 0, dtype=torch.long)
    i = torch.arange(n)
    j = (i + 1) % n
    return torch.cat([torch.stack([i, j]), torch.stack([j, i])], dim=1)


def item(n_coarse, per_parent, g, coarse_in=8, shift=0.0):
    """A patient: n_coarse habitats on a ring, each with per_parent supervoxels; fine nodes on a ring."""
    n_fine = n_coarse * per_parent
    cei, fei = ring(n_coarse), ring(n_fine)
    cx = torch.randn(n_coarse, coarse_in, generator=g)
    cx[:, 0] += shift
    return dict(coarse_x=cx, coarse_edge_index=cei, coarse_edge_attr=torch.randn(cei.shape[1], 9, generator=g),
                fine_x=torch.randn(n_fine, 4, generator=g), fine_edge_index=fei,
                fine_edge_attr=torch.randn(fei.shape[1], 16, generator=g),
                fine_parent=torch.arange(n_fine) // per_parent)


def histograms(items):
    return {f"{lvl}_deg": degree_histogram([it[f"{lvl}_edge_index"] for it in items],
                                           [it[f"{lvl}_x"].shape[0] for it in items]) for lvl in ("fine", "coarse")}


def model(items, seed=0, **cfg):
    torch.manual_seed(seed)
    return HierarchicalGNN(HiPerfConfig(**{**SMALL, **cfg}), **histograms(items)).eval()


@pytest.fixture
def items():
    g = torch.Generator().manual_seed(0)
    return [item(4, 3, g), item(5, 2, g), item(3, 4, g)]


def test_degree_histogram_counts_in_degrees():
    # 0->1, 0->2, 1->2, 3->2, 2->0: in-degrees (node 0..3) = 1, 1, 3, 0; plus a lone node (in-degree 0)
    edges = torch.tensor([[0, 0, 1, 3, 2], [1, 2, 2, 2, 0]])
    assert degree_histogram([edges], [4]).tolist() == [1, 2, 0, 1]
    assert degree_histogram([edges, torch.zeros(2, 0, dtype=torch.long)], [4, 1]).tolist() == [2, 2, 0, 1]


def test_collate_offsets_edges_parents_and_batches():
    a = dict(coarse_x=torch.zeros(2, 8), coarse_edge_index=torch.tensor([[0], [1]]), coarse_edge_attr=torch.zeros(1, 9),
             fine_x=torch.zeros(3, 4), fine_edge_index=torch.tensor([[0, 1], [1, 2]]), fine_edge_attr=torch.zeros(2, 16),
             fine_parent=torch.tensor([0, 0, 1]))
    b = dict(coarse_x=torch.ones(3, 8), coarse_edge_index=torch.tensor([[2, 0], [1, 1]]), coarse_edge_attr=torch.ones(2, 9),
             fine_x=torch.ones(2, 4), fine_edge_index=torch.tensor([[1], [0]]), fine_edge_attr=torch.ones(1, 16),
             fine_parent=torch.tensor([2, 1]))
    batch = collate_hierarchy([a, b])
    assert batch["coarse_edge_index"].tolist() == [[0, 4, 2], [1, 3, 3]]  # b shifted by a's 2 coarse nodes
    assert batch["fine_edge_index"].tolist() == [[0, 1, 4], [1, 2, 3]]  # b shifted by a's 3 fine nodes
    assert batch["fine_parent"].tolist() == [0, 0, 1, 4, 3]
    assert batch["coarse_batch"].tolist() == [0, 0, 1, 1, 1] and batch["fine_batch"].tolist() == [0, 0, 0, 1, 1]
    assert batch["coarse_edge_attr"].shape == (3, 9) and batch["fine_x"].shape == (5, 4) and int(batch["n_graphs"]) == 2
    fine_only = collate_hierarchy([{k: v for k, v in it.items() if not k.startswith("coarse")} for it in (a, b)])
    assert "fine_parent" not in fine_only and "coarse_x" not in fine_only


@pytest.mark.parametrize("mode,enrich", [("full", "concat"), ("full", "sum"), ("coarse", "concat"), ("fine", "concat")])
def test_output_shapes_per_task(items, mode, enrich):
    out = model(items, mode=mode, enrich=enrich)(collate_hierarchy(items))
    assert {t: tuple(x.shape) for t, x in out.items()} == {"idh": (3, 2), "codel_1p19q": (3, 2), "grade": (3, 3)}
    assert model(items, mode=mode).embed(collate_hierarchy(items)).shape == (3, 16)


@pytest.mark.parametrize("mode", ["full", "coarse", "fine"])
def test_single_node_graphs_without_edges(items, mode):
    g = torch.Generator().manual_seed(1)
    lone = [item(1, 1, g) for _ in range(3)]
    assert lone[0]["coarse_edge_index"].shape == (2, 0)
    net = model(items, mode=mode).train()  # histograms from real graphs; dropout and GraphNorm on
    for batch in (collate_hierarchy(lone), collate_hierarchy(lone[:1])):
        batch["coarse_x"].requires_grad_(True)
        out = net(batch)
        sum(x.sum() for x in out.values()).backward()
        assert all(torch.isfinite(x).all() for x in out.values()) and out["grade"].shape[0] == int(batch["n_graphs"])


def test_fine_node_permutation_leaves_logits_unchanged(items):
    net = model(items, mode="full")
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(2))
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(12)  # old node perm[j] becomes node j
    a = items[0]
    shuffled = {**a, "fine_x": a["fine_x"][perm], "fine_edge_index": inv[a["fine_edge_index"]],
                "fine_parent": a["fine_parent"][perm]}
    with torch.no_grad():
        before, after = net(collate_hierarchy([a, items[1]])), net(collate_hierarchy([shuffled, items[1]]))
    for task in TASKS:
        torch.testing.assert_close(before[task], after[task], atol=1e-5, rtol=1e-5)


def _changed(net, items, prefix):
    # random, not uniform: GraphNorm (mean_scale 1 at initialisation) removes a shift shared by a whole graph
    g = torch.Generator().manual_seed(3)
    other = [{k: (v + torch.randn(v.shape, generator=g) if k == f"{prefix}_x" else v) for k, v in it.items()}
             for it in items]
    with torch.no_grad():
        a, b = net(collate_hierarchy(items)), net(collate_hierarchy(other))
    return any(not torch.allclose(a[t], b[t]) for t in TASKS)


def test_each_mode_reads_only_its_levels(items):
    assert not _changed(model(items, mode="fine"), items, "coarse")
    assert not _changed(model(items, mode="coarse"), items, "fine")
    full = model(items, mode="full")
    assert _changed(full, items, "coarse") and _changed(full, items, "fine")
    # a mode runs on items that lack the other level altogether
    fine_only = [{k: v for k, v in it.items() if k.startswith("fine")} for it in items]
    assert model(items, mode="fine")(collate_hierarchy(fine_only))["idh"].shape == (3, 2)
    with pytest.raises(ValueError, match="lacks \\['coarse_x'"):
        model(items, mode="full")(collate_hierarchy(fine_only))


def test_saliency_gradient_reaches_coarse_features(items):
    batch = collate_hierarchy(items)
    batch["coarse_x"].requires_grad_(True)
    model(items, mode="full")(batch)["idh"][:, 1].sum().backward()
    grad = batch["coarse_x"].grad
    assert grad.shape == (12, 8) and torch.isfinite(grad).all() and bool((grad.abs().sum(1) > 0).all())


def test_rebuild_from_config_and_state(items):
    net = model(items, mode="full", enrich="sum")
    same = HierarchicalGNN.from_state_dict(net.config, net.state_dict()).eval()
    batch = collate_hierarchy(items)
    assert torch.equal(net(batch)["grade"], same(batch)["grade"])
    assert torch.equal(same.fine.deg, histograms(items)["fine_deg"])


def test_teaching_errors(items):
    with pytest.raises(ValueError, match="needs fine_deg"):
        HierarchicalGNN(HiPerfConfig(**SMALL), coarse_deg=torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="isolated nodes only"):
        HierarchicalGNN(HiPerfConfig(**SMALL, mode="coarse"), coarse_deg=torch.tensor([5]))
    with pytest.raises(ValueError, match="multiple of towers"):
        HiPerfConfig(hidden=10, towers=4)
    bad = {**items[0], "fine_parent": torch.tensor([0] * 11 + [4])}
    with pytest.raises(ValueError, match="fine_parent must index its 4 coarse nodes"):
        collate_hierarchy([bad])
    with pytest.raises(ValueError, match="coarse_x must have 768 features"):
        model(items, coarse_in=768)(collate_hierarchy(items))


def test_planted_coarse_signal_is_learnt_by_coarse_and_full_but_not_fine():
    # the label shifts coarse feature 0 by +-2; the fine features are noise
    def cohort(seed):
        g = torch.Generator().manual_seed(seed)
        its = [item(4 + k % 3, 3, g, shift=2.0 * (2 * (k % 2) - 1)) for k in range(40)]
        return its, collate_hierarchy(its), torch.arange(40) % 2

    train_items, train, y = cohort(0)
    _, test, y_test = cohort(1)
    acc = {}
    for mode in ("coarse", "full", "fine"):
        net = model(train_items, mode=mode, dropout=0.0, tasks={"y": 2}).train()
        opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
        for _ in range(40):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(train)["y"], y).backward()
            opt.step()
        with torch.no_grad():
            net.eval()
            acc[mode] = [float((net(b)["y"].argmax(1) == t).float().mean()) for b, t in ((train, y), (test, y_test))]
    assert acc["coarse"][0] >= 0.9 and acc["full"][0] >= 0.9, acc
    assert acc["coarse"][1] >= 0.8 and acc["full"][1] >= 0.8, acc  # held out
    assert acc["fine"][1] <= 0.7, acc  # never sees the coarse features: chance on held-out graphs
