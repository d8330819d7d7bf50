"""Base of the histology methods (``fof``, ``vit``, ``kd``, ``concat-fusion``, ``kronecker-fusion``; paper 004).

Inputs come from the ``histology_tiles`` stage: each patient's ROI images and slide tiles, ``(n, S, S, 3)``
uint8. Training and prediction run on **images** (one ROI or tile each, labelled with its patient's
labels); the patient's prediction is the **mean of its images' class probabilities** (``aggregation``,
saved in every run's ``config.yaml``). Folds are made over patients by the runner, so no patient's images
are on both sides of a split (the author code splits ROIs, which leaks).

Images are scaled to [0, 1] and normalised with the ImageNet channel statistics (fixed constants, nothing
fitted). Training augmentation: random horizontal/vertical flips and 90-degree rotations (tissue has no
orientation) and a mild brightness/contrast jitter, per image.

Genomics (the fusion baselines' second input and the ``kd`` teacher's): each patient's biomarker statuses
from ``labels.csv`` (``genomics``: IDH, 1p/19q and the CNV calls by default), one-hot per biomarker, all
zeros where unknown. The run's target is always left out of the vector (a status never predicts itself).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field
from torch import Tensor, nn

from gliotype.cohort import Cohort
from gliotype.cohort.labels import label_classes
from gliotype.methods.base import Prepared
from gliotype.methods.torch_method import TorchConfig, TorchMethod, class_weights
from gliotype.nn.vit import ViTConfig
from gliotype.train.fit import fit_torch

BIOMARKERS = ("idh", "codel_1p19q", "cnv_PTEN", "cnv_EGFR", "cnv_CARD11", "cnv_FGFR2")
"""The paper's molecular biomarkers (MCA's labels, the fusion baselines' genomics)."""

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class HistologyConfig(TorchConfig):
    """Tiles, ViT and training settings shared by the histology methods (paper 004 values as defaults)."""

    # tiles (stage ``histology_tiles``)
    tile_size: int = Field(224, ge=16, description="image side fed to the ViT; a multiple of patch")
    magnification: float | None = Field(None, gt=0, description="slides: tiling magnification (default 20x)")
    mpp: float | None = Field(None, gt=0)
    downsample: float | None = Field(None, ge=1)
    roi: Literal["resize", "tile"] = "resize"
    roi_max_side: int = Field(4096, ge=16)
    max_tiles_per_slide: int = Field(64, ge=1)
    tissue_fraction_min: float = Field(0.5, ge=0, le=1)
    # ViT-Tiny
    patch: int = Field(16, ge=1)
    embed: int = Field(192, ge=1)
    depth: int = Field(12, ge=1)
    heads: int = Field(3, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    # training (paper: AdamW lr 1e-4, wd 0.01, cosine to 0, 70 epochs)
    epochs: int = Field(70, ge=1)
    patience: int = Field(70, ge=1, description="the paper trains all epochs; lower to stop early")
    batch_size: int = Field(16, ge=1)
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    schedule: Literal["constant", "cosine"] = "cosine"
    precision: Literal["32", "bf16-mixed"] = Field("32", description="bf16-mixed: autocast to bfloat16")
    augment: bool = True
    aggregation: Literal["mean"] = Field("mean", description="patient = mean of its images' probabilities")

    def vit_config(self, n_classes: int) -> ViTConfig:
        return ViTConfig(n_classes=n_classes, image_size=self.tile_size, patch=self.patch, embed=self.embed,
                         depth=self.depth, heads=self.heads, dropout=self.dropout)


class HistologyMethod(TorchMethod):
    """Image-level training and mean-probability patient prediction over the ``histology_tiles`` stage.

    Subclasses implement :meth:`build` and, if they read more than the image, :meth:`logits` / :meth:`loss`.
    ``genomics_required``: whether the model reads genomics at inference (patients without any known
    biomarker are then skipped); ``genomics_used``: whether items carry the biomarker statuses at all.
    """

    needs = ("histology",)
    stages = ("histology_tiles",)
    genomics_used = False
    genomics_required = False

    # --- inputs ---------------------------------------------------------------------------------

    def item(self, arrays):
        tiles = torch.from_numpy(arrays["histology_tiles"]["tiles"])  # (n, S, S, 3) uint8
        return {"tiles": tiles.permute(0, 3, 1, 2).contiguous()}

    def prepare(self, cohort: Cohort, patient_ids, cache_dir: Path | None = None, workers: int = 1,
                progress: bool = False) -> Prepared:
        prepared = super().prepare(cohort, patient_ids, cache_dir, workers, progress)
        if not self.genomics_used:
            return prepared
        columns = self.config.genomics
        for pid, item in list(prepared.inputs.items()):
            item["markers"] = torch.tensor(biomarker_indices(cohort[pid].labels, columns))
            if self.genomics_required and not bool((item["markers"] >= 0).any()):
                del prepared.inputs[pid]
                prepared.failed[pid] = (f"{pid}: labels.csv has none of the genomic columns {columns} for this patient; "
                                        f"{self.name} reads them at inference too; fill them in, or use 'fof' or 'vit', "
                                        "which need images only")
        return prepared

    def genomic_columns(self, target: str) -> list[str]:
        """The biomarker columns read as genomics: ``genomics`` without the run's target (none if unused)."""
        return [c for c in self.config.genomics if c != target] if self.genomics_used else []

    def genomics(self, batch: dict[str, Tensor]) -> Tensor:
        """The one-hot genomic vectors of a batch (the target's column left out).

        Shapes:
            batch["markers"]: (B, len(genomics)) -> (B, sum of the used columns' class counts)
        """
        parts = []
        for j, column in enumerate(self.config.genomics):
            if column in self._genomic:
                n = len(label_classes(column))
                index = batch["markers"][:, j]
                parts.append(nn.functional.one_hot(index.clamp_min(0), n).float() * (index >= 0)[:, None])
        return torch.cat(parts, dim=1)

    def genomic_dim(self) -> int:
        return sum(len(label_classes(c)) for c in self._genomic)

    # --- images ---------------------------------------------------------------------------------

    def images(self, batch: dict[str, Tensor]) -> Tensor:
        """Normalised float images. Shapes: batch["image"] (B, 3, S, S) uint8 -> (B, 3, S, S)."""
        image = batch["image"].float() / 255.0
        mean = image.new_tensor(MEAN)[None, :, None, None]
        return (image - mean) / image.new_tensor(STD)[None, :, None, None]

    def augment(self, batch, y):
        if not self.config.augment:
            return batch
        images = batch["image"]
        out = torch.empty_like(images)
        flips = torch.randint(0, 2, (len(images), 2))
        turns = torch.randint(0, 4, (len(images),))
        for i, image in enumerate(images):
            image = image.flip(-1) if flips[i, 0] else image
            image = image.flip(-2) if flips[i, 1] else image
            out[i] = torch.rot90(image, int(turns[i]), dims=(-2, -1))
        jitter = 1.0 + 0.1 * (2 * torch.rand(len(images), 2) - 1)  # brightness, contrast in [0.9, 1.1]
        mean = out.float().mean(dim=(1, 2, 3), keepdim=True)
        scaled = (out.float() - mean) * jitter[:, 1, None, None, None] + mean * jitter[:, 0, None, None, None]
        return {**batch, "image": scaled.round().clamp(0, 255).to(torch.uint8)}

    def logits(self, model, batch):
        return model(self.images(batch))

    # --- fitting --------------------------------------------------------------------------------

    def fit(self, train, y_train, val, y_val, n_classes, ctx):
        self._genomic = self.genomic_columns(ctx.target)
        if self.genomics_used and not self._genomic:
            raise ValueError(f"{self.name}: genomics={self.config.genomics} has no column besides the target "
                             f"{ctx.target!r}, which is never an input; add biomarker columns (e.g. cnv_EGFR)")
        rois, y_rois = expand(train, y_train)
        val_rois, y_val_rois = expand(val, y_val)
        self._weight = class_weights(y_rois, n_classes, self.config.class_weighting)
        weights, self.fit_summary = self.fit_images(rois, y_rois, val_rois, y_val_rois, n_classes, ctx)
        self.fit_summary.update(images=len(rois), aggregation=self.config.aggregation)
        return weights

    def fit_images(self, rois, y_rois, val_rois, y_val_rois, n_classes, ctx) -> tuple[dict[str, Tensor], dict]:
        """Train on the images (one item each): the network of :meth:`build` with :meth:`loss`."""
        return self.fit_network(self.build(n_classes), rois, y_rois, val_rois, y_val_rois, ctx, ctx.work_dir)

    def fit_network(self, model: nn.Module, rois, y_rois, val_rois, y_val_rois, ctx, work_dir: Path,
                    loss=None) -> tuple[dict[str, Tensor], dict]:
        """Train ``model`` on images through :func:`fit_torch` with ``loss(model, batch, y, class_weight)``;
        the default is :meth:`loss` in training and :meth:`validation_loss` for early stopping, a given
        ``loss`` serves both."""

        def step(model, batch, y, training):
            if training:
                batch = self.augment(batch, y)
                return (loss or self.loss)(model, batch, y, self._weight)
            return loss(model, batch, y, self._weight) if loss else self.validation_loss(model, batch, y)

        cfg = self.config
        torch.manual_seed(ctx.seed)
        return fit_torch(model, step, self.collate, rois, y_rois, val_rois, y_val_rois, work_dir=work_dir,
                         epochs=ctx.epochs or cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                         weight_decay=cfg.weight_decay, patience=cfg.patience, seed=ctx.seed, device=ctx.device,
                         progress=ctx.progress, num_workers=cfg.num_workers, sidecar={"method": self.name},
                         schedule=cfg.schedule, precision=cfg.precision, distributed=ctx.distributed)

    def validation_loss(self, model, batch, y):
        """The early-stopping loss: class-weighted cross-entropy of the prediction."""
        logits = self.logits(model, batch)
        return nn.functional.cross_entropy(logits.float(), y, weight=self._weight.to(logits.device)), logits

    # --- prediction -----------------------------------------------------------------------------

    def predict_heads(self, state, inputs, n_classes, device="auto"):
        """Each patient's mean image probabilities. Shapes: returns (n_patients, n_classes) per head."""
        rois, _ = expand(inputs, np.full(len(inputs), -1))
        owner = np.repeat(np.arange(len(inputs)), [len(it["tiles"]) for it in inputs])
        per_image = super().predict_heads(state, rois, n_classes, device)
        return {head: mean_by(owner, probs, len(inputs)) for head, probs in per_image.items()}

    def sidecar(self) -> dict:
        return {"genomic_columns": list(self._genomic)}

    def restore(self, sidecar: dict) -> None:
        self._genomic = list(sidecar.get("genomic_columns", []))


def expand(items: list[dict], y: np.ndarray) -> tuple[list[dict], np.ndarray]:
    """One item per image (``image`` (3, S, S) uint8, plus the patient's other per-patient tensors), each
    labelled with its patient's class."""
    rois, labels = [], []
    for item, label in zip(items, y):
        extra = {k: v for k, v in item.items() if k not in ("tiles", "patient_id")}
        for image in item["tiles"]:
            rois.append({"image": image, **extra})
            labels.append(label)
    return rois, np.asarray(labels, dtype=np.int64)


def mean_by(owner: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Row means of ``values`` per owner. Shapes: owner (m,), values (m, C) -> (n, C)."""
    sums = np.zeros((n, values.shape[1]))
    np.add.at(sums, owner, values)
    return sums / np.bincount(owner, minlength=n)[:, None]


def biomarker_indices(labels: dict, columns: list[str]) -> list[int]:
    """Class indices (:func:`label_classes` order) of a patient's biomarker labels, -1 where unknown."""
    return [label_classes(c).index(labels[c]) if labels.get(c) is not None else -1 for c in columns]
