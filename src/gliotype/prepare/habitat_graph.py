"""HiPerfGNN's hierarchical tumour graph (paper 002, section 2.2), built from one patient's arrays.

Coarse level: each 26-connected component of voxels sharing one perfusion code is a *habitat* node;
its feature is the mean of the flattened encoder latents over its voxels (eq. 3), its position the mean
voxel coordinate. Fine level: inside every habitat, 3-D SLIC on the four structural sequences splits it
into supervoxels (author code: ``n_segments = n_voxels // 30``, compactness 0.05), each a node whose
feature is its mean intensity per sequence. Each supervoxel has exactly one parent habitat (it is cut
out of it), which gives the paper's many-to-one assignment matrix as a ``parent`` index vector.

Edges, at both levels, join node centroids (:func:`spatial_edges`): ``"knn"`` (paper: the ``k`` nearest,
pruned to distance <= ``delta_max``) or ``"radius"`` (author code: every pair within ``delta_max``),
symmetrised, without self loops. Edge features are flattened cosine-similarity matrices between the rows
of the two nodes' matrices (:func:`row_cosine`): the N latent vectors of a habitat (N x N = 9-d), and,
at the fine level, our reading of the paper's "cross-channel similarity": per sequence a descriptor
(mean, std, 10th, 50th, 90th percentile of the supervoxel's intensities) and the C x C cosine
similarities between the descriptors of node u's sequences and node v's sequences (16-d).

SLIC with a small compactness on a noisy habitat can silently return one label (its connectivity
enforcement merges the speckled segments): when >= 2 segments were asked and one came back, SLIC is
run again with ``RETRY_FACTOR`` times the compactness (a larger compactness is what cures the merge; a
smaller one makes it worse), and habitats still in one piece are counted in ``slic_collapsed``.

Positions are in voxels of the grid the arrays are on (the cropped DSC grid of ``perfusion_input``).
All functions are vectorised over voxels; the only Python loop is over habitats (for SLIC).
"""

from __future__ import annotations

import logging
import warnings
from typing import Literal

import cc3d
import numpy as np
from scipy import ndimage, sparse
from scipy.spatial import cKDTree
from skimage.segmentation import slic

log = logging.getLogger(__name__)

RULES = ("knn", "radius")
RETRY_FACTOR = 10.0
"""Compactness multiplier of the one SLIC retry after a collapse to a single label."""
QUANTILES = (0.1, 0.5, 0.9)
EDGE_CHUNK = 4096


def _check_mask(mask: np.ndarray, n: int, what: str) -> np.ndarray:
    mask = np.asarray(mask).astype(bool)
    if mask.ndim != 3:
        raise ValueError(f"the tumour mask must be 3-D (X, Y, Z), got shape {mask.shape}")
    if not mask.any():
        raise ValueError("the tumour mask is empty: a graph needs at least one tumour voxel")
    if int(mask.sum()) != n:
        raise ValueError(f"{what} has {n} rows but the mask has {int(mask.sum())} voxels; give one row per mask "
                         "voxel, in np.nonzero(mask) order")
    return mask


