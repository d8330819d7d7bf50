"""The contrastive losses of paper 001: InfoNCE (eq. 1 / 4) and the bi-level loss (eq. 7).

Paper eq. 1 (the brain-network generator) and eq. 4 (the tumour level) write, for ``N`` paired latents
``(a_i, b_i)`` with the cosine similarity ``S`` and a temperature ``tau``::

    L(a, b) = mean_i  -log( exp(S(a_i, b_i) / tau) / sum_{j != i} exp(S(a_i, b_j) / tau) )

The denominator runs over the *other* pairs only (``j != i``). We keep that "decoupled" form (Yeh et al.,
2022) as written: unlike the usual cross-entropy form, whose denominator also holds the positive, it is not
bounded below by 0 and can be negative. The two forms differ by exactly
``log(1 + exp(S(a_i, b_i) / tau) / sum_{j != i} exp(S(a_i, b_j) / tau))`` per row. It is one-way (``a``
is the anchor); eq. 7 makes the tumour level symmetric by adding both directions.

Eq. 7, the bi-level loss, combines the tumour level (image and point-cloud latents, both directions) and
the brain level (brain-network latent against the tumour latent)::

    L = lam * (L(z_I, z_P) + L(z_P, z_I)) / 2 + (1 - lam) * L(z_B, z_T)

with ``lam = 0.8`` and ``tau = 0.1`` (paper). A level whose latents are missing (``None``, e.g. an
ablation without one encoder) is dropped and the other one counts with weight 1.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["bilevel_contrastive", "info_nce"]


def info_nce(a: Tensor, b: Tensor, temperature: float = 0.1) -> Tensor:
    """One-way InfoNCE with the positive left out of the denominator (paper eq. 1 / 4).

    Args:
        a: anchor latents; row ``i`` is paired with row ``i`` of ``b``.
        b: paired latents, same shape as ``a``.
        temperature: ``tau > 0``; the cosine similarities are divided by it.

    Returns:
        The loss, a scalar tensor: ``mean_i [logsumexp_{j != i} S_ij / tau - S_ii / tau]`` with
        ``S_ij`` the cosine similarity of ``a_i`` and ``b_j``. It can be negative.

    Shapes:
        a: (N, D), b: (N, D) with N >= 2 -> ()

    Example:
        >>> a = torch.eye(3)
        >>> round(float(info_nce(a, a, temperature=1.0)), 4)  # log(2) - 1
        -0.3069
    """
    _check_pair(a, b, "info_nce")
    if not temperature > 0:
        raise ValueError(f"info_nce: temperature must be > 0; got temperature={temperature!r}")
    sim = F.normalize(a, dim=1) @ F.normalize(b, dim=1).T / temperature  # (N, N)
    positive = sim.diagonal()
    off_diagonal = torch.eye(sim.shape[0], dtype=torch.bool, device=sim.device)
    negatives = torch.logsumexp(sim.masked_fill(off_diagonal, float("-inf")), dim=1)
    return (negatives - positive).mean()


def bilevel_contrastive(z_image: Tensor | None, z_points: Tensor | None, z_brain: Tensor | None,
                        z_tumour: Tensor | None, temperature: float = 0.1, lam: float = 0.8) -> Tensor:
    """The bi-level contrastive loss of paper eq. 7.

    Args:
        z_image: tumour-image latents (paper: projected image encoder output) or ``None``.
        z_points: tumour-geometry latents, paired row by row with ``z_image``, or ``None``.
        z_brain: brain-network latents or ``None``.
        z_tumour: tumour latents paired with ``z_brain`` (the anchor of the brain level is ``z_brain``),
            or ``None``.
        temperature: ``tau`` of every InfoNCE term.
        lam: weight of the tumour level, in ``[0, 1]``; the brain level gets ``1 - lam``.

    Returns:
        ``lam * (L_I2P + L_P2I) / 2 + (1 - lam) * L_B2T``, a scalar. If ``z_image`` or ``z_points`` is
        ``None`` only ``L_B2T`` counts (weight 1); if ``z_brain`` or ``z_tumour`` is ``None`` only the
        tumour level counts (weight 1).

    Shapes:
        z_image: (N, D), z_points: (N, D), z_brain: (N, D'), z_tumour: (N, D') -> ()
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"bilevel_contrastive: lam must be in [0, 1]; got lam={lam!r}")
    tumour_level = None if z_image is None or z_points is None else \
        (info_nce(z_image, z_points, temperature) + info_nce(z_points, z_image, temperature)) / 2
    brain_level = None if z_brain is None or z_tumour is None else info_nce(z_brain, z_tumour, temperature)
    if tumour_level is None and brain_level is None:
        given = dict(z_image=z_image, z_points=z_points, z_brain=z_brain, z_tumour=z_tumour)
        missing = [name for name, z in given.items() if z is None]
        raise ValueError("bilevel_contrastive: both levels are missing; give z_image and z_points (tumour level) "
                         f"and/or z_brain and z_tumour (brain level). Missing: {missing!r}")
    if brain_level is None:
        return tumour_level
    if tumour_level is None:
        return brain_level
    return lam * tumour_level + (1.0 - lam) * brain_level


def _check_pair(a: Tensor, b: Tensor, name: str) -> None:
    if a.dim() != 2 or a.shape != b.shape:
        raise ValueError(f"{name}: a and b must be paired latents of the same shape (N, D); "
                         f"got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[0] < 2:
        raise ValueError(f"{name}: needs N >= 2 pairs (the denominator sums over the other pairs j != i); "
                         f"got N={a.shape[0]}. Use a batch of at least two examples.")
