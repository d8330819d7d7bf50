"""``gliomt``: paper 002's structure-only baseline (GlioMT, its ref. 7), in simplified form.

Input: the ``tumour_image`` cube (t1n, t1c, t2w, t2f z-scored on the brain, masked by the tumour region,
cropped, resampled to ``spacing`` mm and fitted to ``size``^3; region ``whole`` by default). From it,
:func:`slice_window` takes ``slices`` consecutive axial slices (last axis) centred on the slice with the
largest tumour area (centre +- 1 for 3 slices; the window is shifted inwards at the cube's edges). Each
sequence's slice stack is one modality of :class:`gliotype.nn.gliomt.GlioMTNet`.

Simplified against the published GlioMT: no ImageNet-pretrained ViT (trained from scratch), a tiny
transformer (``depth`` 2, ``dim`` 64), three slices around the largest tumour section instead of the
authors' slice selection, no clinical-data tokens (GlioMT also fuses clinical variables) and no data
augmentation.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field, model_validator
from torch import nn

from gliotype.methods.registry import register_method
from gliotype.methods.torch_method import TorchConfig, TorchMethod
from gliotype.nn.gliomt import GlioMTNet


def largest_area_slice(mask: np.ndarray) -> int:
    """Index of the axial slice (last axis) with the most tumour voxels; the first one on ties.

    Shapes:
        mask: (X, Y, Z) -> an index in [0, Z).
    """
    area = np.asarray(mask).reshape(-1, mask.shape[-1]).astype(bool).sum(0)
    if not area.any():
        raise ValueError("the tumour mask is empty: no slice to centre the GlioMT input on")
    return int(np.argmax(area))


def slice_window(mask: np.ndarray, n_slices: int) -> np.ndarray:
    """``n_slices`` consecutive axial indices centred on :func:`largest_area_slice`, kept inside the volume.

    Shapes:
        mask: (X, Y, Z) -> (n_slices,) int.
    """
    depth = mask.shape[-1]
    if not 1 <= n_slices <= depth:
        raise ValueError(f"slices must be between 1 and the cube's depth {depth}; got {n_slices!r}")
    start = min(max(largest_area_slice(mask) - n_slices // 2, 0), depth - n_slices)
    return np.arange(start, start + n_slices)


def tumour_slices(image: np.ndarray, mask: np.ndarray, n_slices: int) -> np.ndarray:
    """Each sequence's axial slices around the largest tumour section, slices first.

    Shapes:
        image: (C, X, Y, Z), mask: (X, Y, Z) -> (C, n_slices, X, Y) float32.
    """
    return np.moveaxis(image[..., slice_window(mask, n_slices)], -1, 1).astype(np.float32)


class GlioMTConfig(TorchConfig):
    region: Literal["whole", "core", "enhancing"] = "whole"
    spacing: float = Field(2.0, gt=0, description="voxel size of the tumour cube, mm")
    size: int = Field(64, ge=8, description="edge of the tumour cube, voxels")
    margin_mm: float = 4.0
    slices: int = Field(3, ge=1, description="axial slices around the largest tumour section")
    patch: int = Field(8, ge=1, description="edge of a square patch, voxels")
    dim: int = Field(64, ge=1, description="token width")
    depth: int = Field(2, ge=1, description="transformer layers")
    heads: int = Field(4, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)

    @model_validator(mode="after")
    def _fits(self):
        if self.size % self.patch:
            raise ValueError(f"size ({self.size}) must be a multiple of patch ({self.patch})")
        if self.dim % self.heads:
            raise ValueError(f"dim ({self.dim}) must be a multiple of heads ({self.heads})")
        if self.slices > self.size:
            raise ValueError(f"slices ({self.slices}) cannot exceed the cube's size ({self.size})")
        return self


@register_method("gliomt", config=GlioMTConfig, modalities=("mri", "seg"), description=(
                 "Multimodal transformer over tumour slices of the 4 sequences (paper 002 baseline, simplified)"))
class GlioMT(TorchMethod):
    """Small ViT whose tokens are patches of each structural sequence's tumour slices (paper 002's GlioMT baseline)."""

    needs = ("mri", "seg")
    stages = ("tumour_image",)

    def build(self, n_classes: int) -> nn.Module:
        cfg = self.config
        return GlioMTNet(n_classes, image_size=cfg.size, in_slices=cfg.slices, patch=cfg.patch, dim=cfg.dim,
                         depth=cfg.depth, heads=cfg.heads, dropout=cfg.dropout)

    def item(self, arrays):
        cube = arrays["tumour_image"]
        return {"slices": torch.from_numpy(tumour_slices(cube["image"], cube["mask"], self.config.slices))}

    def logits(self, model, batch):
        return model(batch["slices"])
