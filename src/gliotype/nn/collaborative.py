"""The collaborative network of paper 000: an image learner and a geometric learner side by side."""

from __future__ import annotations

import torch
from torch import nn

from gliotype.nn.cnn3d import ImageLearner
from gliotype.nn.pointgnn import GeometricLearner


class Collaborative(nn.Module):
    """A 3-D CNN on the tumour cube and a point-cloud GNN on the tumour surface, each with its own head.

    The two learners share nothing; they are coupled only by the training loss (the collaborative KL
    between their latents, :func:`gliotype.losses.symmetric_kl`).

    Shapes:
        image: (B, 4, S, S, S), points: (B, P, 3) ->
        (cnn logits (B, n_classes), gnn logits (B, n_classes), cnn latent (B, L), gnn latent (B, L)).
    """

    def __init__(self, image: ImageLearner, geometry: GeometricLearner):
        super().__init__()
        self.image, self.geometry = image, geometry

    def forward(self, image: torch.Tensor, points: torch.Tensor):
        z_u, z_v = self.image.encode(image), self.geometry.encode(points)
        return self.image.head(z_u), self.geometry.head(z_v), z_u, z_v
