"""The RNA-seq encoder of paper 003 (section 2.2): gene tokens, a transformer with a CLS token, masking.

Each gene token (:class:`gliotype.rna.tokens.GeneTokens`) is a sub-vector of the expression profile; its
own embedder (author code: ``Linear -> ReLU -> BatchNorm1d -> Dropout(0.5)``) maps it to ``dim``. A learned
CLS token is put first, a learned position embedding is added to all ``T + 1`` positions, and a
``nn.TransformerEncoder`` (``batch_first``, pre-norm: ``norm_first=True`` with a final LayerNorm, as in
ViT/MAE; ``norm_first=False`` gives PyTorch's post-norm layer) mixes them. Outputs: the CLS state
``(B, dim)`` and the token states ``(B, T, dim)`` (CLS not included); :meth:`RNAEncoder.project` maps the
CLS state to an L2-normalised ``(B, projection)`` vector for the lineage InfoNCE
(:func:`gliotype.losses.lineage.lineage_infonce`, eqs. 3-5).

Masked reconstruction (eq. 2), ``masking="token"`` (the paper): one token per sample, drawn by
:func:`sample_token_mask`, has its embedding replaced by a learned mask embedding before the transformer.
Its output state therefore carries nothing of its own genes -- it is computed by attention from the CLS
token and the remaining tokens, which is what the paper's decoder uses ("the decoder uses the cls token and
the remaining tokens to reconstruct it"). A per-token linear decoder (``dim -> genes of token k``) reads
the masked position's state and predicts that token's genes. The loss is the mean squared error over the
masked token's genes, averaged over the batch. Eq. 2 writes ``1/N sum_i ||x_i - x^_i||^2`` over the whole
vector; only the masked token's genes carry a reconstruction task (the others are inputs), and the mean over
genes rather than the sum keeps tokens of 1500 and 3000 genes on one scale.

``masking="values"`` (the author code): a fixed fraction (0.3) of each sample's token genes, drawn by
:func:`sample_value_mask`, is set to 0 before the embedders; every token's decoder reads its own output
state and the loss is the mean squared error over the zeroed values only.

Sampling is separate from applying (draw with a ``torch.Generator`` for a replayable run, then pass the
mask to :meth:`RNAEncoder.reconstruction_loss`). Everything follows the input's device.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn

__all__ = ["RNAEncoder", "RNAEncoderConfig", "sample_token_mask", "sample_value_mask"]


class RNAEncoderConfig(BaseModel):
    """Architecture and masking of :class:`RNAEncoder`; defaults are the author code's."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    token_sizes: tuple[int, ...] = Field(min_length=1)  # genes per token, in token order
    dim: int = Field(128, ge=1)
    heads: int = Field(8, ge=1)
    depth: int = Field(1, ge=1)
    mlp_ratio: float = Field(4.0, gt=0)  # transformer feed-forward width = mlp_ratio * dim
    embed_dropout: float = Field(0.5, ge=0, lt=1)  # in each token embedder
    dropout: float = Field(0.1, ge=0, lt=1)  # inside the transformer layers
    norm_first: bool = True
    projection: int = Field(64, ge=1)
    masking: Literal["token", "values"] = "token"
    mask_fraction: float = Field(0.3, gt=0, lt=1)  # for masking="values"
    tau: float = Field(0.005, gt=0)  # lineage InfoNCE temperature

    @model_validator(mode="after")
    def _check(self) -> RNAEncoderConfig:
        if self.dim % self.heads:
            raise ValueError(f"RNAEncoderConfig: dim ({self.dim}) must be a multiple of heads ({self.heads}); "
                             "e.g. dim=128, heads=8")
        if min(self.token_sizes) < 1:
            raise ValueError(f"RNAEncoderConfig: every token needs at least one gene; token_sizes="
                             f"{self.token_sizes!r}")
        return self


