"""Image-RNA contrastive alignment (paper 003, eqs. 7-8) and the hard negatives it mines for matching.

**ITC, multi-positive.** ``M`` patch projections ``u'`` and ``N`` RNA projections ``u`` (L2-normalised),
their lineage ids, a temperature ``tau``; ``s_jk = u'_j . u_k / tau``; the positives of patch ``j`` are the
RNA rows of its lineage, ``P(j) = {k : id_k = id_j}``, and those of RNA row ``k`` the patches of its lineage::

    L_p2r = mean over patches j with |P(j)| > 0 of  -1/|P(j)| sum_{k in P(j)} log softmax_k(s_j.)_k
    L_r2p = mean over RNA rows k with |P(k)| > 0 of -1/|P(k)| sum_{j in P(k)} log softmax_j(s_.k)_j
    L     = (L_p2r + L_r2p) / 2

Several patches of one lineage share their RNA sample, and a batch may repeat an RNA row (one per patch),
so a row can have several positives: the target distribution is uniform over them (ALBEF's
``sim_targets`` for duplicate ids; SupCon's ``L_out``). With one positive per row it is eq. 7 with its
``y(k, k') = 1`` pair, summed over both directions (ALBEF) rather than eq. 8's one-way sum; the
denominator runs over all ``N`` (or ``M``) candidates, the positives included, as eq. 7 writes. Rows without
a positive are no anchor but stay candidates for the others. The author code is one-way (patch -> RNA)
with diagonal targets: it assumes one RNA per patch in the batch and treats two patches of one lineage as
negatives of each other's RNA.

**Hard negatives for matching** (ALBEF section 3.3): for each row of the similarity matrix (a patch), one
column (an RNA row) of a *different* lineage, either the most similar one (``mode="argmax"``) or one drawn
with probability ``softmax`` of the similarities over the other lineages' columns (``mode="softmax"``,
ALBEF's ``torch.multinomial(weights_i2t)``). The draw is an inverse-CDF lookup of uniforms made on the CPU
by ``generator``, so a run is replayable on any device. The author code instead "rolls the batch" (the
patch ``j + 1``'s RNA is the negative of patch ``j``), which can pair a patch with its own lineage.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

__all__ = ["hard_negatives", "itc_loss", "multi_positive_cross_entropy"]

NegativeMode = Literal["softmax", "argmax"]


def multi_positive_cross_entropy(logits: Tensor, positive: Tensor) -> Tensor:
    """Cross-entropy of each row against the uniform distribution over its positive columns.

    Rows without a positive are left out; with none the result is ``0`` in ``logits``' graph.

    Shapes:
        logits: (M, N), positive: (M, N) bool -> ()
    """
    anchors = positive.any(dim=1)
    if not bool(anchors.any()):
        return logits.sum() * 0.0
    log_prob = logits.log_softmax(dim=1)
    per_row = -log_prob.masked_fill(~positive, 0.0).sum(dim=1) / positive.sum(dim=1).clamp_min(1)
    return per_row[anchors].mean()


def itc_loss(z_patch: Tensor, z_rna: Tensor, patch_ids: Tensor, rna_ids: Tensor,
             temperature: float = 0.005) -> Tensor:
    """Symmetric multi-positive InfoNCE between patch and RNA projections (module docstring).

    Args:
        z_patch: L2-normalised patch projections; not re-normalised.
        z_rna: L2-normalised RNA projections.
        patch_ids, rna_ids: integer lineage ids; equal ids are positive pairs.
        temperature: ``tau_c > 0`` (author code: 0.005; ALBEF: 0.07).

    Shapes:
        z_patch: (M, D), z_rna: (N, D), patch_ids: (M,), rna_ids: (N,) -> ()
    """
    if not temperature > 0:
        raise ValueError(f"itc_loss: temperature must be > 0; got {temperature!r} (author code: 0.005)")
    if z_patch.dim() != 2 or z_rna.dim() != 2 or z_patch.shape[1] != z_rna.shape[1]:
        raise ValueError(f"itc_loss: z_patch (M, D) and z_rna (N, D) must share D; got {tuple(z_patch.shape)} "
                         f"and {tuple(z_rna.shape)}")
    logits = z_patch @ z_rna.T / temperature
    positive = patch_ids.to(logits.device)[:, None] == rna_ids.to(logits.device)[None, :]
    return (multi_positive_cross_entropy(logits, positive) + multi_positive_cross_entropy(logits.T, positive.T)) / 2


def hard_negatives(similarity: Tensor, row_ids: Tensor, col_ids: Tensor, mode: NegativeMode = "softmax",
                   generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """For each row, a column of another lineage: the most similar one, or one drawn by softmax.

    Args:
        similarity: row-to-column similarities, already divided by the temperature for ``"softmax"``
            (the ITC logits); not differentiated through.
        row_ids, col_ids: integer lineage ids; a column is a negative of a row when the ids differ.
        mode: ``"softmax"`` (ALBEF: draw with probability ``softmax`` over the negatives) or ``"argmax"``.
        generator: the CPU generator of the draw (``"softmax"``); None uses the global one.

    Returns:
        ``index`` (the chosen column; 0 where there is none) and ``valid`` (False where a row has no
        column of another lineage).

    Shapes:
        similarity: (M, N), row_ids: (M,), col_ids: (N,) -> index (M,) int64, valid (M,) bool
    """
    if mode not in ("softmax", "argmax"):
        raise ValueError(f"hard_negatives: mode must be 'softmax' or 'argmax'; got {mode!r}")
    similarity = similarity.detach()
    negative = row_ids.to(similarity.device)[:, None] != col_ids.to(similarity.device)[None, :]
    valid = negative.any(dim=1)
    masked = similarity.masked_fill(~negative, float("-inf"))
    if mode == "argmax":
        return masked.argmax(dim=1).masked_fill(~valid, 0), valid
    cdf = masked.softmax(dim=1).nan_to_num(0.0).cumsum(dim=1)  # rows without negatives: all 0
    uniform = 1.0 - torch.rand(len(similarity), generator=generator)  # in (0, 1], drawn on the CPU
    target = uniform.to(similarity.device, similarity.dtype) * cdf[:, -1]
    index = (cdf < target[:, None]).sum(dim=1).clamp_max(similarity.shape[1] - 1)
    return index.masked_fill(~valid, 0), valid
