"""Point-cloud graph construction in pure PyTorch: radius graph, k-nearest-neighbour graph and
farthest point sampling.

PyTorch Geometric 2.8 delegates :func:`torch_geometric.nn.radius_graph`, ``knn_graph`` and ``fps``
to compiled kernels (``pyg-lib`` / ``torch-cluster``) that are not available everywhere. The
functions here follow the same conventions (``batch`` vector, ``flow``, ``loop``,
``max_num_neighbors``, ``ratio``) with vectorised tensor code that runs unchanged on CPU and CUDA:
the device of the result is the device of ``pos``.

How the work is laid out: the points of each example (``batch`` value) are scattered into a padded
block of shape ``(B, n_max, D)`` together with a validity mask, so points are only ever compared
with points of their own example. Distances are computed for a chunk of centres at a time, so
the largest temporary is bounded by :data:`CHUNK_PAIRS` centre/candidate pairs, whatever the
number of points. The work is still quadratic in the size of an example: this is meant for
point clouds of up to some tens of thousands of points per example (a KD-tree wins on CPU for
large single clouds; on a GPU the dense form is fast). Very unequal example sizes waste work
on padding (every example is padded to the largest one), but memory stays bounded.

Conventions shared with PyTorch Geometric:

* ``batch`` must be sorted (all points of example 0, then of example 1, ...), as produced by
  :class:`torch_geometric.data.Batch`.
* With ``flow="source_to_target"`` (the default) an edge ``(j, i)`` is stored as
  ``edge_index[:, e] = [j, i]``: the neighbour ``j`` is the source, the centre ``i`` the target.
  ``flow="target_to_source"`` swaps the two rows.
* ``loop=False`` removes only the pair ``i == i`` (same index); two distinct points at the same
  position are still neighbours.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor
from gliotype.nn._blocks import CHUNK_PAIRS, _Blocks, _check_batch, _check_flow, _check_pos, _finish, batched_pairwise_dist  # noqa: F401

__all__ = ["CHUNK_PAIRS", "batched_pairwise_dist", "check_edge_index", "knn_graph", "radius_graph"]


def radius_graph(
    pos: Tensor,
    r: float,
    batch: Tensor | None = None,
    loop: bool = False,
    max_num_neighbors: int | None = 32,
    flow: str = "source_to_target",
) -> Tensor:
    """Connect every point to the points of the same example closer than ``r``.

    An edge ``j -> i`` exists when ``batch[j] == batch[i]`` and ``||pos[j] - pos[i]|| < r``
    (strictly less, tested as ``squared distance < r * r``, exactly like torch-cluster and
    pyg-lib: a point at distance exactly ``r`` is *not* a neighbour).

    At most ``max_num_neighbors`` neighbours are kept per centre. Unlike torch-cluster, which keeps
    whichever neighbours its search happens to visit first, the **nearest** ones are kept, ties
    broken by the smaller index, so the result is deterministic. As in PyG 2.8, with
    ``loop=False`` the centre itself does not count towards the limit; with ``loop=True`` the
    self-loop (distance 0) is one of the ``max_num_neighbors`` and is always kept.

    Edges are sorted by target, then by source (for ``flow="source_to_target"``: by
    ``edge_index[1]``, then ``edge_index[0]``; for ``"target_to_source"`` the rows are swapped, so
    the result is sorted by ``edge_index[0]``, then ``edge_index[1]``).

    Args:
        pos: Point coordinates.
        r: Radius, > 0.
        batch: Sorted example id of each point; ``None`` means one example.
        loop: Add the self-loop ``i -> i`` for every point.
        max_num_neighbors: Maximum number of neighbours per centre (``None``: no limit).
        flow: ``"source_to_target"`` (row 0 = neighbour, row 1 = centre) or
            ``"target_to_source"`` (row 0 = centre, row 1 = neighbour).

    Returns:
        ``edge_index``, a LongTensor on ``pos.device``.

    Shapes:
        - pos: ``(N, D)``
        - batch: ``(N,)``
        - output: ``(2, E)``

    Raises:
        ValueError: If ``pos`` is not 2-D, ``batch`` has the wrong length or is not sorted,
            ``r <= 0``, ``max_num_neighbors < 1`` or ``flow`` is unknown.
        TypeError: If ``pos`` is not floating point or ``batch`` not integer.

    Example:
        >>> pos = torch.tensor([[0.0], [1.0], [2.0], [3.0], [5.0], [9.0]])
        >>> radius_graph(pos, r=1.5).tolist()
        [[1, 0, 2, 1, 3, 2], [0, 1, 1, 2, 2, 3]]
    """
    name = "radius_graph"
    _check_pos(pos, name)
    _check_flow(flow, name)
    r = float(r)
    if not r > 0:
        raise ValueError(f"{name}: r must be > 0; got r={r}")
    if max_num_neighbors is not None and int(max_num_neighbors) < 1:
        raise ValueError(
            f"{name}: max_num_neighbors must be >= 1 (or None for no limit); "
            f"got {max_num_neighbors}"
        )
    blocks = _Blocks(pos, batch, name)
    empty = torch.empty(2, 0, dtype=torch.long, device=pos.device)
    if blocks.n_max == 0:
        return empty
    r2 = r * r
    limit = None if max_num_neighbors is None else int(max_num_neighbors)
    srcs, dsts = [], []
    for g0, g1, r0, r1 in blocks.chunks():
        d2 = blocks.sq_dist(g0, g1, r0, r1)  # (G, R, n_max)
        rows = r1 - r0
        if not loop:
            diag = torch.arange(rows, device=pos.device)
            d2[:, diag, diag + r0] = math.inf
        hit = d2 < r2
        g, i, j = torch.nonzero(hit, as_tuple=True)
        if limit is not None and limit < blocks.n_max:
            # neighbours per centre, counted on the (short) edge list
            count = torch.bincount(g * rows + i, minlength=(g1 - g0) * rows)
            over = count.view(g1 - g0, rows) > limit
            if bool(over.any()):  # keep the `limit` nearest of those centres, then redo
                og, orow = torch.nonzero(over, as_tuple=True)
                sub = d2[og, orow].masked_fill_(~hit[og, orow], math.inf)
                order = torch.sort(sub, dim=-1, stable=True).indices[:, :limit]
                keep = torch.zeros_like(hit[og, orow])
                keep.scatter_(1, order, True)
                hit[og, orow] = keep & hit[og, orow]
                g, i, j = torch.nonzero(hit, as_tuple=True)
        g = g + g0
        dsts.append(blocks.to_global(g, i + r0))
        srcs.append(blocks.to_global(g, j))
    src = torch.cat(srcs)
    dst = torch.cat(dsts)
    if len(srcs) > 1:
        perm = torch.argsort(dst * pos.shape[0] + src)
        src, dst = src[perm], dst[perm]
    return _finish(src, dst, flow)


# --------------------------------------------------------------------------------------------
# k-nearest-neighbour graph
# --------------------------------------------------------------------------------------------


def knn_graph(
    pos: Tensor,
    k: int,
    batch: Tensor | None = None,
    loop: bool = False,
    flow: str = "source_to_target",
) -> Tensor:
    """Connect every point to its ``k`` nearest points of the same example.

    Neighbours are ranked by Euclidean distance, ties broken by the smaller index, so the
    result is deterministic. An example with fewer than ``k + 1`` points (``k`` with
    ``loop=True``) gives each of its points all the others (and itself with ``loop=True``).
    With ``loop=True`` the point itself (distance 0) is one of its ``k`` neighbours, as in PyG.

    Edges are grouped by target (centres in index order) and, within a centre, ordered by
    increasing distance (then index) -- the same order as PyG, so dilated variants can take every
    ``d``-th neighbour.

    Args:
        pos: Point coordinates.
        k: Number of neighbours per point, >= 1.
        batch: Sorted example id of each point; ``None`` means one example.
        loop: Count the point itself as a neighbour (adds self-loops).
        flow: ``"source_to_target"`` (row 0 = neighbour, row 1 = centre) or
            ``"target_to_source"`` (row 0 = centre, row 1 = neighbour).

    Returns:
        ``edge_index``, a LongTensor on ``pos.device``.

    Shapes:
        - pos: ``(N, D)``
        - batch: ``(N,)``
        - output: ``(2, E)`` with ``E = N * k`` when every example has more than ``k`` points.

    Raises:
        ValueError: If ``pos`` is not 2-D, ``batch`` has the wrong length or is not sorted,
            ``k < 1`` or ``flow`` is unknown.
        TypeError: If ``pos`` is not floating point or ``batch`` not integer.

    Example:
        >>> square = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        >>> knn_graph(square, k=2).tolist()
        [[1, 2, 0, 3, 0, 3, 1, 2], [0, 0, 1, 1, 2, 2, 3, 3]]
    """
    name = "knn_graph"
    _check_pos(pos, name)
    _check_flow(flow, name)
    if isinstance(k, bool) or int(k) != k or int(k) < 1:
        raise ValueError(f"{name}: k must be an integer >= 1; got k={k!r}")
    k = int(k)
    blocks = _Blocks(pos, batch, name)
    if blocks.n_max == 0:
        return torch.empty(2, 0, dtype=torch.long, device=pos.device)
    kk = min(k, blocks.n_max)
    srcs, dsts = [], []
    for g0, g1, r0, r1 in blocks.chunks():
        d2 = blocks.sq_dist(g0, g1, r0, r1)  # (G, R, n_max), inf outside the example
        rows = r1 - r0
        if not loop:
            diag = torch.arange(rows, device=pos.device)
            d2[:, diag, diag + r0] = math.inf
        # The kk nearest; one more tells whether a tie straddles the cut (then topk's choice among
        # the tied candidates is arbitrary and those centres are redone with a stable sort).
        kq = min(kk + 1, blocks.n_max)
        vals, idx = torch.topk(d2, kq, dim=-1, largest=False, sorted=True)
        if kq > kk:
            amb = (vals[..., kk] == vals[..., kk - 1]) & torch.isfinite(vals[..., kk - 1])
            vals, idx = vals[..., :kk], idx[..., :kk]
            if bool(amb.any()):
                og, orow = torch.nonzero(amb, as_tuple=True)
                srt = torch.sort(d2[og, orow], dim=-1, stable=True)
                vals[og, orow] = srt.values[:, :kk]
                idx[og, orow] = srt.indices[:, :kk]
        # order each centre's neighbours by (distance, index)
        idx, o = torch.sort(idx, dim=-1)
        vals = vals.gather(-1, o)
        vals, o = torch.sort(vals, dim=-1, stable=True)
        idx = idx.gather(-1, o)
        ok = torch.isfinite(vals)
        off = blocks.ptr[g0:g1, None, None]
        centre = off + r0 + torch.arange(rows, device=pos.device)[None, :, None]
        dsts.append(centre.expand_as(idx)[ok])
        srcs.append((off + idx)[ok])
    src = torch.cat(srcs)
    dst = torch.cat(dsts)
    if len(srcs) > 1:
        order = torch.sort(dst, stable=True).indices
        src, dst = src[order], dst[order]
    return _finish(src, dst, flow)


# --------------------------------------------------------------------------------------------
# farthest point sampling
# --------------------------------------------------------------------------------------------


def check_edge_index(edge_index: Tensor, n: int, where: str) -> None:
    """Raise ``ValueError`` (prefixed by ``where``) unless ``edge_index`` is a ``(2, E)`` index of ``n`` nodes."""
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"{where}: edge_index must have shape (2, E) as [source; target] (use an empty (2, 0) "
                         f"tensor for a graph without edges); got {tuple(edge_index.shape)}")
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= n):
        raise ValueError(f"{where}: edge_index must index the graph's {n} nodes (0..{n - 1}); "
                         f"got values in [{int(edge_index.min())}, {int(edge_index.max())}]")
