"""Pathology + genomics fusion networks: the multimodal baselines of ``fof`` (paper 004, Table II).

Both read an image through a :class:`~gliotype.nn.vit.VisionTransformer` backbone (its pooled 192-d
feature) and a genomic vector (one-hot biomarker statuses, :func:`gliotype.methods.histology.genomic_vector`)
through a small self-normalising MLP (SELU + alpha dropout, as Pathomic Fusion's genomic SNN), and need
both at inference:

* :class:`ConcatFusion` (SCNN-like, Mobadersany et al. 2018): ``[h_path, h_gen]`` -> MLP -> logits;
* :class:`KroneckerFusion` (Pathomic Fusion, Chen et al. 2020): each modality's feature is gated by an
  attention computed from both (``o_m = sigmoid(W_z [h_path, h_gen]) * ReLU(W_h h_m)``), a 1 is appended
  to each, and the flattened outer product ``[o_path, 1] (x) [o_gen, 1]`` (unimodal and bimodal terms)
  goes through an MLP.

Shapes (both):
    images: (B, 3, H, W) float, genomics: (B, G) -> logits (B, n_classes)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gliotype.nn.vit import ViTConfig, VisionTransformer

__all__ = ["ConcatFusion", "GenomicEncoder", "KroneckerFusion"]


class GenomicEncoder(nn.Module):
    """SNN: ``Linear - SELU - AlphaDropout`` twice. Shapes: (B, G) -> (B, out)."""

    def __init__(self, genomic_dim: int, hidden: int = 64, out: int = 32, dropout: float = 0.25):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(genomic_dim, hidden), nn.SELU(), nn.AlphaDropout(dropout),
                                 nn.Linear(hidden, out), nn.SELU(), nn.AlphaDropout(dropout))

    def forward(self, genomics: Tensor) -> Tensor:
        return self.net(genomics)


class _Fusion(nn.Module):
    def __init__(self, vit: ViTConfig, genomic_dim: int, width: int):
        super().__init__()
        self.n_classes = vit.n_classes
        self.vit = VisionTransformer(vit)
        self.path = nn.Sequential(nn.Linear(vit.embed, width), nn.ReLU())
        self.genomic = GenomicEncoder(genomic_dim, out=width)

    def features(self, images: Tensor, genomics: Tensor) -> tuple[Tensor, Tensor]:
        return self.path(self.vit.features(images)), self.genomic(genomics)


class ConcatFusion(_Fusion):
    """Concatenation fusion (module docstring)."""

    def __init__(self, vit: ViTConfig, genomic_dim: int, width: int = 32, hidden: int = 64, dropout: float = 0.25):
        super().__init__(vit, genomic_dim, width)
        self.classifier = nn.Sequential(nn.Linear(2 * width, hidden), nn.ReLU(), nn.Dropout(dropout),
                                        nn.Linear(hidden, vit.n_classes))

    def forward(self, images: Tensor, genomics: Tensor) -> Tensor:
        return self.classifier(torch.cat(self.features(images, genomics), dim=1))


class KroneckerFusion(_Fusion):
    """Gated Kronecker-product fusion (module docstring)."""

    def __init__(self, vit: ViTConfig, genomic_dim: int, width: int = 32, hidden: int = 64, dropout: float = 0.25):
        super().__init__(vit, genomic_dim, width)
        self.gate_path, self.gate_gen = nn.Linear(2 * width, width), nn.Linear(2 * width, width)
        self.h_path, self.h_gen = nn.Linear(width, width), nn.Linear(width, width)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear((width + 1) ** 2, hidden), nn.ReLU(),
                                        nn.Dropout(dropout), nn.Linear(hidden, vit.n_classes))

    def forward(self, images: Tensor, genomics: Tensor) -> Tensor:
        path, gen = self.features(images, genomics)
        both = torch.cat([path, gen], dim=1)
        o_path = torch.sigmoid(self.gate_path(both)) * torch.relu(self.h_path(path))
        o_gen = torch.sigmoid(self.gate_gen(both)) * torch.relu(self.h_gen(gen))
        one = o_path.new_ones(len(o_path), 1)
        outer = torch.cat([o_path, one], 1)[:, :, None] * torch.cat([o_gen, one], 1)[:, None, :]
        return self.classifier(outer.flatten(1))
