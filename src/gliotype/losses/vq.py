"""The vector-quantisation terms of a VQ-VAE (van den Oord et al. 2017; paper 002, eq. 2).

For a latent sequence ``z_e`` of ``N`` vectors and its quantised version ``z_q`` (each vector replaced by
its nearest codebook entry), the paper adds to the reconstruction loss::

    sum_n ( ||sg[z_e^(n)] - z_q^(n)||^2  +  beta ||z_e^(n) - sg[z_q^(n)]||^2 )

where ``sg`` stops the gradient. The first term (the *codebook* loss) moves the codebook entries towards
the encoder outputs assigned to them; the second (the *commitment* loss) keeps the encoder outputs near
their entries. Both are squared Euclidean distances summed over the ``d`` features and the ``N``
positions, then averaged over the batch. The commitment term returned here already includes ``beta``, so
the total is ``reconstruction + codebook + commitment``.
"""

from __future__ import annotations

from torch import Tensor

__all__ = ["vq_losses"]


def vq_losses(z_e: Tensor, z_q: Tensor, beta: float = 0.25) -> tuple[Tensor, Tensor]:
    """Codebook and commitment losses of eq. 2, summed over positions and features, averaged over the batch.

    Args:
        z_e: encoder outputs before quantisation.
        z_q: the codebook entries chosen for them (not the straight-through version).
        beta: commitment weight (paper: 0.25), ``>= 0``.

    Returns:
        ``(codebook, commitment)``: scalar tensors, ``mean_b sum_n ||sg[z_e] - z_q||^2`` (gradient reaches the
        codebook only) and ``beta * mean_b sum_n ||z_e - sg[z_q]||^2`` (gradient reaches the encoder only).

    Shapes:
        z_e: (B, N, d), z_q: (B, N, d) -> (), ()

    Example:
        >>> z_e = torch.tensor([[[1.0, 0.0]]]); z_q = torch.tensor([[[0.0, 0.0]]])
        >>> [float(t) for t in vq_losses(z_e, z_q, beta=0.25)]
        [1.0, 0.25]
    """
    if z_e.shape != z_q.shape or z_e.dim() != 3:
        raise ValueError("vq_losses: z_e and z_q must have the same shape (B, N, d); "
                         f"got {tuple(z_e.shape)} and {tuple(z_q.shape)}")
    if not beta >= 0:
        raise ValueError(f"vq_losses: beta must be >= 0 (paper: 0.25); got beta={beta!r}")
    codebook = (z_e.detach() - z_q).pow(2).sum(dim=(1, 2)).mean()
    commitment = beta * (z_e - z_q.detach()).pow(2).sum(dim=(1, 2)).mean()
    return codebook, commitment
