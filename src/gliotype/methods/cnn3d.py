"""``cnn3d``: the image learner of paper 000 alone (the collaborative model's CNN ablation)."""

from __future__ import annotations

from pydantic import Field
from torch import nn

from gliotype.methods.monai3d import Image3DConfig, Image3DMethod
from gliotype.methods.registry import register_method
from gliotype.methods.rotation import RotatingMethod, RotationFields
from gliotype.nn.cnn3d import ImageLearner


class CNN3DConfig(Image3DConfig, RotationFields):
    latent: int = Field(128, ge=2, description="latent size before the last FC layer (paper: 128)")
    dropout: float = Field(0.3, ge=0, lt=1)


@register_method("cnn3d", config=CNN3DConfig, modalities=("mri", "seg"))
class CNN3D(RotatingMethod, Image3DMethod):
    """Four conv+BN+max-pool blocks and three FC layers on the tumour cube (paper 000's image learner),
    with the same minority-class rotation as ``colearn``."""

    def build(self, n_classes: int) -> nn.Module:
        return ImageLearner(4, n_classes, latent=self.config.latent, dropout=self.config.dropout)
