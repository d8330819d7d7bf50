"""Farthest point sampling in pure PyTorch, batched (PyG/torch-cluster semantics)."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from gliotype.nn._blocks import _Blocks, _check_pos  # noqa: F401


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
