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

__all__ = [
    "CHUNK_PAIRS",
    "batched_pairwise_dist",
    "fps",
    "knn_graph",
    "radius_graph",
]

#: Upper bound, per device type, on the number of (centre, candidate) pairs whose distances are
#: held in memory at once (float32: 4 bytes per pair, plus about as much again in temporaries).
#: On CPU small cache-friendly chunks are fastest (``2**18`` pairs = 1 MiB); on GPUs large chunks
#: keep the number of kernel launches down (``2**24`` pairs = 64 MiB). Other device types use the
#: ``"default"`` entry.
CHUNK_PAIRS: dict[str, int] = {"cpu": 2**18, "cuda": 2**24, "default": 2**22}

#: Up to this many coordinates, distances are computed exactly from coordinate differences; above
#: it, the faster ``|x|^2 + |y|^2 - 2 x.y`` matrix-product form is used (rounding error grows with
#: the magnitude of the coordinates; results are clamped at 0 and self-distances set to 0).
_EXACT_DIM_MAX: int = 8

_FLOWS = ("source_to_target", "target_to_source")


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def batched_pairwise_dist(x: Tensor, y: Tensor, *, squared: bool = True) -> Tensor:
    """Euclidean distances between every point of ``x`` and every point of ``y``, per batch.

    For ``D <= 8`` the squared distance is accumulated from coordinate differences, one coordinate
    at a time, so it is exact up to float rounding of each difference (``d(p, p) == 0`` exactly
    and ``d(0, 2) == 4`` exactly, which matters for the ``< r`` test of :func:`radius_graph`).
    For larger ``D`` the matrix-product form is used and clamped at zero.

    Args:
        x: Points, shape ``(B, P, D)`` (or ``(P, D)``, treated as ``B = 1``).
        y: Points, shape ``(B, Q, D)`` (or ``(Q, D)``).
        squared: Return squared distances (default) instead of distances.

    Returns:
        Distances, shape ``(B, P, Q)`` (``(P, Q)`` if both inputs were 2-D), dtype of ``x``.

    Shapes:
        - x: ``(B, P, D)``
        - y: ``(B, Q, D)``
        - output: ``(B, P, Q)``

    Raises:
        ValueError: If the inputs are not 2-D/3-D or their batch or coordinate sizes differ.
    """
    unbatched = x.dim() == 2 and y.dim() == 2
    if unbatched:
        x, y = x.unsqueeze(0), y.unsqueeze(0)
    if x.dim() != 3 or y.dim() != 3:
        raise ValueError(
            f"batched_pairwise_dist expects x of shape (B, P, D) and y of shape (B, Q, D); "
            f"got x.shape={tuple(x.shape)}, y.shape={tuple(y.shape)}"
        )
    if x.shape[0] != y.shape[0] or x.shape[2] != y.shape[2]:
        raise ValueError(
            f"batched_pairwise_dist: x and y must agree in B and D; "
            f"got x.shape={tuple(x.shape)}, y.shape={tuple(y.shape)}"
        )
    d = x.shape[2]
    if d <= _EXACT_DIM_MAX:
        if d == 0:
            out = x.new_zeros(x.shape[0], x.shape[1], y.shape[1])
        else:
            diff = x[:, :, 0, None] - y[:, None, :, 0]
            out = diff.mul_(diff)
        for c in range(1, d):
            diff = x[:, :, c, None] - y[:, None, :, c]
            out.addcmul_(diff, diff)
    else:
        xx = (x * x).sum(-1)
        yy = (y * y).sum(-1)
        out = torch.baddbmm(xx[:, :, None] + yy[:, None, :], x, y.transpose(1, 2), alpha=-2.0)
        out.clamp_(min=0.0)
    if not squared:
        out = out.sqrt_()
    return out.squeeze(0) if unbatched else out


def _check_pos(pos: Tensor, name: str) -> None:
    if not isinstance(pos, Tensor):
        raise TypeError(f"{name}: pos must be a torch.Tensor of shape (N, D); got {type(pos)!r}")
    if pos.dim() != 2:
        raise ValueError(
            f"{name}: pos must be 2-D with shape (N, D) (one row per point); "
            f"got shape {tuple(pos.shape)}. For a single 1-D coordinate use pos.view(-1, 1)."
        )
    if not pos.is_floating_point():
        raise TypeError(
            f"{name}: pos must be a floating-point tensor; got dtype {pos.dtype}. "
            f"Convert with pos.float()."
        )


