"""HiPerfGNN's hierarchical graph on hand-made volumes whose habitats, means, edges and similarities are known."""

import cc3d
import numpy as np
import pytest
from scipy import ndimage

from gliotype.prepare import habitat_graph
from gliotype.prepare.habitat_graph import (coarse_graph, fine_graph, habitat_map, hierarchy, kinetic_maps,
                                            spatial_edges, structure_graph)

HIERARCHY_KEYS = {"coarse_x", "coarse_pos", "coarse_edge_index", "coarse_edge_attr", "coarse_code", "habitat_map",
                  "fine_x", "fine_pos", "fine_edge_index", "fine_edge_attr", "fine_parent", "supervoxel_map",
                  "slic_collapsed"}


def slabs_and_diagonal_pair() -> tuple[np.ndarray, np.ndarray]:
    """A full 10^3 mask: code 1 for x < 5, code 2 for x >= 5, and code 3 at (2,2,2) and (3,3,3) (corner-touching)."""
    mask = np.ones((10, 10, 10), bool)
    code = np.where(np.arange(10)[:, None, None] < 5, 1, 2) * np.ones((10, 10, 10), int)
    code[2, 2, 2] = code[3, 3, 3] = 3
    return mask, code[mask]


def smooth_channels(shape, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([ndimage.gaussian_filter(rng.normal(size=shape), 1.5) for _ in range(4)]).astype(np.float32)


# --- coarse level ---------------------------------------------------------------------------------


def test_habitats_are_26_connected_components_of_equal_code():
    mask, codes = slabs_and_diagonal_pair()
    labels, code_of = habitat_map(mask, codes)
    assert labels.dtype == np.int32 and labels.min() == 1 and len(code_of) == 3 == labels.max()
    assert sorted(code_of.tolist()) == [1, 2, 3]
    pair = labels[2, 2, 2]
    assert labels[3, 3, 3] == pair and code_of[pair - 1] == 3 and (labels == pair).sum() == 2
    assert code_of[labels[0, 0, 0] - 1] == 1 and code_of[labels[9, 9, 9] - 1] == 2
    six = cc3d.connected_components(codes.reshape(mask.shape), connectivity=6)
    assert six.max() == 4  # the planted pair is what tells 26- from 6-connectivity


def test_habitat_map_refuses_code_zero_and_wrong_length():
    mask, codes = slabs_and_diagonal_pair()
    with pytest.raises(ValueError, match="codes must be >= 1"):
        habitat_map(mask, codes - 1)
    with pytest.raises(ValueError, match="one row per mask voxel"):
        habitat_map(mask, codes[:-1])


def two_habitat_case():
    """Habitat A = voxels (0,0,0),(0,0,1) (code 1); B = (0,0,5),(0,0,6) (code 2). N = 3 latent rows of d = 2.

    A's mean rows are (2,0), (0,2), (2,2); B's rows are (1,0), (0,1), (1,-1).
    """
    mask = np.zeros((4, 4, 8), bool)
    mask[0, 0, [0, 1, 5, 6]] = True
    codes = np.array([1, 1, 2, 2])
    a = np.array([[1.0, 0], [0, 1], [1, 1]])
    b = np.array([[1.0, 0], [0, 1], [1, -1]])
    latents = np.stack([a, 3 * a, b, b]).astype(np.float32)
    return mask, codes, latents


def test_coarse_nodes_are_mean_latents_at_their_centroid():
    g = coarse_graph(*two_habitat_case())
    a, b = (int(np.flatnonzero(g["code"] == c)[0]) for c in (1, 2))
    np.testing.assert_array_equal(g["x"][a], [2, 0, 0, 2, 2, 2])
    np.testing.assert_array_equal(g["x"][b], [1, 0, 0, 1, 1, -1])
    np.testing.assert_array_equal(g["pos"][[a, b]], [[0, 0, 0.5], [0, 0, 5.5]])
    assert g["x"].dtype == g["pos"].dtype == g["edge_attr"].dtype == np.float32


def test_coarse_edge_features_are_cosine_matrices_of_latent_rows():
    g = coarse_graph(*two_habitat_case())
    a, b = (int(np.flatnonzero(g["code"] == c)[0]) for c in (1, 2))
    np.testing.assert_array_equal(g["edge_index"], [[0, 1], [1, 0]])
    attr = g["edge_attr"][g["edge_index"][0] == a][0].reshape(3, 3)  # rows: A's latent rows, columns: B's
    r = np.float32(1 / np.sqrt(2))
    expected = np.array([[1, 0, r], [0, 1, -r], [r, r, 0]], np.float32)
    np.testing.assert_allclose(attr, expected, atol=1e-7)
    assert attr[0, 0] == 1 and attr[1, 1] == 1 and attr[0, 1] == 0 and attr[2, 2] == 0  # identical / orthogonal
    back = g["edge_attr"][g["edge_index"][0] == b][0].reshape(3, 3)
    np.testing.assert_allclose(back, expected.T, atol=1e-7)


# --- edges ------------------------------------------------------------------------------------------

SIX = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [6, 0, 0], [9, 0, 0], [30, 0, 0]], float)


