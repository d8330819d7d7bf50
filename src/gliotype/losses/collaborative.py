"""The collaborative loss of paper 000 (eq. 2): symmetric KL divergence between two learners' latents.

The paper writes ``L = zu (log zu - zv) + zv (log zv - zu)`` for the 128-d latents ``zu`` (CNN) and ``zv``
(GNN) taken before each learner's last FC layer, "both graph to image and image to graph KL
divergence". Its notation is loose (a latent after ReLU is not a distribution and may be 0, and the
second ``log`` is missing on ``zv`` / ``zu``). We read it as the symmetric KL divergence between two
distributions over the latent features, obtained by a softmax with temperature ``T``::

    p = softmax(zu / T),  q = softmax(zv / T)
    L = mean over the batch of  KL(p || q) + KL(q || p)  =  sum_k (p_k - q_k) (log p_k - log q_k)

Log-probabilities come from ``log_softmax`` (no ``log(0)``, no overflow). The loss is >= 0, zero when the
two latents agree up to an additive constant per sample, and symmetric in its arguments; gradients
flow into both learners (no stop-gradient), as in the paper.
"""

from __future__ import annotations

from torch import Tensor
from torch.nn import functional as F

__all__ = ["symmetric_kl"]


def symmetric_kl(z_u: Tensor, z_v: Tensor, temperature: float = 1.0) -> Tensor:
    """Symmetric KL divergence between the softmax distributions of two latents, averaged over the batch.

    Args:
        z_u: latents of one learner (paper: the image learner's 128-d latent).
        z_v: latents of the other learner, same shape.
        temperature: softmax temperature ``T > 0``; larger values flatten the distributions.

    Returns:
        The loss, a scalar tensor: ``mean_b sum_k (p_bk - q_bk) (log p_bk - log q_bk)``.

    Shapes:
        z_u: (B, K), z_v: (B, K) -> () ; a 1-D (K,) pair is one sample.

    Example:
        >>> z = torch.randn(4, 128)
        >>> float(symmetric_kl(z, z))
        0.0
    """
    if z_u.shape != z_v.shape or z_u.dim() not in (1, 2):
        raise ValueError("symmetric_kl: z_u and z_v must have the same shape (B, K) (or (K,) for one sample); "
                         f"got {tuple(z_u.shape)} and {tuple(z_v.shape)}")
    if not temperature > 0:
        raise ValueError(f"symmetric_kl: temperature must be > 0; got temperature={temperature!r}")
    log_p = F.log_softmax(z_u / temperature, dim=-1)
    log_q = F.log_softmax(z_v / temperature, dim=-1)
    per_sample = ((log_p.exp() - log_q.exp()) * (log_p - log_q)).sum(dim=-1)
    return per_sample.mean()