def _group_mean(values: np.ndarray, groups: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Mean of the rows of ``values`` per group. Shapes: values (m, D), groups (m,) -> (G, D)."""
    m, g = len(groups), len(counts)
    one_hot = sparse.csr_matrix((np.ones(m, values.dtype), (groups, np.arange(m))), shape=(g, m))
    return np.asarray(one_hot @ values) / counts[:, None]


def habitat_map(mask: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label the 26-connected components of equal code inside the mask.

    Args:
        mask: tumour mask.
        codes: positive code of each mask voxel (1..8 for K=2, N=3), in ``np.nonzero(mask)`` order.

    Returns:
        ``labels`` (0 outside, habitats 1..H) and ``code_of`` (the code of habitat ``h`` at ``h - 1``).

    Shapes:
        mask: (X, Y, Z); codes: (n,) -> labels: (X, Y, Z) int32, code_of: (H,) int64.
    """
    codes = np.asarray(codes)
    mask = _check_mask(mask, len(codes), "codes")
    if codes.size and codes.min() < 1:
        raise ValueError(f"perfusion codes must be >= 1 (0 marks background), found {int(codes.min())!r}; "
                         "shift code indices by +1")
    volume = np.zeros(mask.shape, np.uint32)
    volume[mask] = codes
    labels = cc3d.connected_components(volume, connectivity=26, out_dtype=np.uint32).astype(np.int32)
    code_of = np.zeros(int(labels.max()), np.int64)
    code_of[labels[mask] - 1] = codes
    return labels, code_of


def spatial_edges(pos: np.ndarray, k: int = 5, delta_max: float = 15.0,
                  rule: Literal["knn", "radius"] = "knn") -> np.ndarray:
    """Edges between node centroids: ``k`` nearest pruned to ``delta_max`` (``knn``) or all within it (``radius``).

    Both directions of every edge are returned, sorted by source then target; no self loops. In ``knn``
    an edge exists when either node is among the other's ``k`` nearest (ties by index) and their distance
    is <= ``delta_max``.

    Shapes:
        pos: (H, 3) -> edge_index: (2, E) int64.
    """
    if rule not in RULES:
        raise ValueError(f"unknown edge rule {rule!r}; choose one of {list(RULES)}")
    if k < 1 or delta_max <= 0:
        raise ValueError(f"need k >= 1 and delta_max > 0, got k={k!r}, delta_max={delta_max!r}")
    pos = np.asarray(pos, np.float64)
    h = len(pos)
    if h < 2:
        return np.zeros((2, 0), np.int64)
    tree = cKDTree(pos)
    if rule == "radius":
        pairs = tree.query_pairs(delta_max, output_type="ndarray")
        return _symmetric(pairs[:, 0], pairs[:, 1], h)
    dist, idx = tree.query(pos, k=min(k + 1, h))
    rows = np.broadcast_to(np.arange(h)[:, None], idx.shape)
    other = idx != rows
    keep = other & (np.cumsum(other, axis=1) <= k) & (dist <= delta_max)
    return _symmetric(rows[keep], idx[keep], h)


def _symmetric(src: np.ndarray, dst: np.ndarray, h: int) -> np.ndarray:
    code = np.unique(np.concatenate([src, dst]).astype(np.int64) * h + np.concatenate([dst, src]))
    return np.stack([code // h, code % h]).astype(np.int64)


def row_cosine(rows: np.ndarray, edge_index: np.ndarray) -> np.ndarray:
    """Per edge (u, v), the cosine similarity of every row of node u's matrix with every row of v's, flattened.

    Entry ``a * R + b`` of an edge's feature is cos(rows[u, a], rows[v, b]); a zero row has similarity 0.

    Shapes:
        rows: (H, R, D); edge_index: (2, E) -> (E, R * R) float32.
    """
    rows = np.asarray(rows, np.float64)
    unit = rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-12)
    out = np.empty((edge_index.shape[1], rows.shape[1] ** 2), np.float32)
    for start in range(0, edge_index.shape[1], EDGE_CHUNK):
        src, dst = edge_index[:, start:start + EDGE_CHUNK]
        sim = np.einsum("ead,ebd->eab", unit[src], unit[dst])
        out[start:start + EDGE_CHUNK] = sim.reshape(len(src), -1)
    return out


def coarse_graph(mask: np.ndarray, codes: np.ndarray, latents: np.ndarray, k: int = 5, delta_max: float = 15.0,
                 rule: Literal["knn", "radius"] = "knn") -> dict[str, np.ndarray]:
    """The habitat graph: one node per connected component of equal code.

    Args:
        mask: tumour mask.
        codes: code of each mask voxel in ``np.nonzero(mask)`` order (see :func:`habitat_map`).
        latents: continuous (pre-quantisation) encoder latents of each mask voxel, same order.
        k, delta_max, rule: edge rule (:func:`spatial_edges`).

    Returns:
        ``x`` (node features), ``pos`` (centroids, voxels), ``edge_index``, ``edge_attr`` (N x N cosine
        similarities of the nodes' mean latent sequences, flattened), ``code`` and ``habitat_map``.

    Shapes:
        mask: (X, Y, Z); codes: (n,); latents: (n, N, d) -> x: (H, N * d) float32, pos: (H, 3) float32,
        edge_index: (2, E) int64, edge_attr: (E, N * N) float32, code: (H,) int64,
        habitat_map: (X, Y, Z) int32.
    """
    latents = np.asarray(latents)
    if latents.ndim != 3 or len(latents) != len(codes):
        raise ValueError(f"latents must be (n, N, d) with n = {len(codes)} mask voxels, got shape {latents.shape}")
    labels, code_of = habitat_map(mask, codes)
    group = labels[labels > 0] - 1
    counts = np.bincount(group, minlength=len(code_of)).astype(np.float64)
    n, seq, d = latents.shape
    x = _group_mean(latents.reshape(n, seq * d).astype(np.float32, copy=False), group, counts.astype(np.float32))
    pos = _group_mean(np.argwhere(labels > 0).astype(np.float64), group, counts)
    edge_index = spatial_edges(pos, k, delta_max, rule)
    edge_attr = row_cosine(x.reshape(-1, seq, d), edge_index)
    return {"x": x.astype(np.float32), "pos": pos.astype(np.float32), "edge_index": edge_index,
            "edge_attr": edge_attr, "code": code_of, "habitat_map": labels}


def _slic(crop: np.ndarray, region: np.ndarray, n_segments: int, compactness: float) -> np.ndarray:
    with warnings.catch_warnings():  # SLIC's k-means seeding warns when a seed cluster empties; harmless
        warnings.filterwarnings("ignore", message="One of the clusters is empty")
        return slic(crop, n_segments=n_segments, compactness=compactness, mask=region, channel_axis=0, start_label=1)


def split_parent(crop: np.ndarray, region: np.ndarray, min_voxels: int = 5, voxels_per_segment: int = 30,
                 compactness: float = 0.05) -> tuple[np.ndarray, bool]:
    """Supervoxels of one parent region on its bounding-box crop, labelled 1..S (0 outside the region).

    A region with fewer than ``min_voxels`` voxels, or too few for two segments, is one supervoxel.

    Returns:
        the label crop and whether SLIC collapsed to one label (after its retry) although >= 2 were asked.

    Shapes:
        crop: (C, x, y, z); region: (x, y, z) bool -> (x, y, z) int32.
    """
    n_voxels = int(region.sum())
    n_segments = n_voxels // voxels_per_segment
    if n_voxels < min_voxels or n_segments < 2:
        return region.astype(np.int32), False
    seg = _slic(crop, region, n_segments, compactness)
    if np.unique(seg[region]).size == 1:
        log.debug("SLIC returned one label for %d voxels (%d asked); retrying with compactness %g",
                  n_voxels, n_segments, compactness * RETRY_FACTOR)
        seg = _slic(crop, region, n_segments, compactness * RETRY_FACTOR)
    _, inverse = np.unique(seg[region], return_inverse=True)
    out = np.zeros(region.shape, np.int32)
    out[region] = inverse.ravel() + 1
    return out, int(out.max()) == 1


def supervoxels(channels: np.ndarray, labels: np.ndarray, min_voxels: int = 5, voxels_per_segment: int = 30,
                compactness: float = 0.05) -> tuple[np.ndarray, np.ndarray, int]:
    """SLIC inside every parent region of ``labels``, each on its own bounding-box crop.

    Returns:
        the supervoxel map (0 outside, 1..F), the 0-based parent (``label - 1``) of each supervoxel, and
        the number of parents whose SLIC collapsed to one label.

    Shapes:
        channels: (C, X, Y, Z); labels: (X, Y, Z) int -> (X, Y, Z) int32, (F,) int64, int.
    """
    if voxels_per_segment < 1 or compactness <= 0:
        raise ValueError(f"need voxels_per_segment >= 1 and compactness > 0, got {voxels_per_segment!r} and "
                         f"{compactness!r} (author code: 30 and 0.05)")
    out = np.zeros(labels.shape, np.int32)
    parents, collapsed, next_id = [], 0, 1
    for p, box in enumerate(ndimage.find_objects(labels)):
        if box is None:
            continue
        region = labels[box] == p + 1
        seg, fell = split_parent(channels[(slice(None), *box)], region, min_voxels, voxels_per_segment, compactness)
        out[box][region] = seg[region] + (next_id - 1)
        parents += [p] * int(seg.max())
        next_id += int(seg.max())
        collapsed += fell
    if collapsed:
        log.info("SLIC collapsed to a single supervoxel in %d habitats", collapsed)
    return out, np.asarray(parents, np.int64), collapsed


def channel_descriptors(values: np.ndarray, group: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per group and channel: mean, std, 10th, 50th and 90th percentile (linear interpolation).

    Shapes:
        values: (m, C); group: (m,) in 0..G-1; counts: (G,) all >= 1 -> (G, C, 5) float64.
    """
    values = values.astype(np.float64)
    mean = _group_mean(values, group, counts)
    std = np.sqrt(np.maximum(_group_mean(values ** 2, group, counts) - mean ** 2, 0.0))
    sizes = counts.astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    quant = np.empty((len(counts), values.shape[1], len(QUANTILES)))
    for c in range(values.shape[1]):
        ordered = values[np.lexsort((values[:, c], group)), c]
        for j, q in enumerate(QUANTILES):
            at = starts + q * (sizes - 1)
            lo = np.floor(at).astype(np.int64)
            hi = np.minimum(lo + 1, starts + sizes - 1)
            quant[:, c, j] = ordered[lo] + (at - lo) * (ordered[hi] - ordered[lo])
    return np.concatenate([mean[..., None], std[..., None], quant], axis=-1)


def fine_graph(channels: np.ndarray, labels: np.ndarray, *, min_voxels: int = 5, voxels_per_segment: int = 30,
               compactness: float = 0.05, k: int = 5, delta_max: float = 15.0,
               rule: Literal["knn", "radius"] = "knn") -> dict[str, np.ndarray]:
    """The supervoxel graph: SLIC inside each parent region of ``labels`` on the C-channel volume.

    Args:
        channels: structural sequences (or kinetic maps) on the grid of ``labels``.
        labels: parent map, 0 outside, parents 1..H (e.g. :func:`habitat_map`).
        min_voxels: parents smaller than this are one node.
        voxels_per_segment: SLIC is asked for ``n_voxels // voxels_per_segment`` segments.
        compactness: SLIC compactness.
        k, delta_max, rule: edge rule (:func:`spatial_edges`).

    Returns:
        ``x`` (mean per channel), ``pos`` (centroids, voxels), ``edge_index``, ``edge_attr`` (C x C
        cosine similarities of channel descriptors, flattened), ``parent`` (0-based parent node),
        ``supervoxel_map`` (0 outside, 1..F) and ``slic_collapsed`` (0-d count).

    Shapes:
        channels: (C, X, Y, Z); labels: (X, Y, Z) -> x: (F, C) float32, pos: (F, 3) float32,
        edge_index: (2, E) int64, edge_attr: (E, C * C) float32, parent: (F,) int64,
        supervoxel_map: (X, Y, Z) int32, slic_collapsed: () int64.
    """
    channels, labels = np.asarray(channels), np.asarray(labels).astype(np.int32, copy=False)
    if channels.ndim != 4 or channels.shape[1:] != labels.shape:
        raise ValueError(f"channels must be (C, X, Y, Z) on the label grid {labels.shape}, got {channels.shape}")
    if not labels.any():
        raise ValueError("the parent label map is empty: there is no tumour voxel to split")
    sv, parent, collapsed = supervoxels(channels, labels, min_voxels, voxels_per_segment, compactness)
    inside = sv > 0
    group = sv[inside] - 1
    counts = np.bincount(group, minlength=len(parent)).astype(np.float64)
    values = channels[:, inside].T
    pos = _group_mean(np.argwhere(inside).astype(np.float64), group, counts)
    descriptors = channel_descriptors(values, group, counts)
    edge_index = spatial_edges(pos, k, delta_max, rule)
    return {"x": descriptors[..., 0].astype(np.float32), "pos": pos.astype(np.float32), "edge_index": edge_index,
            "edge_attr": row_cosine(descriptors, edge_index), "parent": parent, "supervoxel_map": sv,
            "slic_collapsed": np.array(collapsed, np.int64)}


def kinetic_maps(mask: np.ndarray, curves: np.ndarray) -> np.ndarray:
    """Per-voxel perfusion descriptors, each z-scored over the mask (the perfusion-hierarchical fine channels).

    With ``b = max(3, T // 10)`` baseline frames and ``r = curve / mean(first b frames)`` (a flat 1 when the
    baseline is not positive): 0 relative drop depth ``1 - min r``; 1 time to minimum ``argmin / T``;
    2 drop area ``sum(max(1 - r, 0)) / T``; 3 recovery level ``mean(last b frames of r)``. All four are
    invariant to a per-curve scale, so raw and p995-scaled curves give the same maps.

    Shapes:
        mask: (X, Y, Z); curves: (n, T) in ``np.nonzero(mask)`` order -> (4, X, Y, Z) float32, 0 outside.
    """
    curves = np.asarray(curves, np.float64)
    mask = _check_mask(mask, len(curves), "curves")
    t = curves.shape[1]
    b = max(3, t // 10)
    baseline = curves[:, :b].mean(1, keepdims=True)
    ok = baseline > 1e-6
    rel = np.where(ok, curves / np.where(ok, baseline, 1.0), 1.0)
    features = np.stack([1.0 - rel.min(1), rel.argmin(1) / t, np.clip(1.0 - rel, 0, None).sum(1) / t,
                         rel[:, -b:].mean(1)], axis=1)
    features = (features - features.mean(0)) / np.maximum(features.std(0), 1e-6)
    out = np.zeros((4, *mask.shape), np.float32)
    out[:, mask] = features.T
    return out


def hierarchy(mask: np.ndarray, codes: np.ndarray, latents: np.ndarray, channels: np.ndarray | None, *, k: int = 5,
              delta_max: float = 15.0, rule: Literal["knn", "radius"] = "knn", min_voxels: int = 5,
              voxels_per_segment: int = 30, compactness: float = 0.05) -> dict[str, np.ndarray]:
    """The full hierarchical graph of one patient: habitats, their supervoxels and the fine -> coarse parent.

    Returns a flat dict: ``coarse_x, coarse_pos, coarse_edge_index, coarse_edge_attr, coarse_code,
    habitat_map, fine_x, fine_pos, fine_edge_index, fine_edge_attr, fine_parent, supervoxel_map,
    slic_collapsed`` (shapes in :func:`coarse_graph` and :func:`fine_graph`; ``fine_parent`` indexes the
    coarse nodes). With ``channels=None`` only the coarse level (the perfusion-only flat variant: no SLIC).

    Shapes:
        mask: (X, Y, Z); codes: (n,); latents: (n, N, d); channels: (C, X, Y, Z).
    """
    coarse = coarse_graph(mask, codes, latents, k, delta_max, rule)
    if channels is None:
        return _prefixed(coarse, "coarse_", ("habitat_map",))
    fine = fine_graph(channels, coarse["habitat_map"], min_voxels=min_voxels, voxels_per_segment=voxels_per_segment,
                      compactness=compactness, k=k, delta_max=delta_max, rule=rule)
    return {**_prefixed(coarse, "coarse_", ("habitat_map",)), **_prefixed(fine, "fine_", ("supervoxel_map",
                                                                                          "slic_collapsed"))}


def structure_graph(mask: np.ndarray, channels: np.ndarray, **options) -> dict[str, np.ndarray]:
    """The structure-only variant: the fine graph over the whole tumour as one parent (``fine_parent`` all 0).

    ``options`` are those of :func:`fine_graph`; the keys are those of :func:`hierarchy`'s fine level.

    Shapes:
        mask: (X, Y, Z); channels: (C, X, Y, Z).
    """
    return _prefixed(fine_graph(channels, np.asarray(mask).astype(bool).astype(np.int32), **options), "fine_",
                     ("supervoxel_map", "slic_collapsed"))


def _prefixed(graph: dict[str, np.ndarray], prefix: str, keep: tuple[str, ...]) -> dict[str, np.ndarray]:
    return {(key if key in keep else prefix + key): value for key, value in graph.items()}
