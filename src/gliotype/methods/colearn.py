"""``colearn``: collaborative learning of the tumour image (3-D CNN) and tumour geometry (point-cloud GNN), paper 000.

Loss (paper eqs. 1-2): the cross-entropy of each learner's head (binary cross-entropy for a binary
target; class-weighted as every method here) plus ``kl_weight`` times the symmetric KL divergence
between the two 128-d latents, each turned into a distribution by a softmax at ``kl_temperature``
(the paper writes the KL on the raw latents; a softmax is our reading, METHODS.md's default).
Prediction: the mean of the two heads' probabilities; each head's own probabilities are saved too
(``head_predictions.csv``, heads ``cnn`` and ``gnn``; metrics per head in ``metrics.json``).
Augmentation: minority-class rotation, one rotation applied to the cube and to the points alike.

Choices where the paper is silent (also in the docs): conv widths 16-32-64-128 and adaptive pooling
(:mod:`gliotype.nn.cnn3d`); GNN widths and aggregation (:mod:`gliotype.nn.pointgnn`); AdamW at a
constant learning rate with early stopping on the validation loss, patience 20 (the paper decays 1e-3
to 1e-4 over 200 epochs); rotation up to 30 degrees about a random axis.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from gliotype.losses import symmetric_kl
from gliotype.methods.monai3d import Image3DConfig
from gliotype.methods.pointgnn import GNN_PATIENCE, PointFields, geometric_learner, points_item
from gliotype.methods.registry import register_method
from gliotype.methods.rotation import RotatingMethod
from gliotype.nn.cnn3d import ImageLearner
from gliotype.nn.collaborative import Collaborative


class ColearnConfig(Image3DConfig, PointFields):
    dropout: float = Field(0.3, ge=0, lt=1)
    patience: int = Field(GNN_PATIENCE, ge=1, description="epochs without validation improvement before stopping")
    kl_weight: float = Field(1.0, ge=0, description="weight of the collaborative KL term (0: two independent learners)")
    kl_temperature: float = Field(1.0, gt=0, description="softmax temperature turning the latents into distributions")


@register_method("colearn", config=ColearnConfig, modalities=("mri", "seg"))
class Colearn(RotatingMethod):
    """Image CNN + geometric GNN trained together with a collaborative KL term (paper 000)."""

    needs = ("mri", "seg")
    stages = ("tumour_image", "tumour_geometry")
    lazy_inputs = True  # the cubes are large: built from the cache one patient at a time

    def build(self, n_classes: int) -> nn.Module:
        image = ImageLearner(4, n_classes, latent=self.config.latent, dropout=self.config.dropout)
        return Collaborative(image, geometric_learner(self.config, n_classes))

    def item(self, arrays):
        image = torch.from_numpy(arrays["tumour_image"]["image"].astype("float32"))
        return {"image": image, **points_item(arrays)}

    def loss(self, model, batch, y, weight):
        lu, lv, zu, zv = model(batch["image"], batch["points"])
        weight = weight.to(lu.device)
        ce = nn.functional.cross_entropy(lu, y, weight=weight) + nn.functional.cross_entropy(lv, y, weight=weight)
        loss = ce + self.config.kl_weight * symmetric_kl(zu, zv, self.config.kl_temperature)
        prob = (torch.softmax(lu, 1) + torch.softmax(lv, 1)) / 2
        return loss, prob.clamp_min(1e-12).log()

    def heads(self, model, batch):
        lu, lv, _, _ = model(batch["image"], batch["points"])
        cnn, gnn = torch.softmax(lu.float(), 1), torch.softmax(lv.float(), 1)
        return {"prediction": (cnn + gnn) / 2, "cnn": cnn, "gnn": gnn}

    def logits(self, model, batch):
        return self.heads(model, batch)["prediction"].clamp_min(1e-12).log()

    def image_learner(self, model: nn.Module) -> ImageLearner:
        return model.image

    def point_learner(self, model: nn.Module):
        return model.geometry
