"""``fof``: Focus on Focus, pathology-only glioma grading (paper 004), and its ViT baseline ``vit``.

Training uses the images and, for MCA, the patients' biomarker statuses (``biomarkers``: IDH, 1p/19q and
the CNV calls of PTEN, EGFR, CARD11, FGFR2 by default; read from ``labels.csv``, unknown ones left out of
the loss); inference reads images only. The network and the loss are :mod:`gliotype.nn.fof`: FRL's
Grad-CAM views with the background class and the focus consistency, MCA's per-biomarker projection heads
with supervised contrastive losses, ``L = L_CLS + 0.2 L_FRL + 0.2 L_MCA``; AdamW lr 1e-4, weight decay
0.01, cosine schedule. Images and patient aggregation: :mod:`gliotype.methods.histology`.

Variants (paper Table I ablations) are configurations in :data:`VARIANTS`; ``vit`` is ``fof`` with FRL and
MCA off, registered under its own name as the paper's baseline.

Deviations, also in the README: no EMA teacher projectors and no arm-level CNV guidance (author-code
extras); Grad-CAM without eigen-smoothing, read on the token grid; categorical biomarker values and
patient-level folds (the author code z-scores gene values and splits ROIs).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field

from gliotype.cohort.labels import normal_class
from gliotype.methods.histology import BIOMARKERS, HistologyConfig, HistologyMethod
from gliotype.methods.registry import register_method
from gliotype.nn.fof import FoFLossConfig, FoFNetwork, fof_loss

VARIANTS: dict[str, dict] = {
    "full": {},
    "no-frl": {"frl": False},
    "no-mca": {"mca": False},
}


class FoFConfig(HistologyConfig):
    frl: bool = True
    mca: bool = True
    biomarkers: list[str] = Field(default_factory=lambda: list(BIOMARKERS),
                                  description="MCA's biomarker columns of labels.csv (idh, codel_1p19q, cnv_<GENE>)")
    theta: float = Field(0.5, ge=0, le=1)
    cam_block: int = Field(-2, description="block whose tokens Grad-CAM reads (-2: second-to-last)")
    tau: float = Field(0.07, gt=0)
    lambda_frl: float = Field(0.2, ge=0)
    lambda_mca: float = Field(0.2, ge=0)
    consistency_form: Literal["paper", "author"] = "paper"
    projection_dim: int = Field(128, ge=1)

    def loss_config(self) -> FoFLossConfig:
        return FoFLossConfig(frl=self.frl, mca=self.mca, theta=self.theta, cam_block=self.cam_block, tau=self.tau,
                             lambda_frl=self.lambda_frl, lambda_mca=self.lambda_mca,
                             consistency_form=self.consistency_form)


class ViTBaselineConfig(FoFConfig):
    frl: bool = False
    mca: bool = False


@register_method("fof", config=FoFConfig, modalities=("histology",))
class FoF(HistologyMethod):
    """Focus on Focus: ViT-Tiny with FRL views and MCA biomarker alignment; images only at inference (paper 004)."""

    def label_targets(self, target: str) -> tuple[str, ...]:
        cfg = self.config
        return tuple(b for b in cfg.biomarkers if b != target) if cfg.mca else ()

    def build(self, n_classes: int) -> FoFNetwork:
        cfg = self.config
        markers = tuple(cfg.biomarkers) if cfg.mca else ()
        return FoFNetwork(cfg.vit_config(n_classes), markers, cfg.projection_dim)

    def fit(self, train, y_train, val, y_val, n_classes, ctx):
        cfg = self.config
        if cfg.mca:
            columns = [np.asarray(y_train) if b == ctx.target else ctx.aux_train[b] for b in cfg.biomarkers]
            markers = np.stack(columns, axis=1) if columns else np.zeros((len(train), 0), np.int64)
            train = [{**it, "markers": torch.from_numpy(m.astype(np.int64))} for it, m in zip(train, markers)]
        self._normal = torch.tensor([normal_class(b) for b in cfg.biomarkers], dtype=torch.int64)
        return super().fit(train, y_train, val, y_val, n_classes, ctx)

    def loss(self, model, batch, y, weight):
        normal = self._normal.to(y.device)
        loss, logits, _ = fof_loss(model, self.images(batch), y, batch.get("markers"), normal,
                                   self.config.loss_config(), weight)
        return loss, logits


@register_method("vit", config=ViTBaselineConfig, modalities=("histology",))
class ViTBaseline(FoF):
    """ViT-Tiny alone on the images: ``fof`` with FRL and MCA off (paper 004's baseline)."""