def sample_token_mask(batch: int, n_tokens: int, generator: torch.Generator | None = None,
                      device: torch.device | str | None = None) -> Tensor:
    """The token to mask in each sample, uniform over ``0 .. n_tokens - 1``; drawn on the CPU.

    Shapes:
        -> (batch,) int64
    """
    return torch.randint(n_tokens, (batch,), generator=generator).to(device)


def sample_value_mask(batch: int, n_genes: int, fraction: float = 0.3, generator: torch.Generator | None = None,
                      device: torch.device | str | None = None) -> Tensor:
    """Exactly ``round(fraction * n_genes)`` (at least 1) genes to zero in each sample; drawn on the CPU.

    The columns are the token genes in token order (the concatenation of :meth:`RNAEncoder.gather`).

    Shapes:
        -> (batch, n_genes) bool
    """
    k = max(1, round(fraction * n_genes))
    rank = torch.rand(batch, n_genes, generator=generator).argsort(dim=1).argsort(dim=1)
    return (rank < k).to(device)


class RNAEncoder(nn.Module):
    """Gene-token transformer encoder with masked reconstruction (module docstring).

    Args:
        config: architecture; ``config.token_sizes`` must match ``index``.
        index: the columns of each token's genes in the expression table, e.g. ``tokens.index(genes)`` of
            :class:`~gliotype.rna.tokens.GeneTokens`; kept as buffers (they move with ``.to(device)``).

    Shapes:
        - expression ``x``: ``(B, G)``, G the table's genes (columns in no token are ignored)
        - :meth:`forward` -> CLS ``(B, dim)``, token states ``(B, T, dim)``
        - :meth:`project` ``(B, dim)`` -> ``(B, projection)``, unit norm
    """

    def __init__(self, config: RNAEncoderConfig, index: Sequence[np.ndarray | Tensor]):
        super().__init__()
        sizes = tuple(len(i) for i in index)
        if sizes != tuple(config.token_sizes):
            raise ValueError(f"RNAEncoder: the token index arrays have sizes {sizes!r} but config.token_sizes is "
                             f"{tuple(config.token_sizes)!r}; build the config from the same tokens "
                             "(token_sizes=tokens.sizes)")
        self.config = config
        self.n_tokens = len(sizes)
        for k, columns in enumerate(index):
            self.register_buffer(f"index_{k}", torch.as_tensor(np.asarray(columns), dtype=torch.long))
        d = config.dim
        self.embedders = nn.ModuleList(
            nn.Sequential(nn.Linear(n, d), nn.ReLU(), nn.BatchNorm1d(d), nn.Dropout(config.embed_dropout))
            for n in sizes)
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.position = nn.Parameter(torch.zeros(1, self.n_tokens + 1, d))
        self.mask_embedding = nn.Parameter(torch.zeros(d))
        for p in (self.cls, self.position, self.mask_embedding):
            nn.init.trunc_normal_(p, std=0.02)
        layer = nn.TransformerEncoderLayer(d, config.heads, int(config.mlp_ratio * d), config.dropout,
                                           batch_first=True, norm_first=config.norm_first)
        self.transformer = nn.TransformerEncoder(layer, config.depth, enable_nested_tensor=False,
                                                 norm=nn.LayerNorm(d) if config.norm_first else None)
        self.projection = nn.Linear(d, config.projection)
        self.decoders = nn.ModuleList(nn.Linear(d, n) for n in sizes)

    @classmethod
    def from_tokens(cls, tokens, genes_in_table: Sequence[str], **config) -> RNAEncoder:
        """An encoder for :class:`~gliotype.rna.tokens.GeneTokens` over a table with ``genes_in_table``."""
        return cls(RNAEncoderConfig(token_sizes=tokens.sizes, **config), tokens.index(genes_in_table))

    def gather(self, x: Tensor) -> list[Tensor]:
        """Each token's genes. Shapes: ``(B, G)`` -> one ``(B, token_sizes[k])`` per token."""
        if x.dim() != 2:
            raise ValueError(f"RNAEncoder: expression must be (B, G) samples x genes; got shape {tuple(x.shape)!r}")
        return [x[:, getattr(self, f"index_{k}")] for k in range(self.n_tokens)]

    def embed(self, x: Tensor, value_mask: Tensor | None = None) -> Tensor:
        """Token embeddings before the transformer; ``value_mask`` (True = zero) over the token genes.

        Shapes:
            x: (B, G), value_mask: (B, sum(token_sizes)) -> (B, T, dim)
        """
        parts = self.gather(x)
        if value_mask is not None:
            n = sum(self.config.token_sizes)
            if value_mask.dtype != torch.bool or tuple(value_mask.shape) != (len(x), n):
                raise ValueError(f"RNAEncoder: value_mask must be bool ({len(x)}, {n}) over the token genes in "
                                 f"token order (sample_value_mask); got {value_mask.dtype} "
                                 f"{tuple(value_mask.shape)!r}")
            parts = [p.masked_fill(m, 0.0) for p, m in zip(parts, value_mask.split(self.config.token_sizes, 1))]
        return torch.stack([embed(p) for embed, p in zip(self.embedders, parts)], dim=1)

    def forward(self, x: Tensor, token_mask: Tensor | None = None,
                value_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """CLS and token states; ``token_mask`` (the masked token of each sample) swaps in the mask embedding.

        Shapes:
            x: (B, G), token_mask: (B,) int64, value_mask: (B, sum(token_sizes)) bool
            -> cls (B, dim), tokens (B, T, dim)
        """
        h = self.embed(x, value_mask)
        if token_mask is not None:
            hit = nn.functional.one_hot(token_mask.to(x.device), self.n_tokens).bool()[..., None]  # (B, T, 1)
            h = torch.where(hit, self.mask_embedding.to(h.dtype), h)
        h = torch.cat([self.cls.expand(len(h), -1, -1), h], dim=1) + self.position
        h = self.transformer(h)
        return h[:, 0], h[:, 1:]

    def project(self, cls: Tensor) -> Tensor:
        """The L2-normalised projection for the InfoNCE. Shapes: (B, dim) -> (B, projection)."""
        return nn.functional.normalize(self.projection(cls), dim=1)

    def reconstruction_loss(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Eq. 2 for a drawn ``mask``: a token mask ``(B,)`` or a value mask ``(B, sum(token_sizes))``.

        Returns:
            The loss (scalar) and the CLS state of the masked pass ``(B, dim)`` (for the InfoNCE).
        """
        if mask.dim() == 1:
            return self._token_loss(x, mask)
        return self._value_loss(x, mask)

    def sample_mask(self, batch: int, generator: torch.Generator | None = None,
                    device: torch.device | str | None = None) -> Tensor:
        """A mask of ``config.masking``'s kind for :meth:`reconstruction_loss`."""
        if self.config.masking == "token":
            return sample_token_mask(batch, self.n_tokens, generator, device)
        return sample_value_mask(batch, sum(self.config.token_sizes), self.config.mask_fraction, generator, device)

    def _token_loss(self, x: Tensor, token_mask: Tensor) -> tuple[Tensor, Tensor]:
        token_mask = token_mask.to(x.device)
        cls, states = self(x, token_mask=token_mask)
        total = x.new_zeros(())
        for k, target in enumerate(self.gather(x)):
            hit = token_mask == k
            if bool(hit.any()):
                error = self.decoders[k](states[hit, k]) - target[hit]
                total = total + error.pow(2).mean(dim=1).sum()
        return total / len(x), cls

    def _value_loss(self, x: Tensor, value_mask: Tensor) -> tuple[Tensor, Tensor]:
        value_mask = value_mask.to(x.device)
        cls, states = self(x, value_mask=value_mask)
        prediction = torch.cat([dec(states[:, k]) for k, dec in enumerate(self.decoders)], dim=1)
        error = (prediction - torch.cat(self.gather(x), dim=1)).pow(2)
        return error[value_mask].mean(), cls