def test_knn_edges_of_six_points_pruned_by_delta_max():
    # 2 nearest: 0->{1,2}, 1->{0,2}, 2->{1,0}, 3->{4,2}, 4->{3, 2 (7 > 5: pruned)}, 5->{4, 3} (both > 5)
    edges = spatial_edges(SIX, k=2, delta_max=5.0, rule="knn")
    pairs = [(0, 1), (0, 2), (1, 2), (2, 3), (3, 4)]
    expected = sorted(pairs + [(j, i) for i, j in pairs])
    assert edges.dtype == np.int64 and edges.T.tolist() == [list(p) for p in expected]


def test_radius_edges_of_six_points_include_the_pair_at_exactly_delta_max():
    edges = spatial_edges(SIX, k=2, delta_max=5.0, rule="radius")
    pairs = [(0, 1), (0, 2), (1, 2), (1, 3), (2, 3), (3, 4)]  # 1-3 is 5 apart: kept (<=); 1-3 is no 2-NN pair
    assert edges.T.tolist() == [list(p) for p in sorted(pairs + [(j, i) for i, j in pairs])]


def test_edges_of_one_point_and_bad_rule():
    assert spatial_edges(SIX[:1]).shape == (2, 0)
    with pytest.raises(ValueError, match=r"unknown edge rule 'knnn'; choose one of \['knn', 'radius'\]"):
        spatial_edges(SIX, rule="knnn")


# --- fine level ---------------------------------------------------------------------------------------


def test_supervoxels_lie_inside_their_parent():
    labels = np.zeros((12, 12, 12), np.int32)
    labels[1:11, 1:11, 1:6] = 1
    labels[1:11, 1:11, 6:11] = 2
    g = fine_graph(smooth_channels(labels.shape), labels)
    sv, parent = g["supervoxel_map"], g["parent"]
    assert len(parent) == sv.max() and np.array_equal(sv > 0, labels > 0)
    assert set(np.bincount(parent).tolist()) != {1} and set(parent.tolist()) == {0, 1}  # both parents were split
    for f in range(len(parent)):
        assert np.all(labels[sv == f + 1] == parent[f] + 1)
    assert g["x"].shape == (len(parent), 4) and g["edge_attr"].shape == (g["edge_index"].shape[1], 16)


def test_small_parent_is_one_node_with_its_mean_intensity():
    labels = np.zeros((12, 12, 12), np.int32)
    labels[1:11, 1:11, 1:6] = 1
    labels[0, 0, 8:12] = 2  # 4 voxels < min_voxels
    channels = smooth_channels(labels.shape)
    g = fine_graph(channels, labels, min_voxels=5)
    small = np.flatnonzero(g["parent"] == 1)
    assert len(small) == 1
    np.testing.assert_allclose(g["x"][small[0]], channels[:, 0, 0, 8:12].mean(1), rtol=1e-5)


def noise_cube() -> tuple[np.ndarray, np.ndarray]:
    """An 8^3 parent of white noise: SLIC at compactness <= 0.05 merges its speckle back into one label."""
    channels = np.random.default_rng(0).normal(size=(4, 8, 8, 8)).astype(np.float32)
    return channels, np.ones((8, 8, 8), np.int32)


def test_slic_collapse_is_retried_with_a_larger_compactness(monkeypatch):
    calls = []
    real = habitat_graph._slic
    monkeypatch.setattr(habitat_graph, "_slic", lambda *a: calls.append(a[3]) or real(*a))
    g = fine_graph(*noise_cube(), compactness=0.05)
    assert calls == [0.05, pytest.approx(0.5)]  # the first run collapsed, the retry split it
    assert int(g["slic_collapsed"]) == 0 and len(g["parent"]) == 512 // 30


def test_slic_collapse_that_persists_is_counted():
    g = fine_graph(*noise_cube(), compactness=0.0005)
    assert g["slic_collapsed"].shape == () and int(g["slic_collapsed"]) == 1 and len(g["parent"]) == 1


