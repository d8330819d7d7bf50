"""The consistency loss of ``fof``'s FRL (paper 004, eq. 4): global and positive views together, negative apart.

With the cosine similarity ``cos`` and ``phi(a, b) = exp(cos(a, b) / tau)``, for the three views of image
``i`` (global ``g``, positive ``p``, negative ``n``), ``form="paper"`` is eq. 4 as written::

    psi_i = phi(g_i, p_i) / (phi(g_i, p_i) + phi(g_i, n_i) + phi(p_i, n_i)),     L = -mean_i log psi_i

It is per image (no other image of the batch enters) and has no direction: the one term holds both
negative pairs.

``form="author"`` is the author code's ``RegionContrastiveLoss`` (an NT-Xent / SimCLR loss over the batch):
every ``g_i`` and every ``p_i`` is an anchor (``2B`` rows, symmetric), its positive is the other of the pair,
and its negatives are the global and positive views of the *other* images plus its own negative view::

    l(g_i) = -log( e^{s(g_i, p_i)} / (e^{s(g_i, p_i)} + sum_{k != i} [e^{s(g_i, g_k)} + e^{s(g_i, p_k)}]
                                      + e^{s(g_i, n_i)}) )

with ``s = cos / tau``, and ``l(p_i)`` the same with ``g`` and ``p`` swapped; ``L`` is the mean of the ``2B``
rows. For ``B = 1`` it keeps only the own negative view, like eq. 4, but in two terms.

(The project's :func:`gliotype.losses.contrastive.info_nce` is paper 001's one-way InfoNCE with the positive
left out of the denominator; it is neither form.)
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["focus_consistency"]

FORMS = ("paper", "author")


def focus_consistency(v_glb: Tensor, v_pos: Tensor, v_neg: Tensor, tau: float = 0.07,
                      form: Literal["paper", "author"] = "paper") -> Tensor:
    """FRL consistency loss on the global, positive and negative features (module docstring).

    Args:
        v_glb: features of the whole images; row ``i`` of each input belongs to image ``i``.
        v_pos: features of the positive views (low-scoring tokens masked).
        v_neg: features of the negative views (high-scoring tokens masked).
        tau: temperature, ``> 0`` (paper: 0.07).
        form: ``"paper"`` (eq. 4, per image) or ``"author"`` (batch NT-Xent of the author code).

    Returns:
        The loss, a scalar ``>= 0``.

    Shapes:
        v_glb, v_pos, v_neg: (B, D) -> ()
    """
    _check(v_glb, v_pos, v_neg, tau, form)
    g, p, n = (F.normalize(v, dim=1) for v in (v_glb, v_pos, v_neg))
    if form == "paper":
        s_gp, s_gn, s_pn = ((a * b).sum(dim=1) / tau for a, b in ((g, p), (g, n), (p, n)))
        return (torch.logsumexp(torch.stack([s_gp, s_gn, s_pn], dim=1), dim=1) - s_gp).mean()
    return _author_form(g, p, n, tau)


def _author_form(g: Tensor, p: Tensor, n: Tensor, tau: float) -> Tensor:
    b = g.shape[0]
    anchors = torch.cat([g, p])  # (2B, D): rows 0..B-1 global, B..2B-1 positive
    sim_views = anchors @ anchors.T / tau  # (2B, 2B)
    sim_own_negative = (anchors * torch.cat([n, n])).sum(dim=1, keepdim=True) / tau  # (2B, 1)
    self_pair = torch.eye(2 * b, dtype=torch.bool, device=g.device)
    logits = torch.cat([sim_views.masked_fill(self_pair, float("-inf")), sim_own_negative], dim=1)
    partner = (torch.arange(2 * b, device=g.device) + b) % (2 * b)
    return F.cross_entropy(logits, partner)


def _check(v_glb: Tensor, v_pos: Tensor, v_neg: Tensor, tau: float, form: str) -> None:
    shapes = [tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__ for v in (v_glb, v_pos, v_neg)]
    if not all(isinstance(v, Tensor) and v.dim() == 2 for v in (v_glb, v_pos, v_neg)) or len(set(shapes)) != 1:
        raise ValueError(f"focus_consistency: v_glb, v_pos and v_neg must be features of one shape (B, D), "
                         f"row i of each from image i; got {shapes!r}")
    if not tau > 0:
        raise ValueError(f"focus_consistency: tau must be > 0; got tau={tau!r} (paper: 0.07)")
    if form not in FORMS:
        raise ValueError(f"focus_consistency: unknown form {form!r}; choose one of {FORMS!r} "
                         "('paper' = eq. 4 as written, 'author' = the author code's batch NT-Xent)")
