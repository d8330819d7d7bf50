"""``densenet3d`` and ``resnet3d``: MONAI's 3-D DenseNet121 and ResNet34 on the tumour image.

The baselines of papers 000 and 001: four input channels (T1, T1c, T2, FLAIR masked by the tumour
region), cropped and resampled by the ``tumour_image`` stage.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from monai.networks.nets import DenseNet121, resnet34
from pydantic import Field
from torch import nn

from gliotype.methods.registry import register_method
from gliotype.methods.torch_method import TorchConfig, TorchMethod


class Image3DConfig(TorchConfig):
    region: Literal["whole", "core", "enhancing"] = "core"
    spacing: float = Field(2.0, gt=0, description="voxel size of the tumour cube, mm")
    size: int = Field(64, ge=8, description="edge of the tumour cube, voxels (paper: 120 at 2 mm)")
    margin_mm: float = 4.0
    dropout: float = Field(0.2, ge=0, lt=1)


class Image3DMethod(TorchMethod):
    needs = ("mri", "seg")
    stages = ("tumour_image",)
    lazy_inputs = True  # the cubes are large: built from the cache one patient at a time

    def item(self, arrays):
        return {"image": torch.from_numpy(arrays["tumour_image"]["image"].astype(np.float32))}

    def image_learner(self, model: nn.Module) -> nn.Module:
        return model


@register_method("densenet3d", config=Image3DConfig, modalities=("mri", "seg"))
class DenseNet3D(Image3DMethod):
    """MONAI DenseNet121, 3-D, four MRI channels on the tumour cube (papers 000/001 baseline)."""

    def build(self, n_classes: int) -> nn.Module:
        return DenseNet121(spatial_dims=3, in_channels=4, out_channels=n_classes, dropout_prob=self.config.dropout)


@register_method("resnet3d", config=Image3DConfig, modalities=("mri", "seg"))
class ResNet3D(Image3DMethod):
    """MONAI ResNet34, 3-D, four MRI channels on the tumour cube (paper 001 baseline)."""

    def build(self, n_classes: int) -> nn.Module:
        return resnet34(spatial_dims=3, n_input_channels=4, num_classes=n_classes)
