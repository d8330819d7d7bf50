"""A small Vision Transformer written in-house (ViT-Tiny by default), with a learned mask token, for ``fof``.

Architecture (Dosovitskiy et al., 2021; the "Tiny" width of Touvron et al., 2021): a ``Conv2d`` with kernel
and stride ``patch`` cuts the image into patches and embeds each one; learned position embeddings are added;
``depth`` pre-norm blocks (``x + Attn(LN(x))``, then ``x + MLP(LN(x))``, GELU, hidden ``mlp_ratio * embed``)
with :func:`torch.nn.functional.scaled_dot_product_attention`, which picks a fused kernel (flash or
memory-efficient on GPU, the flash kernel on CPU) so no full attention matrix is kept for the backward pass;
a final ``LayerNorm`` on every token; and a linear head on the **mean of the patch tokens**. There is no CLS
token: the head reads the average of the tokens, as the ``fof`` author code does (its HuggingFace ViT is
built with ``use_cls_token=False`` and average pooling) and as METHODS.md asks ("global head over
mean-pooled tokens").

Tokens are ordered row by row over the patch grid: token ``r * grid_w + c`` is the patch in row ``r``,
column ``c``.

Masking (:meth:`VisionTransformer.forward`, ``token_mask``): a masked patch's embedding is replaced by the
learned ``mask_token`` **before** the position embedding is added, as in BEiT / SimMIM and the ``fof`` author
code. The masked token thus still carries where it is (mask token + position ``p``) while nothing of the
patch's pixels remains; replacing after the position embedding would also erase the position, and every
masked token would be the same vector wherever it sits.

Other image sizes: the position embeddings are learned for ``image_size`` and resampled bicubically to the
patch grid of each input (e.g. 14 x 14 at 224 px -> 32 x 32 at 512 px); an input of the configured size
uses them unchanged. Both sides of an input must be multiples of ``patch``.

Initialisation as in standard ViTs (timm's default scheme): truncated normal (std 0.02, cut at +-2 as in
timm, so in effect a plain normal) for the position embeddings, the mask token and every ``Linear``
weight; zeros for biases; ones/zeros for ``LayerNorm``. The patch-embedding ``Conv2d`` keeps PyTorch's
default initialisation (as timm's default scheme does).

Parameter count of ViT-Tiny with ``n_classes`` classes, for the 224 px grid of 196 patches::

    patch embedding  3 * 16 * 16 * 192 + 192   = 147,648
    position         196 * 192                 =  37,632
    mask token       192
    12 blocks        12 * 444,864              = 5,338,368   (2 LayerNorms 768, qkv 111,168,
                                                              proj 37,056, fc1 148,224, fc2 147,648)
    final LayerNorm  384
    head             192 * n_classes + n_classes

i.e. 5,717,224 for 1000 classes (timm's ``vit_tiny_patch16_224``: 5,717,416, with a CLS token and its
position instead of the mask token).
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["TransformerBlock", "ViTConfig", "VisionTransformer"]


class ViTConfig(BaseModel):
    """Architecture of :class:`VisionTransformer`; the defaults are ViT-Tiny/16 at 224 px."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_classes: int = Field(ge=1)
    image_size: int = Field(224, ge=1)  # the side the position embeddings are learned for
    patch: int = Field(16, ge=1)
    embed: int = Field(192, ge=1)
    depth: int = Field(12, ge=1)
    heads: int = Field(3, ge=1)
    mlp_ratio: float = Field(4.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)  # after the position embedding, on attention, after proj and MLP
    in_channels: int = Field(3, ge=1)

    @model_validator(mode="after")
    def _check(self) -> ViTConfig:
        if self.embed % self.heads:
            raise ValueError(f"ViTConfig: embed ({self.embed}) must be a multiple of heads ({self.heads}); "
                             "each head takes embed / heads channels (ViT-Tiny: 192 / 3 = 64)")
        if self.image_size % self.patch:
            nearest = self.image_size // self.patch * self.patch or self.patch
            raise ValueError(f"ViTConfig: image_size ({self.image_size}) must be a multiple of patch "
                             f"({self.patch}); e.g. image_size={nearest}")
        return self

    @property
    def grid(self) -> int:
        """Patches per side at ``image_size`` (14 for ViT-Tiny/16 at 224 px)."""
        return self.image_size // self.patch


