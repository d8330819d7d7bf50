"""Paper 003's multimodal model (section 2.4): ALBEF-like alignment of WSI patches and RNA-seq samples.

Parts: the RNA encoder (:class:`~gliotype.nn.rna.RNAEncoder`) and the patch encoder
(:class:`~gliotype.nn.patch_encoder.PatchEncoder`); two linear projections of their CLS states to a common
L2-normalised space (``u_k``, ``u'_k`` of eq. 7; separate from the encoders' own pretext projections, as in
the author code); a cross-attention :class:`~gliotype.nn.joint_encoder.JointEncoder` (RNA states attend to
patch tokens); a 2-way matching head on the joint CLS; per-token linear RNA decoders on the joint token
states.

Losses (each switched on or off, each with a weight; ``parts`` holds the unweighted value of those on):

- ``contrastive`` (ITC, eqs. 7-8): :func:`gliotype.losses.itc.itc_loss`, symmetric and multi-positive
  (every RNA row of a patch's lineage is a positive).
- ``matching`` (ITM, ``L^m_MM``): cross-entropy of the matching head on each patch with its RNA (label 1),
  each patch with a hard-negative RNA of another lineage and each RNA row with a hard-negative patch
  (label 0), mined from the ITC similarities by :func:`gliotype.losses.itc.hard_negatives` (``negatives``:
  ALBEF's softmax draw or the arg-max). Positives : negatives = 1 : 2 as in ALBEF. Without
  ``contrastive`` the projections that rank the negatives do not train, and the mining is near random.
- ``decoder`` (``L^r_MM``, Table 1's "RNA decoder"): mean squared error of the decoders' prediction of the
  RNA's token genes from the joint states of the matching pairs. As in the author code the RNA enters
  unmasked (the decoder reconstructs its input through the joint encoder).
- ``rna_pretext`` (eq. 5): :meth:`RNAEncoder.reconstruction_loss` on a drawn mask plus
  :func:`~gliotype.losses.lineage.lineage_infonce` of its projection, summed.
- ``patch_triplet`` (eq. 6): :func:`~gliotype.losses.triplet.triplet_hardest` on the patch projections.

Table 1 variants: ``init="pretrained"`` records that the caller loaded pretrained encoder states
(:meth:`MultimodalModel.load_encoders`, with state dicts read safely, e.g. ``safetensors.torch.load_file``);
``freeze_rna`` / ``freeze_patch`` freeze an encoder (``requires_grad=False``, kept in eval mode so its
BatchNorm statistics and dropout stay fixed; the projections and the joint parts still train, as in the
author code); the gene grouping (PPI vs chromosome tokens) is the RNA encoder's; ``decoder`` on or off.
The paper's best row is ``contrastive + matching`` without the decoder (the defaults).

Batches: ``B_r`` RNA rows and ``B_p`` patches, paired by lineage id (a patch's positive RNA is the RNA row
with its id; the first one if several rows share it). Everything follows the inputs' device.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn
from torch.nn import functional as F

from gliotype.losses.itc import hard_negatives, itc_loss
from gliotype.losses.lineage import lineage_infonce
from gliotype.losses.triplet import triplet_hardest
from gliotype.nn.joint_encoder import JointEncoder
from gliotype.nn.patch_encoder import PatchEncoder
from gliotype.nn.rna import RNAEncoder

__all__ = ["LOSSES", "MultimodalConfig", "MultimodalModel", "positive_rna_rows"]

LOSSES = ("contrastive", "matching", "decoder", "rna_pretext", "patch_triplet")


class MultimodalConfig(BaseModel):
    """Losses, variants and joint-encoder sizes of :class:`MultimodalModel` (module docstring).

    Author code: projection 128, temperature 0.005, one co-attention layer of width 768 with 8 heads.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    contrastive: bool = True
    matching: bool = True
    decoder: bool = False
    rna_pretext: bool = False
    patch_triplet: bool = False
    contrastive_weight: float = Field(1.0, gt=0)
    matching_weight: float = Field(1.0, gt=0)
    decoder_weight: float = Field(1.0, gt=0)
    rna_pretext_weight: float = Field(1.0, gt=0)
    patch_triplet_weight: float = Field(1.0, gt=0)
    projection: int = Field(128, ge=1)
    temperature: float = Field(0.005, gt=0)
    negatives: Literal["softmax", "argmax"] = "softmax"
    triplet_margin: float = Field(0.2, ge=0)
    triplet_metric: Literal["euclidean", "cosine", "sqeuclidean"] = "euclidean"
    joint_dim: int = Field(128, ge=1)
    joint_depth: int = Field(2, ge=1)
    joint_heads: int = Field(4, ge=1)
    joint_mlp_ratio: float = Field(4.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    init: Literal["random", "pretrained"] = "random"  # a record: "pretrained" = the caller loaded the encoders
    freeze_rna: bool = False
    freeze_patch: bool = False

    @model_validator(mode="after")
    def _check(self) -> MultimodalConfig:
        if not any(getattr(self, name) for name in LOSSES):
            raise ValueError(f"MultimodalConfig: every loss is off; switch on at least one of {LOSSES}")
        for loss, frozen in (("rna_pretext", "freeze_rna"), ("patch_triplet", "freeze_patch")):
            if getattr(self, loss) and getattr(self, frozen):
                raise ValueError(f"MultimodalConfig: {loss} trains the encoder that {frozen} freezes; "
                                 f"switch one of them off")
        if self.joint_dim % self.joint_heads:
            raise ValueError(f"MultimodalConfig: joint_dim ({self.joint_dim}) must be a multiple of joint_heads "
                             f"({self.joint_heads})")
        return self


def positive_rna_rows(patch_ids: Tensor, rna_ids: Tensor) -> Tensor:
    """The RNA row of each patch's lineage (the first such row).

    Raises:
        ValueError: a patch's lineage has no RNA row in the batch; the message lists those ids.

    Shapes:
        patch_ids: (B_p,), rna_ids: (B_r,) -> (B_p,) int64
    """
    match = patch_ids[:, None] == rna_ids.to(patch_ids.device)[None, :]
    found = match.any(dim=1)
    if not bool(found.all()):
        missing = sorted(set(patch_ids[~found].tolist()))
        raise ValueError(f"MultimodalModel: patches of lineage ids {missing[:10]!r} have no RNA row in the batch "
                         f"(RNA ids {sorted(set(rna_ids.tolist()))[:10]!r}); put each patch's RNA sample in the "
                         "batch, e.g. sample patches only from lineages whose RNA is loaded")
    return match.int().argmax(dim=1)


class MultimodalModel(nn.Module):
    """RNA and patch encoders aligned by contrast, matching and reconstruction (module docstring).

    Args:
        rna: the RNA encoder (its gene tokens define the RNA side).
        patch: the patch encoder.
        config: losses and variants; ``MultimodalConfig()`` is the paper's best row.

    Shapes:
        - expression: ``(B_r, G)``, rna_ids: ``(B_r,)`` int; images: ``(B_p, 3, H, W)`` in [0, 1], patch_ids ``(B_p,)``
        - :meth:`embed_rna` -> ``(N, projection)``, :meth:`embed_patches` -> ``(M, projection)``, unit norm
        - :meth:`similarity`, :meth:`match_scores`: images ``(M, ...)``, expression ``(N, G)`` -> ``(M, N)``
    """

    def __init__(self, rna: RNAEncoder, patch: PatchEncoder, config: MultimodalConfig | None = None):
        super().__init__()
        self.config = config = config or MultimodalConfig()
        self.rna, self.patch = rna, patch
        d_rna, d_patch = rna.config.dim, patch.config.embed
        self.rna_projection = nn.Linear(d_rna, config.projection)
        self.patch_projection = nn.Linear(d_patch, config.projection)
        self.joint = JointEncoder(d_rna, d_patch, config.joint_dim, config.joint_depth, config.joint_heads,
                                  config.joint_mlp_ratio, config.dropout)
        self.matching_head = nn.Linear(config.joint_dim, 2)
        self.decoders = nn.ModuleList(nn.Linear(config.joint_dim, n) for n in rna.config.token_sizes)
        self._freeze()

    def _freeze(self) -> None:
        for frozen, encoder in ((self.config.freeze_rna, self.rna), (self.config.freeze_patch, self.patch)):
            if frozen:
                encoder.requires_grad_(False)
                encoder.eval()

    def train(self, mode: bool = True) -> MultimodalModel:
        """As :meth:`nn.Module.train`, but frozen encoders stay in eval mode."""
        super().train(mode)
        self._freeze()
        return self

    def load_encoders(self, rna_state: Mapping[str, Tensor] | None = None,
                      patch_state: Mapping[str, Tensor] | None = None) -> None:
        """Load pretrained encoder states (strict); pass state dicts read safely (safetensors)."""
        if rna_state is not None:
            self.rna.load_state_dict(rna_state)
        if patch_state is not None:
            self.patch.load_state_dict(patch_state)

    def encode_rna(self, expression: Tensor) -> tuple[Tensor, Tensor]:
        """CLS ``(B, d_rna)`` and the sequence ``[CLS, tokens]`` ``(B, T + 1, d_rna)`` of the RNA encoder."""
        cls, tokens = self.rna(expression)
        return cls, torch.cat([cls[:, None], tokens], dim=1)

    def encode_patches(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """CLS ``(B, embed)`` and the sequence ``[CLS, tokens]`` ``(B, P + 1, embed)`` of the patch encoder."""
        cls, tokens = self.patch(images)
        return cls, torch.cat([cls[:, None], tokens], dim=1)

    def embed_rna(self, expression: Tensor) -> Tensor:
        """L2-normalised RNA projections ``u`` (eq. 9). Shapes: (N, G) -> (N, projection)."""
        return F.normalize(self.rna_projection(self.rna(expression)[0]), dim=1)

    def embed_patches(self, images: Tensor) -> Tensor:
        """L2-normalised patch projections ``z_WSI`` (eq. 9). Shapes: (M, 3, H, W) -> (M, projection)."""
        return F.normalize(self.patch_projection(self.patch(images)[0]), dim=1)

    def similarity(self, images: Tensor, expression: Tensor) -> Tensor:
        """Cosine similarity of every patch to every RNA sample (eq. 9; retrieval = arg-max over a row).

        Shapes:
            images: (M, 3, H, W), expression: (N, G) -> (M, N)
        """
        return self.embed_patches(images) @ self.embed_rna(expression).T

    def match_scores(self, images: Tensor, expression: Tensor) -> Tensor:
        """Matching-head probability of "same lineage" for every (patch, RNA) pair; runs ``M * N`` joint passes,
        so call it on chunks of patches.

        Shapes:
            images: (M, 3, H, W), expression: (N, G) -> (M, N)
        """
        _, rna_seq = self.encode_rna(expression)
        _, patch_seq = self.encode_patches(images)
        m, n = len(patch_seq), len(rna_seq)
        patch_index = torch.arange(m, device=patch_seq.device).repeat_interleave(n)
        rna_index = torch.arange(n, device=patch_seq.device).repeat(m)
        logits = self.matching_head(self.joint(rna_seq[rna_index], patch_seq[patch_index])[:, 0])
        return logits.softmax(dim=1)[:, 1].reshape(m, n)

    def loss(self, expression: Tensor, rna_ids: Tensor, images: Tensor, patch_ids: Tensor,
             generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, float]]:
        """The weighted sum of the switched-on losses, and each one's unweighted value.

        Args:
            expression: the batch's RNA samples; rna_ids: their lineage ids.
            images: the batch's patches in [0, 1]; patch_ids: their lineage ids (each must have an RNA row
                when a multimodal loss is on). Only the encoders a switched-on loss needs are run.
            generator: CPU generator for the hard-negative draw and the RNA pretext mask (replayable runs).

        Shapes:
            expression: (B_r, G), rna_ids: (B_r,), images: (B_p, 3, H, W), patch_ids: (B_p,) -> (), dict
        """
        device, c, losses = expression.device, self.config, {}
        rna_ids, patch_ids = _ids(rna_ids, len(expression), "rna_ids", device), \
            _ids(patch_ids, len(images), "patch_ids", device)
        if c.contrastive or c.matching or c.decoder or c.patch_triplet:
            patch_cls, patch_seq = self.encode_patches(images)
        if c.contrastive or c.matching or c.decoder:
            positive = positive_rna_rows(patch_ids, rna_ids)
            rna_cls, rna_seq = self.encode_rna(expression)
            z_rna = F.normalize(self.rna_projection(rna_cls), dim=1)
            z_patch = F.normalize(self.patch_projection(patch_cls), dim=1)
        if c.contrastive:
            losses["contrastive"] = itc_loss(z_patch, z_rna, patch_ids, rna_ids, c.temperature)
        if c.matching or c.decoder:
            logits = z_patch.detach() @ z_rna.detach().T / c.temperature
            losses.update(self._joint_losses(expression, rna_ids, patch_ids, positive, rna_seq, patch_seq, logits,
                                             generator))
        if c.rna_pretext:
            mask = self.rna.sample_mask(len(expression), generator, device)
            reconstruction, masked_cls = self.rna.reconstruction_loss(expression, mask)
            losses["rna_pretext"] = reconstruction + lineage_infonce(self.rna.project(masked_cls), rna_ids,
                                                                     self.rna.config.tau)
        if c.patch_triplet:
            losses["patch_triplet"] = triplet_hardest(self.patch.project(patch_cls), patch_ids, c.triplet_margin,
                                                      c.triplet_metric)
        total = sum(getattr(c, f"{name}_weight") * value for name, value in losses.items())
        return total, {name: float(value.detach()) for name, value in losses.items()}

    def _joint_losses(self, expression, rna_ids, patch_ids, positive, rna_seq, patch_seq, logits,
                      generator) -> dict[str, Tensor]:
        """ITM on positives + mined negatives and the RNA decoder on positives (one joint pass)."""
        b_p, c = len(patch_seq), self.config
        rna_index, patch_index = positive, torch.arange(b_p, device=positive.device)
        if c.matching:
            neg_rna, valid_p = hard_negatives(logits, patch_ids, rna_ids, c.negatives, generator)
            neg_patch, valid_r = hard_negatives(logits.T, rna_ids, patch_ids, c.negatives, generator)
            rows_r = torch.arange(len(rna_seq), device=positive.device)
            rna_index = torch.cat([rna_index, neg_rna[valid_p], rows_r[valid_r]])
            patch_index = torch.cat([patch_index, patch_index[valid_p], neg_patch[valid_r]])
        joint = self.joint(rna_seq[rna_index], patch_seq[patch_index])
        out = {}
        if c.matching:
            labels = (torch.arange(len(joint), device=joint.device) < b_p).long()
            out["matching"] = F.cross_entropy(self.matching_head(joint[:, 0]), labels)
        if c.decoder:
            states = joint[:b_p, 1:]
            prediction = torch.cat([dec(states[:, k]) for k, dec in enumerate(self.decoders)], dim=1)
            target = torch.cat(self.rna.gather(expression[positive]), dim=1)
            out["decoder"] = F.mse_loss(prediction, target)
        return out


def _ids(ids: Tensor, n: int, name: str, device: torch.device) -> Tensor:
    if not isinstance(ids, Tensor) or ids.is_floating_point() or tuple(ids.shape) != (n,):
        got = f"{ids.dtype} {tuple(ids.shape)}" if isinstance(ids, Tensor) else type(ids).__name__
        raise ValueError(f"MultimodalModel: {name} must be an integer tensor ({n},), one lineage id per row; "
                         f"got {got!r}. Encode string ids first, e.g. np.unique(ids, return_inverse=True)[1]")
    return ids.to(device)
