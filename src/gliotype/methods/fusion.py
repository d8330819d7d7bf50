"""The multimodal baselines of ``fof`` (paper 004, Tables I-II): fusion models and knowledge distillation.

* ``concat-fusion`` and ``kronecker-fusion`` (:mod:`gliotype.nn.fusion`) read each image **and** the
  patient's genomics (biomarker statuses from ``labels.csv``, :mod:`gliotype.methods.histology`) in
  training and at inference; a patient without any known biomarker is skipped with the reason.
* ``kd``: a pathology + genomics teacher (``teacher``: concat or Kronecker fusion) is trained on the fold
  first, then a ViT-Tiny student on the images alone with
  ``(1 - alpha) * CE(student, y) + alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))``
  (Hinton et al. 2015; logits distillation, the paper's representative KD). Inference reads images only.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from gliotype.methods.histology import BIOMARKERS, HistologyConfig, HistologyMethod
from gliotype.methods.registry import register_method
from gliotype.nn.fusion import ConcatFusion, KroneckerFusion
from gliotype.nn.vit import VisionTransformer
from gliotype.train.fit import torch_device

FUSIONS = {"concat": ConcatFusion, "kronecker": KroneckerFusion}


class FusionConfig(HistologyConfig):
    genomics: list[str] = Field(default_factory=lambda: list(BIOMARKERS),
                                description="biomarker columns of labels.csv read as genomics (the target left out)")
    fusion_width: int = Field(32, ge=1, description="width of each modality's feature before fusion")
    fusion_hidden: int = Field(64, ge=1)
    fusion_dropout: float = Field(0.25, ge=0, lt=1)


class KDConfig(FusionConfig):
    teacher: Literal["concat", "kronecker"] = "concat"
    temperature: float = Field(4.0, gt=0)
    alpha: float = Field(0.5, ge=0, le=1, description="weight of the distillation term")


class _FusionMethod(HistologyMethod):
    genomics_used = True
    genomics_required = True
    fusion = "concat"

    def build(self, n_classes: int) -> nn.Module:
        cfg = self.config
        return FUSIONS[self.fusion](cfg.vit_config(n_classes), self.genomic_dim(), cfg.fusion_width,
                                    cfg.fusion_hidden, cfg.fusion_dropout)

    def logits(self, model, batch):
        return model(self.images(batch), self.genomics(batch))


@register_method("concat-fusion", config=FusionConfig, modalities=("histology",))
class ConcatFusionMethod(_FusionMethod):
    """ViT-Tiny image features concatenated with genomics (SCNN-like); needs genomics at inference."""

    fusion = "concat"


@register_method("kronecker-fusion", config=FusionConfig, modalities=("histology",))
class KroneckerFusionMethod(_FusionMethod):
    """Gated Kronecker-product fusion of image and genomics (Pathomic-like); needs genomics at inference."""

    fusion = "kronecker"


@register_method("kd", config=KDConfig, modalities=("histology",))
class KnowledgeDistillation(_FusionMethod):
    """A ViT-Tiny student distilled from a pathology + genomics teacher by logit KL; images only at inference."""

    genomics_required = False

    @property
    def fusion(self) -> str:
        return self.config.teacher

    def build(self, n_classes: int) -> nn.Module:
        return VisionTransformer(self.config.vit_config(n_classes))

    def logits(self, model, batch):
        return model(self.images(batch))

    def fit_images(self, rois, y_rois, val_rois, y_val_rois, n_classes, ctx):
        """The teacher first (kept in ``teacher/`` of the fold's work folder, so a resumed fold reuses it),
        then the student."""
        teacher = _FusionMethod.build(self, n_classes)
        weights, teacher_summary = self.fit_network(teacher, rois, y_rois, val_rois, y_val_rois, ctx,
                                                    ctx.work_dir / "teacher", loss=self.teacher_loss)
        teacher.load_state_dict(weights)
        self._teacher = teacher.to(torch_device(ctx.device)).eval().requires_grad_(False)
        try:
            weights, summary = self.fit_network(self.build(n_classes), rois, y_rois, val_rois, y_val_rois, ctx,
                                                ctx.work_dir / "student")
        finally:
            del self._teacher
        return weights, {**summary, "teacher": teacher_summary}

    def teacher_loss(self, model, batch, y, weight):
        logits = _FusionMethod.logits(self, model, batch)
        return F.cross_entropy(logits.float(), y, weight=weight.to(logits.device)), logits

    def loss(self, model, batch, y, weight):
        cfg = self.config
        logits = self.logits(model, batch).float()
        with torch.no_grad():
            teacher = _FusionMethod.logits(self, self._teacher, batch).float()
        t = cfg.temperature
        distill = F.kl_div(F.log_softmax(logits / t, 1), F.log_softmax(teacher / t, 1), log_target=True,
                           reduction="batchmean") * t * t
        ce = F.cross_entropy(logits, y, weight=weight.to(logits.device))
        return (1 - cfg.alpha) * ce + cfg.alpha * distill, logits

