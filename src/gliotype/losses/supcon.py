"""Supervised contrastive loss (Khosla et al., NeurIPS 2020, ``L_out``), as ``fof``'s MCA uses it (paper 004, eq. 5).

For ``M`` embeddings with labels, the cosine similarity ``s_ij`` and a temperature ``tau``, anchor ``i``
with positives ``P(i) = {p != i : y_p = y_i}`` and the others ``A(i) = {a != i}``::

    l_i = -1 / |P(i)| * sum_{p in P(i)} log( exp(s_ip / tau) / sum_{a in A(i)} exp(s_ia / tau) )
    L   = mean of l_i over the anchors with |P(i)| > 0

Samples with label ``-1`` or ``mask`` False are left out entirely (neither anchors nor in any denominator);
a sample without any positive still counts in the others' denominators.

Differences from the paper and the author code, for the record: eq. 5 sums over the positives (no
``1 / |P(i)|``) and divides by the batch size; the author code (``SupConLoss``) averages over the positives
as here but divides by all ``M`` rows, rows without positives counting 0. The caller adds the biomarkers
(eq. 5 sums them, the author code averages them).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["supervised_contrastive"]


def supervised_contrastive(z: Tensor, labels: Tensor, tau: float = 0.07, mask: Tensor | None = None) -> Tensor:
    """SupCon ``L_out`` on cosine similarities (module docstring).

    Args:
        z: embeddings (e.g. one biomarker's projections of the global, positive and negative views).
        labels: integer class of each embedding; ``-1`` = unknown, left out.
        tau: temperature, ``> 0`` (paper: 0.07).
        mask: optional, False = leave the sample out.

    Returns:
        The mean loss over the anchors that have a positive, a scalar; ``0`` (still in the graph of ``z``,
        with zero gradients) when none has.

    Shapes:
        z: (M, D), labels: (M,), mask: (M,) bool -> ()
    """
    _check(z, labels, tau, mask)
    keep = labels >= 0 if mask is None else (labels >= 0) & mask
    z, labels = z[keep], labels[keep]
    same = labels[:, None] == labels[None, :]
    self_pair = torch.eye(len(labels), dtype=torch.bool, device=z.device)
    positives = same & ~self_pair
    n_positives = positives.sum(dim=1)
    anchors = n_positives > 0
    if not bool(anchors.any()):
        return z.sum() * 0.0
    zn = F.normalize(z, dim=1)
    logits = (zn @ zn.T / tau).masked_fill(self_pair, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    mean_positive = log_prob.masked_fill(~positives, 0.0).sum(dim=1) / n_positives.clamp_min(1)
    return -mean_positive[anchors].mean()


def _check(z: Tensor, labels: Tensor, tau: float, mask: Tensor | None) -> None:
    if not isinstance(z, Tensor) or z.dim() != 2:
        got = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
        raise ValueError(f"supervised_contrastive: z must be embeddings (M, D); got {got!r}. To use several "
                         "views, concatenate them along the first axis and repeat the labels the same way.")
    if not isinstance(labels, Tensor) or tuple(labels.shape) != (z.shape[0],) or labels.is_floating_point():
        got = (tuple(labels.shape), labels.dtype) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(f"supervised_contrastive: labels must be integers of shape ({z.shape[0]},), -1 = "
                         f"unknown; got {got!r}")
    if mask is not None and (not isinstance(mask, Tensor) or mask.dtype != torch.bool
                             or tuple(mask.shape) != (z.shape[0],)):
        got = (tuple(mask.shape), mask.dtype) if isinstance(mask, Tensor) else type(mask).__name__
        raise ValueError(f"supervised_contrastive: mask must be bool of shape ({z.shape[0]},), False = leave "
                         f"the sample out; got {got!r}")
    if not tau > 0:
        raise ValueError(f"supervised_contrastive: tau must be > 0; got tau={tau!r} (paper: 0.07)")
