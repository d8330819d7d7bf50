"""The WSI patch encoder of paper 003 (section 2.3): a ViT over 16 x 16 sub-patches, its CLS state, a projection.

A tumour-cell patch (256 x 256 RGB) is cut into 16 x 16 sub-patches; the in-house
:class:`~gliotype.nn.vit.VisionTransformer` embeds them (``Conv2d`` patch embedding plus learned positions,
resampled for other sizes) and its pre-norm blocks and final ``LayerNorm`` mix them. The ViT itself has no
CLS token (it mean-pools for ``fof``); the paper reads "the cls token", so this module prepends a learned
CLS token with its own learned position embedding to the patch tokens and runs the ViT's blocks over the
``1 + P`` tokens. Outputs: the CLS state ``(B, embed)`` and the patch-token states ``(B, P, embed)``
(after the final ``LayerNorm``, the sequence the cross-attention encoder of
:mod:`gliotype.nn.image_rna` attends to); :meth:`PatchEncoder.project` maps the CLS state to an
L2-normalised ``(B, projection)`` vector for the triplet loss (:func:`gliotype.losses.triplet.triplet_hardest`,
eq. 6). The ViT's classification head is unused and replaced by ``nn.Identity`` (timm's
``reset_classifier(0)``) and its mask token, unused too, has ``requires_grad=False``, so every trainable
parameter gets a gradient (DistributedDataParallel needs no ``find_unused_parameters``).

Input: RGB float images **in [0, 1]** (e.g. ``uint8 / 255``); the encoder normalises them by
``config.mean`` / ``config.std`` (ImageNet's by default, as DeiT-initialised models expect). Both sides
must be multiples of ``patch``.

Sizes: the defaults (embed 192, depth 4, heads 3: a 4-block ViT-Tiny width, ~1.9 M parameters) are small
enough for CPU runs. The author code uses ViT-B/16 (embed 768, depth 12, heads 12, ``qkv_bias``) at 256 px,
initialised from DeiT-base (ImageNet), projection 256, trained with the triplet loss (margin 1e-4, AdamW
1e-4, weight decay 0.02, batch 64, 25 epochs); ``PatchEncoderConfig(embed=768, depth=12, heads=12,
projection=256)`` is that architecture (without the DeiT weights, which gliotype does not download).
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn
from torch.nn import functional as F

from gliotype.nn.vit import ViTConfig, VisionTransformer

__all__ = ["PatchEncoder", "PatchEncoderConfig"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class PatchEncoderConfig(BaseModel):
    """Architecture of :class:`PatchEncoder` (module docstring: defaults vs the author's ViT-B/16)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    image_size: int = Field(256, ge=1)  # the side the position embeddings are learned for
    patch: int = Field(16, ge=1)  # the paper's 16 x 16 sub-patches
    embed: int = Field(192, ge=1)
    depth: int = Field(4, ge=1)
    heads: int = Field(3, ge=1)
    mlp_ratio: float = Field(4.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    projection: int = Field(64, ge=1)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def vit(self) -> ViTConfig:
        """The :class:`~gliotype.nn.vit.ViTConfig` underneath (its checks on sizes apply)."""
        return ViTConfig(n_classes=1, image_size=self.image_size, patch=self.patch, embed=self.embed,
                         depth=self.depth, heads=self.heads, mlp_ratio=self.mlp_ratio, dropout=self.dropout)


class PatchEncoder(nn.Module):
    """ViT with a CLS token over a patch's sub-patches, and a projection head (module docstring).

    Args:
        config: the architecture; ``PatchEncoderConfig()`` is a small 256 px / 16 px encoder.

    Shapes:
        - images: ``(B, 3, H, W)`` float in [0, 1], ``H`` and ``W`` multiples of ``patch``
        - :meth:`forward` -> cls ``(B, embed)``, tokens ``(B, P, embed)`` with ``P = (H / patch) * (W / patch)``
        - :meth:`project` ``(B, embed)`` -> ``(B, projection)``, unit norm
    """

    def __init__(self, config: PatchEncoderConfig | None = None):
        super().__init__()
        self.config = config = config or PatchEncoderConfig()
        self.vit = VisionTransformer(config.vit())
        self.vit.head = nn.Identity()  # unused: the CLS state is read instead
        self.vit.mask_token.requires_grad_(False)  # unused: no masked-image modelling here
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.embed))
        self.cls_position = nn.Parameter(torch.zeros(1, 1, config.embed))
        for p in (self.cls_token, self.cls_position):
            nn.init.trunc_normal_(p, std=0.02)
        self.projection = nn.Linear(config.embed, config.projection)
        nn.init.trunc_normal_(self.projection.weight, std=0.02)
        nn.init.zeros_(self.projection.bias)
        self.register_buffer("mean", torch.tensor(config.mean).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.std).reshape(1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """CLS and patch-token states after the final ``LayerNorm``.

        Shapes:
            images: (B, 3, H, W) float in [0, 1] -> cls (B, embed), tokens (B, P, embed)
        """
        _check_images(images)
        x = self.vit.embed((images - self.mean) / self.std)  # (B, P, C), positions added; checks the shape
        cls = (self.cls_token + self.cls_position).to(x.dtype).expand(len(x), -1, -1)
        x = torch.cat([cls, x], dim=1)
        for block in self.vit.blocks:
            x = block(x)
        x = self.vit.norm(x)
        return x[:, 0], x[:, 1:]

    def project(self, cls: Tensor) -> Tensor:
        """The L2-normalised projection for the triplet loss. Shapes: (B, embed) -> (B, projection)."""
        return F.normalize(self.projection(cls), dim=1)


def _check_images(images: Tensor) -> None:
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 3:
        got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"PatchEncoder: images must be an RGB tensor (B, 3, H, W); got {got!r}. "
                         "For one patch (3, H, W) pass patch[None]; for (B, H, W, 3) use .permute(0, 3, 1, 2)")
    if not images.is_floating_point():
        raise ValueError(f"PatchEncoder: images must be float in [0, 1]; got dtype {images.dtype}. "
                         "From uint8 pixels use images.float() / 255")