class _Attention(nn.Module):
    """Multi-head self-attention through ``scaled_dot_product_attention``. Shapes: (B, P, C) -> (B, P, C)."""

    def __init__(self, embed: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(embed, 3 * embed)
        self.proj = nn.Linear(embed, embed)
        self.proj_drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        b, p, c = x.shape
        q, k, v = self.qkv(x).reshape(b, p, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, p, c)))


class TransformerBlock(nn.Module):
    """One pre-norm block: ``x + Attn(LN(x))``, then ``x + MLP(LN(x))``.

    Shapes:
        x: (B, P, C) -> (B, P, C)
    """

    def __init__(self, embed: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        hidden = int(embed * mlp_ratio)
        self.norm1 = nn.LayerNorm(embed, eps=1e-6)
        self.attn = _Attention(embed, heads, dropout)
        self.norm2 = nn.LayerNorm(embed, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(embed, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, embed), nn.Dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """ViT with a mean-pooled head and a learned mask token (see the module docstring).

    Args:
        config: the architecture; ``ViTConfig(n_classes=3)`` is ViT-Tiny/16 for three classes.

    Shapes:
        - images: ``(B, in_channels, H, W)``, ``H`` and ``W`` multiples of ``patch``
        - token_mask: ``(B, P)`` bool with ``P = (H / patch) * (W / patch)``; True = replaced by the mask token
        - output: logits ``(B, n_classes)``; with ``return_tokens_of`` also tokens ``(B, P, embed)``
    """

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.config = config
        c = config.embed
        self.patch_embed = nn.Conv2d(config.in_channels, c, kernel_size=config.patch, stride=config.patch)
        self.pos_embed = nn.Parameter(torch.zeros(1, config.grid * config.grid, c))
        self.mask_token = nn.Parameter(torch.zeros(c))
        self.pos_drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(TransformerBlock(c, config.heads, config.mlp_ratio, config.dropout)
                                    for _ in range(config.depth))
        self.norm = nn.LayerNorm(c, eps=1e-6)
        self.head = nn.Linear(c, config.n_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Standard ViT initialisation (module docstring)."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        """The patch grid ``(rows, columns)`` of a ``height x width`` image.

        Raises:
            ValueError: a side is not a positive multiple of ``patch``; the message proposes a size.
        """
        p = self.config.patch
        if height % p or width % p or height < p or width < p:
            raise ValueError(f"VisionTransformer: image sides must be positive multiples of the patch size {p}; "
                             f"got {height} x {width}. Crop or resize to e.g. {max(p, height // p * p)} x "
                             f"{max(p, width // p * p)} (or pad to {-(-height // p) * p} x {-(-width // p) * p}).")
        return height // p, width // p

    def position_embedding(self, grid_hw: tuple[int, int]) -> Tensor:
        """The position embeddings for a patch grid, resampled bicubically from the configured grid if it differs.

        Shapes:
            grid_hw: ``(h, w)`` -> ``(1, h * w, embed)``
        """
        g = self.config.grid
        if tuple(grid_hw) == (g, g):
            return self.pos_embed
        grid = self.pos_embed.reshape(1, g, g, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=tuple(grid_hw), mode="bicubic", align_corners=False)
        return grid.permute(0, 2, 3, 1).reshape(1, grid_hw[0] * grid_hw[1], -1)

    def embed(self, images: Tensor, token_mask: Tensor | None = None) -> Tensor:
        """The tokens entering the first block: patch embeddings, masked ones replaced, plus positions.

        Shapes:
            images: ``(B, in_channels, H, W)``, token_mask: ``(B, P)`` bool -> ``(B, P, embed)``
        """
        grid_hw = self._check_images(images)
        x = self.patch_embed(images).flatten(2).transpose(1, 2)  # (B, P, C), row-major over the grid
        if token_mask is not None:
            _check_token_mask(token_mask, x.shape[:2])
            x = torch.where(token_mask[..., None], self.mask_token.to(x.dtype), x)
        return self.pos_drop(x + self.position_embedding(grid_hw))

    def features(self, images: Tensor, token_mask: Tensor | None = None) -> Tensor:
        """The pooled embedding (mean of the final-normalised tokens), e.g. for projection heads.

        ``model.head(model.features(x))`` equals ``model(x)``: one pass gives both features and logits.

        Shapes:
            images: ``(B, in_channels, H, W)``, token_mask: ``(B, P)`` bool -> ``(B, embed)``
        """
        return self.encode(images, token_mask)[0]

    def forward(self, images: Tensor, token_mask: Tensor | None = None,
                return_tokens_of: int | None = None) -> Tensor | tuple[Tensor, Tensor]:
        """Logits, and optionally the output tokens of one block (kept in the autograd graph, for Grad-CAM).

        Args:
            images: the batch of images.
            token_mask: True where a patch token is replaced by the mask token; None masks nothing.
            return_tokens_of: index into ``self.blocks`` (negative counts from the end: -2 is the
                second-to-last block, the layer the ``fof`` authors take Grad-CAM on). The tokens are
                the block's output, before the final LayerNorm.

        Returns:
            ``logits`` or, with ``return_tokens_of``, ``(logits, tokens)``.

        Shapes:
            images: ``(B, in_channels, H, W)``, token_mask: ``(B, P)`` bool -> logits ``(B, n_classes)``,
            tokens ``(B, P, embed)``
        """
        pooled, tokens = self.encode(images, token_mask, return_tokens_of)
        logits = self.head(pooled)
        return logits if return_tokens_of is None else (logits, tokens)

    def encode(self, images: Tensor, token_mask: Tensor | None = None,
               return_tokens_of: int | None = None) -> tuple[Tensor, Tensor | None]:
        """The pooled embedding and (with ``return_tokens_of``, as in :meth:`forward`) one block's tokens.

        Shapes:
            images: ``(B, in_channels, H, W)`` -> pooled ``(B, embed)``, tokens ``(B, P, embed)`` or None
        """
        keep = return_tokens_of
        keep_index = None if keep is None else self._block_index(keep)
        x, kept = self.embed(images, token_mask), None
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i == keep_index:
                kept = x
        return self.norm(x).mean(dim=1), kept

    def _block_index(self, index: int) -> int:
        depth = len(self.blocks)
        if isinstance(index, bool) or not isinstance(index, int) or not -depth <= index < depth:
            raise ValueError(f"VisionTransformer: return_tokens_of must be an int block index in "
                             f"[{-depth}, {depth - 1}] (depth {depth}; -2 = second-to-last block); got {index!r}")
        return index % depth

    def _check_images(self, images: Tensor) -> tuple[int, int]:
        if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != self.config.in_channels:
            got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"VisionTransformer: images must be a tensor (B, {self.config.in_channels}, H, W); "
                             f"got {got!r}. For one image (C, H, W) pass image[None].")
        return self.grid_size(images.shape[2], images.shape[3])


def _check_token_mask(token_mask: Tensor, expected: torch.Size) -> None:
    if not isinstance(token_mask, Tensor) or token_mask.dtype != torch.bool:
        got = token_mask.dtype if isinstance(token_mask, Tensor) else type(token_mask).__name__
        raise ValueError(f"VisionTransformer: token_mask must be a bool tensor (True = replace the patch token "
                         f"by the mask token); got {got!r}. From a 0/1 float mask use mask > 0.5.")
    if tuple(token_mask.shape) != tuple(expected):
        raise ValueError(f"VisionTransformer: token_mask must have shape (B, n_patches) = {tuple(expected)} for "
                         f"these images (tokens row by row over the patch grid); got {tuple(token_mask.shape)}")
