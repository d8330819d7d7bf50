"""Shared machinery of the point-cloud graph ops: padded per-example blocks, chunked distances, checks."""

from __future__ import annotations

import math

import torch
from torch import Tensor


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