def test_fine_edge_features_compare_channel_descriptors():
    labels = np.zeros((3, 3, 9), np.int32)
    labels[:, :, :3], labels[:, :, 6:] = 1, 2  # two 27-voxel parents = two nodes, 6 voxels apart
    channels = np.zeros((4, 3, 3, 9), np.float32)
    channels[:, :, :, :3] = np.arange(27, dtype=np.float32).reshape(3, 3, 3)  # every channel alike in node 0
    channels[:, :, :, 6:] = np.arange(27, dtype=np.float32).reshape(3, 3, 3)
    channels[3, :, :, 6:] *= -1  # node 1's last channel: mean and percentiles negated, std kept
    attr = fine_graph(channels, labels)["edge_attr"][0].reshape(4, 4)
    np.testing.assert_allclose(attr[:, :3], 1.0, atol=1e-6)  # identical distributions
    assert np.all(attr[:, 3] < 0)


# --- kinetic maps, hierarchy, structure graph, single node ----------------------------------------------


def test_kinetic_maps_find_the_deeper_drop():
    mask = np.zeros((3, 3, 3), bool)
    mask[1, 1, :] = True
    t = np.arange(40)
    curve = 100 - 20 * np.exp(-0.5 * ((t - 15) / 2.0) ** 2)
    deep = 100 - 60 * np.exp(-0.5 * ((t - 15) / 2.0) ** 2)
    maps = kinetic_maps(mask, np.stack([curve, deep, curve * 3]))
    depth, time_to_min = maps[0, 1, 1], maps[1, 1, 1]
    assert maps.shape == (4, 3, 3, 3) and maps.dtype == np.float32 and not maps[:, 0].any()
    assert depth[1] > depth[0] == pytest.approx(depth[2])  # scale-invariant: 3x the curve is the same
    assert maps[2, 1, 1, 1] > maps[2, 1, 1, 0]  # deeper drop, larger area
    np.testing.assert_allclose(time_to_min, 0, atol=1e-6)  # all at t = 15: no spread after z-scoring


def test_hierarchy_keys_shapes_and_parent_containment():
    mask = np.zeros((12, 12, 12), bool)
    mask[1:11, 1:11, 1:11] = True
    code = np.where(np.arange(12)[None, None, :] < 6, 1, 2) * np.ones((12, 12, 12), int)
    n = int(mask.sum())
    latents = np.random.default_rng(0).normal(size=(n, 3, 4)).astype(np.float32)
    g = hierarchy(mask, code[mask], latents, smooth_channels(mask.shape), k=5, delta_max=15.0)
    assert set(g) == HIERARCHY_KEYS
    assert g["coarse_x"].shape == (2, 12) and g["coarse_edge_attr"].shape == (2, 9)
    f = len(g["fine_parent"])
    assert g["fine_x"].shape == (f, 4) and g["fine_pos"].shape == (f, 3) and f > 2
    coarse_of_voxel = g["habitat_map"][g["supervoxel_map"] > 0] - 1
    assert np.array_equal(g["fine_parent"][g["supervoxel_map"][g["supervoxel_map"] > 0] - 1], coarse_of_voxel)
    assert g["slic_collapsed"].dtype == np.int64 and g["fine_edge_index"].dtype == np.int64
    flat = hierarchy(mask, code[mask], latents, None, k=5, delta_max=15.0)  # the perfusion-only flat variant
    assert set(flat) == {k for k in HIERARCHY_KEYS if k.startswith("coarse_")} | {"habitat_map"}
    np.testing.assert_array_equal(flat["coarse_x"], g["coarse_x"])


def test_single_node_graphs_have_empty_edges():
    mask = np.zeros((4, 4, 4), bool)
    mask[1, 1, 1:3] = True
    g = hierarchy(mask, np.array([1, 1]), np.ones((2, 3, 4), np.float32), smooth_channels(mask.shape))
    assert g["coarse_edge_index"].shape == (2, 0) and g["coarse_edge_attr"].shape == (0, 9)
    assert g["fine_edge_index"].shape == (2, 0) and g["fine_edge_attr"].shape == (0, 16)
    assert g["coarse_x"].shape == (1, 12) and g["fine_parent"].tolist() == [0]


def test_structure_graph_is_one_parent_over_the_whole_tumour():
    mask = np.zeros((12, 12, 12), bool)
    mask[1:11, 1:11, 1:11] = True
    g = structure_graph(mask, smooth_channels(mask.shape))
    assert set(g) == {k for k in HIERARCHY_KEYS if k.startswith("fine_")} | {"supervoxel_map", "slic_collapsed"}
    assert len(g["fine_parent"]) > 1 and not g["fine_parent"].any()
