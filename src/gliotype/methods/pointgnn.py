"""``pointgnn``: the geometric learner of paper 000 alone, on the tumour surface point cloud.

Input: the ``tumour_geometry`` stage (marching-cubes surface of the tumour region, 512 points by
farthest-point sampling, centred and scaled into [-1, 1]). Network: :class:`gliotype.nn.pointgnn.GeometricLearner`
(four radius-graph + NNConv + FPS stages, three FC layers, 128-d latent). Training: class-weighted
cross-entropy, minority-class rotation (:mod:`gliotype.methods.rotation`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from gliotype.methods.registry import register_method
from gliotype.methods.rotation import RotatingMethod, RotationFields
from gliotype.methods.torch_method import TorchConfig
from gliotype.nn.pointgnn import GeometricLearner


class PointFields(RotationFields):
    region: Literal["whole", "core", "enhancing"] = "core"
    n_points: int = Field(512, ge=16, description="surface points per tumour (paper: 512)")
    sampling: Literal["vertices", "area"] = "vertices"
    max_neighbors: int = Field(32, ge=1, description="largest neighbourhood of the radius graphs")
    latent: int = Field(128, ge=2, description="latent size before the last FC layer (paper: 128)")
    dropout: float = Field(0.3, ge=0, lt=1)


GNN_PATIENCE = 20
"""Early-stopping patience of the methods with a geometric learner. Its node BatchNorms' running
statistics trail the activations for the first 40-50 steps, so the validation loss of the first
epochs is no guide; with a patience of 10 the 60-patient geometry cohort stopped at epoch 11 with the
weights of epoch 1 (AUC 0.78 instead of 0.99)."""


class PointGNNConfig(TorchConfig, PointFields):
    batch_size: int = Field(8, ge=1)
    patience: int = Field(GNN_PATIENCE, ge=1, description="epochs without validation improvement before stopping")


def geometric_learner(config: PointFields, n_classes: int) -> GeometricLearner:
    return GeometricLearner(3, n_classes, max_neighbors=config.max_neighbors, latent=config.latent,
                            dropout=config.dropout)


def points_item(arrays) -> dict[str, torch.Tensor]:
    return {"points": torch.from_numpy(arrays["tumour_geometry"]["points"].astype(np.float32))}


@register_method("pointgnn", config=PointGNNConfig, modalities=("seg",))
class PointGNN(RotatingMethod):
    """Geometric learner alone: radius graphs + NNConv + FPS on the tumour surface points (paper 000 ablation)."""

    needs = ("seg",)
    stages = ("tumour_geometry",)

    def build(self, n_classes: int) -> nn.Module:
        return geometric_learner(self.config, n_classes)

    def item(self, arrays):
        return points_item(arrays)

    def logits(self, model, batch):
        return model(batch["points"])

    def point_learner(self, model: nn.Module) -> GeometricLearner:
        return model
