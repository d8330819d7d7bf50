"""Pairwise InfoNCE between samples of one lineage (paper 003, eqs. 3-5), the RNA encoder's ``L^c_RNA``.

For ``N`` L2-normalised projections ``z`` with lineage (or patient) ids, a temperature ``tau``, anchor ``i``
with positives ``P(i) = {p != i : id_p = id_i}`` and the others ``A(i) = {a != i}``::

    l_i = -1 / |P(i)| * sum_{p in P(i)} log( exp(z_i . z_p / tau) / sum_{a in A(i)} exp(z_i . z_a / tau) )
    L   = mean of l_i over the anchors with |P(i)| > 0

Differences from eqs. 3-4 as printed, for the record:

- eq. 3's denominator runs over ``j = 1..N``, the anchor included; ``exp(z_i . z_i / tau) = exp(1 / tau)``
  (``exp(200)`` at the author's ``tau = 0.005``) would swamp every other term, so the anchor is left out
  (as in every pairwise InfoNCE, e.g. SimCLR's NT-Xent).
- eq. 3 is written for one pair ``(i, i')``; a batch can hold several samples of one lineage, so the
  positives' log-probabilities are averaged (SupCon's ``L_out``). With exactly one positive per anchor it
  is eq. 3.
- eq. 4 sums over ``i``; we take the mean over the anchors that have a positive, so the scale does not
  grow with the batch. Samples without a positive in the batch are no anchor but stay negatives for the
  others. When no sample has a positive the loss is ``0`` (still in ``z``'s graph) and the returned count
  of anchors is ``0``.

On normalised ``z`` this is :func:`~gliotype.losses.supcon.supervised_contrastive`, which computes it;
this wrapper takes any hashable ids and can return the anchors.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from gliotype.losses.supcon import supervised_contrastive

__all__ = ["lineage_infonce"]


def lineage_infonce(z: Tensor, ids: Tensor | Sequence, tau: float = 0.005,
                    return_anchors: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Pairwise InfoNCE, positives = other samples of the same lineage (module docstring).

    Args:
        z: L2-normalised projections (e.g. :meth:`gliotype.nn.rna.RNAEncoder.project`); not re-normalised.
        ids: lineage or patient of each sample: an integer tensor (negative = unknown, left out, as in
            ``supervised_contrastive``) or a sequence of hashables (``"L1"``, ...).
        tau: temperature ``> 0`` (author code: 0.005).
        return_anchors: also return which samples had a positive (the flag: ``anchors.any()`` False means
            no pair in the batch and a loss of 0).

    Returns:
        The mean loss over the anchors, a scalar; with ``return_anchors`` also ``anchors`` (bool).

    Shapes:
        z: (N, D), ids: (N,) -> (), anchors: (N,)
    """
    codes = _as_codes(z, ids, tau)
    loss = supervised_contrastive(z, codes, tau)  # re-normalising unit vectors changes nothing
    if not return_anchors:
        return loss
    same = codes[:, None] == codes[None, :]
    anchors = (same.sum(dim=1) > 1) & (codes >= 0)  # a positive other than itself; negative ids are unknown
    return loss, anchors


def _as_codes(z: Tensor, ids, tau: float) -> Tensor:
    """Integer codes of ``ids`` on ``z``'s device, after checking the arguments."""
    if not isinstance(z, Tensor) or z.dim() != 2:
        got = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
        raise ValueError(f"lineage_infonce: z must be projections (N, D); got {got!r}")
    if not tau > 0:
        raise ValueError(f"lineage_infonce: tau must be > 0; got tau={tau!r} (author code: 0.005)")
    if isinstance(ids, Tensor):
        if ids.is_floating_point():
            raise ValueError(f"lineage_infonce: ids must be integers or hashables, got a {ids.dtype} tensor; "
                             "use .long() on integer-valued ids")
        codes = ids.to(z.device)
    else:
        codes = torch.as_tensor(np.unique(np.asarray(list(ids), dtype=object).astype(str), return_inverse=True)[1],
                                device=z.device)
    if tuple(codes.shape) != (z.shape[0],):
        raise ValueError(f"lineage_infonce: ids must have one entry per row of z ({z.shape[0]},); "
                         f"got shape {tuple(codes.shape)!r}")
    return codes.reshape(-1)
