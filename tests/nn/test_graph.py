"""Tests for gliotype.nn.graph: hand-checkable cases plus a comparison with scipy's cKDTree."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

import gliotype.nn._blocks as blocks_mod
from gliotype.nn import fps, knn_graph, radius_graph
from gliotype.nn.graph import batched_pairwise_dist

# Six points on a line: x = 0, 1, 2, 3, 5, 9 (gaps 1, 1, 1, 2, 4).
LINE = torch.tensor([[0.0], [1.0], [2.0], [3.0], [5.0], [9.0]])


def edges(edge_index):
    """(source, target) pairs in stored order."""
    return [tuple(e) for e in edge_index.t().tolist()]


# ---------------------------------------------------------------------------------- radius


def test_radius_line_r15_exact_edges_sorted_by_target_then_source():
    ei = radius_graph(LINE, r=1.5)
    assert ei.dtype == torch.long and ei.shape == (2, 6)
    # (source, target), sorted by target then source
    assert edges(ei) == [(1, 0), (0, 1), (2, 1), (1, 2), (3, 2), (2, 3)]
    assert set(edges(ei)) == {(0, 1), (1, 0), (1, 2), (2, 1), (2, 3), (3, 2)}


def test_radius_loop_adds_one_self_loop_per_point():
    ei = radius_graph(LINE, r=1.5, loop=True)
    expected = {(0, 1), (1, 0), (1, 2), (2, 1), (2, 3), (3, 2)} | {(i, i) for i in range(6)}
    assert set(edges(ei)) == expected and ei.shape[1] == 12
    targets = ei[1].tolist()
    assert targets == sorted(targets)


def test_radius_boundary_is_strict_like_torch_cluster():
    # Pairs exactly 2 apart (0-2, 1-3, 3-4) are not neighbours at r = 2 (d < r, as in
    # torch-cluster/pyg-lib) and all become neighbours just above 2.
    at_two = set(edges(radius_graph(LINE, r=2.0)))
    assert at_two == {(0, 1), (1, 0), (1, 2), (2, 1), (2, 3), (3, 2)}
    above = set(edges(radius_graph(LINE, r=2.001)))
    assert above == at_two | {(0, 2), (2, 0), (1, 3), (3, 1), (3, 4), (4, 3)}


def test_radius_flow_target_to_source_swaps_rows():
    a = radius_graph(LINE, r=1.5)
    b = radius_graph(LINE, r=1.5, flow="target_to_source")
    assert torch.equal(a.flip(0), b)


def test_radius_two_batches_never_connected_across():
    # two identical clouds on top of each other: without batch everything within 1.5 connects
    pos = torch.cat([LINE, LINE])
    batch = torch.tensor([0] * 6 + [1] * 6)
    ei = radius_graph(pos, r=1.5, batch=batch)
    assert bool((batch[ei[0]] == batch[ei[1]]).all())
    first = {(0, 1), (1, 0), (1, 2), (2, 1), (2, 3), (3, 2)}
    assert set(edges(ei)) == first | {(s + 6, t + 6) for s, t in first}
    # the copies of the same point (distance 0) are connected only when batch is ignored
    assert (0, 6) in set(edges(radius_graph(pos, r=1.5, max_num_neighbors=None)))


def test_radius_max_num_neighbors_keeps_the_nearest():
    # centre 0 at the origin, neighbours at 0.5, 0.3, 0.9, 0.1, 0.7 (index 1..5)
    pos = torch.tensor([[0.0], [0.5], [0.3], [0.9], [0.1], [0.7]])
    ei = radius_graph(pos, r=1.0, max_num_neighbors=2)
    into0 = ei[0, ei[1] == 0].tolist()
    assert into0 == [2, 4]  # distances 0.3 and 0.1: the two nearest, listed by index
    assert bool(((ei[1].bincount(minlength=6)) <= 2).all())
    # with loop=True the self-loop counts as one of them (it is the nearest)
    ei = radius_graph(pos, r=1.0, max_num_neighbors=2, loop=True)
    assert ei[0, ei[1] == 0].tolist() == [0, 4]


def test_radius_max_num_neighbors_ties_broken_by_index():
    # corners of a square around the centre: all four at the same distance
    pos = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    ei = radius_graph(pos, r=1.1, max_num_neighbors=3)
    assert ei[0, ei[1] == 0].tolist() == [1, 2, 3]


def test_radius_duplicate_points_are_neighbours_without_loop():
    pos = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    assert edges(radius_graph(pos, r=0.5)) == [(1, 0), (0, 1)]


@pytest.mark.parametrize("budget", [100, 3200])  # 2 centres of 1 example; all 40 of 2 examples
def test_chunked_equals_unchunked(monkeypatch, budget):
    gen = torch.Generator().manual_seed(0)
    pos = torch.rand(90, 3, generator=gen)
    batch = torch.tensor([0] * 40 + [1] * 20 + [2] * 30)
    full = radius_graph(pos, 0.3, batch, max_num_neighbors=5)
    knn_full = knn_graph(pos, 4, batch)
    small = dict.fromkeys(blocks_mod.CHUNK_PAIRS, budget)
    monkeypatch.setattr(blocks_mod, "CHUNK_PAIRS", small)
    assert torch.equal(radius_graph(pos, 0.3, batch, max_num_neighbors=5), full)
    assert torch.equal(knn_graph(pos, 4, batch), knn_full)


# ---------------------------------------------------------------------------------- knn


def test_knn_unit_square_two_adjacent_corners():
    square = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    ei = knn_graph(square, k=2)
    assert ei.shape == (2, 8)
    neighbours = {i: sorted(ei[0, ei[1] == i].tolist()) for i in range(4)}
    assert neighbours == {0: [1, 2], 1: [0, 3], 2: [0, 3], 3: [1, 2]}  # never the diagonal


def test_knn_line_ordered_by_distance_and_ties_by_index():
    ei = knn_graph(LINE, k=2)
    assert ei[1].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    # point 1: 0 and 2 tie at distance 1 -> index order; point 4 (x=5): 3 (d=2) then 2 (d=3)
    assert ei[0].tolist() == [1, 2, 0, 2, 1, 3, 2, 1, 3, 2, 4, 3]


def test_knn_loop_counts_self():
    ei = knn_graph(LINE, k=2, loop=True)
    assert ei[0, ei[1] == 5].tolist() == [5, 4]
    assert ei.shape == (2, 12)


def test_knn_small_batch_gives_fewer_neighbours_and_stays_in_batch():
    pos = torch.tensor([[0.0], [1.0], [2.0], [3.0], [100.0], [100.5]])
    batch = torch.tensor([0, 0, 0, 0, 1, 1])
    ei = knn_graph(pos, k=3, batch=batch)
    assert bool((batch[ei[0]] == batch[ei[1]]).all())
    assert ei[1].bincount().tolist() == [3, 3, 3, 3, 1, 1]
    assert ei[0, ei[1] == 4].tolist() == [5]


def test_knn_grid_ties():
    # 3x3 grid, centre point 4 has four neighbours at distance 1 -> k=4 takes exactly those
    xs, ys = torch.meshgrid(torch.arange(3.0), torch.arange(3.0), indexing="ij")
    grid = torch.stack([xs.flatten(), ys.flatten()], 1)
    ei = knn_graph(grid, k=4)
    assert ei[0, ei[1] == 4].tolist() == [1, 3, 5, 7]
    # corner 0: neighbours 1, 3 (d=1), then 4 (d=sqrt 2), then 2 and 6 tie at d=2 -> 2
    assert ei[0, ei[1] == 0].tolist() == [1, 3, 4, 2]


# ---------------------------------------------------------------------------------- fps


def test_fps_line_from_first_point():
    pos = torch.tensor([[0.0], [1.0], [2.0], [3.0], [10.0]])
    assert fps(pos, ratio=0.4, random_start=False).tolist() == [0, 4]
    # ratio 0.6 -> ceil(3.0) = 3: then the point farthest from both 0 and 10 is x=3 (index 3)
    assert fps(pos, ratio=0.6, random_start=False).tolist() == [0, 4, 3]


def test_fps_grid_3x3():
    xs, ys = torch.meshgrid(torch.arange(3.0), torch.arange(3.0), indexing="ij")
    grid = torch.stack([xs.flatten(), ys.flatten()], 1)  # index = 3 * x + y
    # start (0,0); farthest (2,2)=8; then (0,2)=2 and (2,0)=6 tie at d^2=4 -> 2; then 6;
    # then the centre (1,1)=4 is 1.41 from all four corners, farther than any edge midpoint (1)
    assert fps(grid, ratio=5 / 9, random_start=False).tolist() == [0, 8, 2, 6, 4]


def test_fps_batched_counts_order_and_offsets():
    pos = torch.tensor([[0.0], [1.0], [2.0], [3.0], [10.0], [0.0], [5.0], [6.0]])
    batch = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1])
    idx = fps(pos, batch, ratio=0.4, random_start=False)
    # example 0: ceil(0.4*5)=2 -> [0, 4]; example 1: ceil(0.4*3)=2 -> [5, 7]
    assert idx.tolist() == [0, 4, 5, 7]


def test_fps_ratio_uses_float32_ceil_like_torch_cluster():
    pos = torch.arange(10.0).view(-1, 1)
    assert fps(pos, ratio=0.7, random_start=False).numel() == 7  # not ceil(7.000000000000001)
    assert fps(pos, ratio=1.0, random_start=False).sort().values.tolist() == list(range(10))


def test_fps_random_start_reproducible_with_generator():
    gen_pos = torch.Generator().manual_seed(1)
    pos = torch.rand(60, 3, generator=gen_pos)
    batch = torch.tensor([0] * 25 + [1] * 35)
    a = fps(pos, batch, ratio=0.2, generator=torch.Generator().manual_seed(7))
    b = fps(pos, batch, ratio=0.2, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and a.numel() == 5 + 7
    assert bool((batch[a[:5]] == 0).all()) and bool((batch[a[5:]] == 1).all())
    assert len(set(a.tolist())) == a.numel()


def _fps_reference(points, start):
    chosen = [start]
    d = ((points - points[start]) ** 2).sum(1)
    for _ in range(math.ceil(0.25 * len(points)) - 1):
        nxt = int(np.argmax(d))
        chosen.append(nxt)
        d = np.minimum(d, ((points - points[nxt]) ** 2).sum(1))
    return chosen


def test_fps_matches_numpy_loop():
    rng = np.random.default_rng(3)
    pts = rng.random((200, 3))
    sizes = [50, 70, 80]
    batch = torch.repeat_interleave(torch.arange(3), torch.tensor(sizes))
    ours = fps(torch.tensor(pts), batch, ratio=0.25, random_start=False).tolist()
    expected, off = [], 0
    for n in sizes:
        expected += [off + i for i in _fps_reference(pts[off : off + n], 0)]
        off += n
    assert ours == expected


# ---------------------------------------------------------------------------------- scipy


@pytest.fixture(scope="module")
def cloud():
    rng = np.random.default_rng(0)
    pts = rng.random((300, 3))
    sizes = [90, 110, 100]
    batch = np.repeat(np.arange(3), sizes)
    return pts, batch, sizes


def test_radius_graph_equals_ckdtree(cloud):
    pts, batch, sizes = cloud
    r = 0.2
    ours = radius_graph(torch.tensor(pts), r, torch.tensor(batch), max_num_neighbors=None)
    expected, off = [], 0
    for n in sizes:
        block = pts[off : off + n]
        for i, nbrs in enumerate(cKDTree(block).query_ball_point(block, r)):
            expected += [(off + j, off + i) for j in sorted(nbrs) if j != i]
        off += n
    expected.sort(key=lambda e: (e[1], e[0]))
    assert len(expected) > 300
    assert edges(ours) == expected


def test_knn_graph_equals_ckdtree(cloud):
    pts, batch, sizes = cloud
    k = 6
    ours = knn_graph(torch.tensor(pts), k, torch.tensor(batch))
    expected, off = [], 0
    for n in sizes:
        block = pts[off : off + n]
        _, idx = cKDTree(block).query(block, k + 1)  # the point itself comes first (d = 0)
        for i in range(n):
            expected += [(off + int(j), off + i) for j in idx[i, 1:]]
        off += n
    assert edges(ours) == expected


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.script inside PyG import
def test_against_torch_geometric_if_it_can_run():
    import torch_geometric.typing as pyg_typing

    if not (pyg_typing.WITH_KNN and pyg_typing.WITH_RADIUS):
        pytest.skip("torch_geometric knn/radius need pyg-lib, which is not installed")
    from torch_geometric.nn import knn_graph as pyg_knn_graph
    from torch_geometric.nn import radius_graph as pyg_radius_graph

    gen = torch.Generator().manual_seed(0)
    pos = torch.rand(120, 3, generator=gen)
    batch = torch.repeat_interleave(torch.arange(3), 40)

    def pairs(ei):
        return sorted(map(tuple, ei.t().tolist()))

    assert pairs(knn_graph(pos, 5, batch)) == pairs(pyg_knn_graph(pos, 5, batch))
    ours = radius_graph(pos, 0.25, batch, max_num_neighbors=None)
    assert pairs(ours) == pairs(pyg_radius_graph(pos, 0.25, batch, max_num_neighbors=1000))


# ---------------------------------------------------------------------------------- helpers


def test_batched_pairwise_dist_small_and_large_dim():
    x = torch.tensor([[[0.0, 0.0], [3.0, 4.0]]])
    assert batched_pairwise_dist(x, x).tolist() == [[[0.0, 25.0], [25.0, 0.0]]]
    assert batched_pairwise_dist(x[0], x[0], squared=False).tolist() == [[0.0, 5.0], [5.0, 0.0]]
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 5, 16, generator=gen), torch.randn(2, 7, 16, generator=gen)
    torch.testing.assert_close(batched_pairwise_dist(a, b), torch.cdist(a, b) ** 2)


def test_empty_input():
    empty = torch.empty(0, 3)
    assert radius_graph(empty, 1.0).shape == (2, 0)
    assert knn_graph(empty, 3).shape == (2, 0)
    assert fps(empty).shape == (0,)
    assert knn_graph(torch.zeros(1, 3), 3).shape == (2, 0)


# ---------------------------------------------------------------------------------- errors


def test_error_pos_not_2d():
    with pytest.raises(ValueError, match=r"pos must be 2-D.*\(6,\)"):
        radius_graph(torch.arange(6.0), 1.0)


def test_error_batch_length_mismatch():
    with pytest.raises(ValueError, match=r"batch must have shape \(N,\) = \(6,\).*\(5,\)"):
        knn_graph(LINE, 2, torch.zeros(5, dtype=torch.long))


def test_error_batch_not_sorted_names_the_values():
    batch = torch.tensor([0, 0, 1, 0, 1, 1])
    with pytest.raises(ValueError, match=r"sorted.*batch\[2\]=1 is followed by batch\[3\]=0"):
        fps(LINE, batch)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: radius_graph(LINE, 0.0), "r must be > 0"),
        (lambda: radius_graph(LINE, 1.0, max_num_neighbors=0), "max_num_neighbors"),
        (lambda: radius_graph(LINE, 1.0, flow="up"), "flow must be one of"),
        (lambda: knn_graph(LINE, 0), "k must be an integer >= 1"),
        (lambda: fps(LINE, ratio=1.5), r"ratio must be in \(0, 1\]"),
    ],
)
def test_error_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_error_integer_pos():
    with pytest.raises(TypeError, match="floating-point"):
        knn_graph(torch.zeros(4, 2, dtype=torch.long), 1)