def _check_flow(flow: str, name: str) -> None:
    if flow not in _FLOWS:
        raise ValueError(f"{name}: flow must be one of {_FLOWS}; got {flow!r}")


class _Blocks:
    """Padded per-example layout of a sorted batch vector."""

    def __init__(self, pos: Tensor, batch: Tensor | None, name: str) -> None:
        n = pos.shape[0]
        device = pos.device
        if batch is None:
            counts = torch.tensor([n], device=device)
            self.local = torch.arange(n, device=device)
            self.batch = torch.zeros(n, dtype=torch.long, device=device)
        else:
            batch = _check_batch(batch, pos, name)
            num_graphs = int(batch[-1]) + 1 if n > 0 else 0
            counts = torch.bincount(batch, minlength=num_graphs)
            self.batch = batch
        self.counts = counts
        self.ptr = torch.cumsum(counts, 0) - counts  # start offset of each example
        if batch is not None:
            self.local = torch.arange(n, device=device) - self.ptr[batch]
        self.num_graphs = counts.numel()
        self.n_max = int(counts.max()) if counts.numel() > 0 else 0
        self.dense = pos.new_zeros(self.num_graphs, self.n_max, pos.shape[1])
        self.dense[self.batch, self.local] = pos
        self.valid = torch.zeros(self.num_graphs, self.n_max, dtype=torch.bool, device=device)
        self.valid[self.batch, self.local] = True
        self.padded = bool((counts != self.n_max).any())

    def chunks(self):
        """Yield ``(g0, g1, r0, r1)``: examples ``g0:g1`` and centre rows ``r0:r1`` of each."""
        budget = CHUNK_PAIRS.get(self.dense.device.type, CHUNK_PAIRS["default"])
        n_max = max(self.n_max, 1)
        rows = max(1, min(n_max, budget // n_max))
        groups = max(1, budget // (rows * n_max))
        for g0 in range(0, self.num_graphs, groups):
            g1 = min(g0 + groups, self.num_graphs)
            for r0 in range(0, self.n_max, rows):
                yield g0, g1, r0, min(r0 + rows, self.n_max)

    def sq_dist(self, g0: int, g1: int, r0: int, r1: int) -> Tensor:
        """Squared distances ``(g1-g0, r1-r0, n_max)``; +inf where the centre or candidate is
        padding."""
        d2 = batched_pairwise_dist(self.dense[g0:g1, r0:r1], self.dense[g0:g1])
        if self.padded:
            ok = self.valid[g0:g1, r0:r1, None] & self.valid[g0:g1, None, :]
            d2.masked_fill_(~ok, math.inf)
        return d2

    def to_global(self, g: Tensor, local: Tensor) -> Tensor:
        return self.ptr[g] + local


def _check_batch(batch: Tensor, pos: Tensor, name: str) -> Tensor:
    if not isinstance(batch, Tensor):
        raise TypeError(f"{name}: batch must be a LongTensor of shape (N,); got {type(batch)!r}")
    if batch.dim() != 1 or batch.shape[0] != pos.shape[0]:
        raise ValueError(
            f"{name}: batch must have shape (N,) = ({pos.shape[0]},), one example id per row of "
            f"pos; got shape {tuple(batch.shape)}"
        )
    if batch.dtype.is_floating_point or batch.dtype == torch.bool or batch.is_complex():
        raise TypeError(f"{name}: batch must hold integer example ids; got dtype {batch.dtype}")
    if batch.device != pos.device:
        raise ValueError(
            f"{name}: batch is on {batch.device} but pos is on {pos.device}; "
            f"move both to the same device"
        )
    batch = batch.long()
    if batch.numel() == 0:
        return batch
    if int(batch[0]) < 0:
        raise ValueError(f"{name}: batch ids must be >= 0; got min {int(batch.min())}")
    step = batch[1:] - batch[:-1]
    if bool((step < 0).any()):
        at = int(torch.nonzero(step < 0)[0, 0])
        raise ValueError(
            f"{name}: batch must be sorted in non-decreasing order (all points of example 0, then "
            f"of example 1, ...); batch[{at}]={int(batch[at])} is followed by "
            f"batch[{at + 1}]={int(batch[at + 1])}. Sort pos and batch by batch first "
            f"(perm = batch.argsort(stable=True))."
        )
    return batch


def _finish(src: Tensor, dst: Tensor, flow: str) -> Tensor:
    if flow == "source_to_target":
        return torch.stack([src, dst], 0)
    return torch.stack([dst, src], 0)


# --------------------------------------------------------------------------------------------
# radius graph
# --------------------------------------------------------------------------------------------


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


def fps(
    pos: Tensor,
    batch: Tensor | None = None,
    ratio: float = 0.5,
    random_start: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Farthest point sampling (PointNet++), independently within each example.

    Each example ``b`` with ``n_b`` points gets ``ceil(ratio * n_b)`` samples (computed in float32
    as torch-cluster does, so ``ratio=0.7, n_b=10`` gives 7). The first sample is a random point
    of the example (``random_start=True``, drawn from ``generator``) or its first point
    (``random_start=False``, deterministic). Each next sample is the point whose distance to the
    nearest already-chosen sample is largest, ties broken by the smaller index.

    All examples are processed together: one loop over sampling steps, with the examples padded
    to a common size and masked.

    Args:
        pos: Point coordinates.
        batch: Sorted example id of each point; ``None`` means one example.
        ratio: Fraction of points to keep per example, ``0 < ratio <= 1``.
        random_start: Start from a random point of each example instead of its first point.
        generator: Random generator for the start points (its device is used for the draw).

    Returns:
        Indices into ``pos`` (LongTensor on ``pos.device``): the samples of example 0 in the order
        they were chosen, then those of example 1, and so on.

    Shapes:
        - pos: ``(N, D)``
        - batch: ``(N,)``
        - output: ``(sum_b ceil(ratio * n_b),)``

    Raises:
        ValueError: If ``pos`` is not 2-D, ``batch`` has the wrong length or is not sorted, or
            ``ratio`` is outside ``(0, 1]``.
        TypeError: If ``pos`` is not floating point or ``batch`` not integer.

    Example:
        >>> pos = torch.tensor([[0.0], [1.0], [2.0], [3.0], [10.0]])
        >>> fps(pos, ratio=0.4, random_start=False).tolist()
        [0, 4]
    """
    name = "fps"
    _check_pos(pos, name)
    ratio = float(ratio)
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"{name}: ratio must be in (0, 1]; got ratio={ratio}")
    blocks = _Blocks(pos, batch, name)
    device = pos.device
    if blocks.n_max == 0:
        return torch.empty(0, dtype=torch.long, device=device)
    counts = blocks.counts
    num = torch.ceil(counts.to(torch.float32) * torch.tensor(ratio, dtype=torch.float32))
    num = torch.minimum(num.long(), counts)
    steps = int(num.max())
    num_graphs, n_max = blocks.num_graphs, blocks.n_max

    if random_start:
        gen_device = generator.device if generator is not None else device
        u = torch.rand(num_graphs, generator=generator, device=gen_device).to(device)
        start = torch.minimum((u * counts).long(), (counts - 1).clamp(min=0))
    else:
        start = torch.zeros(num_graphs, dtype=torch.long, device=device)

    dense, valid = blocks.dense, blocks.valid
    arange_g = torch.arange(num_graphs, device=device)
    # Distance to the nearest chosen sample; padding is -1 so it is never the argmax.
    min_d2 = torch.full((num_graphs, n_max), math.inf, dtype=pos.dtype, device=device)
    min_d2.masked_fill_(~valid, -1.0)
    chosen = torch.empty(num_graphs, steps, dtype=torch.long, device=device)
    cur = start
    for s in range(steps):
        chosen[:, s] = cur
        centre = dense[arange_g, cur]  # (G, D)
        d2 = torch.zeros_like(min_d2)
        for c in range(dense.shape[2]):
            diff = dense[:, :, c] - centre[:, c, None]
            d2.addcmul_(diff, diff)
        min_d2 = torch.where(valid, torch.minimum(min_d2, d2), min_d2)
        if s + 1 < steps:
            cur = torch.argmax(min_d2, dim=1)  # first maximal index on CPU and CUDA
    keep = torch.arange(steps, device=device)[None, :] < num[:, None]
    return (chosen + blocks.ptr[:, None])[keep]
