"""The network of the simplified ``gliomt`` baseline: a small multimodal transformer over 2-D tumour slices.

GlioMT (Byeon et al., 2025; HiPerfGNN's ref. 7) fuses the four structural MRI sequences in one vision
transformer, each sequence entering as its own modality. Here: each sequence's stack of axial slices (the
slices are the channels) is cut into ``patch`` x ``patch`` patches by a Conv2d of its own (kernel = stride =
``patch``); every token gets a learnt embedding of its modality and of its 2-D position; a CLS token is
prepended; ``depth`` pre-norm :class:`torch.nn.TransformerEncoderLayer` blocks follow; the CLS token goes
through a LayerNorm and a linear classifier.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["GlioMTNet"]


class GlioMTNet(nn.Module):
    """Multimodal ViT: one token sequence per MRI sequence, told apart by learnt modality embeddings.

    Args:
        n_classes: output classes.
        image_size: edge of the square slices (a multiple of ``patch``).
        n_modalities: MRI sequences (4: t1n, t1c, t2w, t2f).
        in_slices: axial slices per sequence (the patch embedding's input channels).
        patch: edge of a square patch, pixels.
        dim: token width.
        depth: transformer layers.
        heads: attention heads (``dim`` must be a multiple).
        dropout: dropout inside the transformer layers.

    Shapes:
        x: (B, n_modalities, in_slices, image_size, image_size) -> logits (B, n_classes);
        :meth:`tokens` gives (B, 1 + n_modalities * (image_size // patch) ** 2, dim), the CLS token first.
    """

    def __init__(self, n_classes: int, image_size: int = 64, n_modalities: int = 4, in_slices: int = 3,
                 patch: int = 8, dim: int = 64, depth: int = 2, heads: int = 4, dropout: float = 0.1):
        super().__init__()
        if image_size % patch:
            raise ValueError(f"image_size ({image_size}) must be a multiple of patch ({patch}); e.g. patch "
                             f"{max(d for d in range(1, patch + 1) if image_size % d == 0)}")
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be a multiple of heads ({heads})")
        self.input_shape = (n_modalities, in_slices, image_size, image_size)
        self.patch_embed = nn.ModuleList(nn.Conv2d(in_slices, dim, patch, stride=patch) for _ in range(n_modalities))
        self.modality = nn.Parameter(torch.zeros(n_modalities, 1, dim))
        self.position = nn.Parameter(torch.zeros(1, (image_size // patch) ** 2, dim))
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        for p in (self.modality, self.position, self.cls):
            nn.init.trunc_normal_(p, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, n_classes)

    def tokens(self, x: Tensor) -> Tensor:
        """The CLS token and every modality's patch tokens, with their embeddings added."""
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"GlioMTNet expects input (B, {', '.join(map(str, self.input_shape))}) = (batch, "
                             f"sequences, slices, H, W); got {tuple(x.shape)}")
        per_modality = [embed(x[:, m]).flatten(2).transpose(1, 2) for m, embed in enumerate(self.patch_embed)]
        patches = (torch.stack(per_modality, 1) + self.modality + self.position).flatten(1, 2)
        return torch.cat([self.cls.expand(len(x), -1, -1), patches], dim=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.norm(self.encoder(self.tokens(x))[:, 0]))
