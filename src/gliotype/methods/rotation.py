"""Rotation augmentation of the minority class, applied identically to the tumour cube and its points.

Paper 000 augments the minority class by volume rotation, in both the image and the geometric data.
Here every training sample of a minority class (any class smaller than the largest) is rotated by a
fresh random rotation each time it is drawn, so the minority class never shows the same view twice;
the imbalance itself is handled by the class-weighted loss. ``augment="all"`` rotates every sample,
``"none"`` switches it off. With balanced classes ``"minority"`` rotates nothing.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from pydantic import Field

from gliotype.methods.base import MethodConfig
from gliotype.methods.torch_method import TorchMethod
from gliotype.nn.rotate import random_rotations, rotate_points, rotate_volume


class RotationFields(MethodConfig):
    augment: Literal["minority", "all", "none"] = "minority"
    rotate_deg: float = Field(30.0, ge=0, le=180, description="largest rotation angle, degrees")


def rotated_classes(y_train: np.ndarray, n_classes: int, mode: str) -> list[int]:
    """The classes whose samples are rotated: the minority classes, all classes, or none."""
    if mode == "none":
        return []
    counts = np.bincount(y_train, minlength=n_classes)
    return list(range(n_classes)) if mode == "all" else [c for c in range(n_classes) if counts[c] < counts.max()]


def rotate_batch(batch: dict[str, torch.Tensor], y: torch.Tensor, classes: list[int],
                 max_deg: float) -> dict[str, torch.Tensor]:
    """Rotate the samples of ``classes`` in ``batch`` ("image" cubes and/or "points"), one rotation per sample.

    Shapes:
        batch["image"]: (B, C, S, S, S); batch["points"]: (B, P, 3); y: (B,).
    """
    if not classes or max_deg == 0:
        return batch
    pick = torch.isin(y, torch.tensor(classes, device=y.device))
    if not bool(pick.any()):
        return batch
    ref = next(iter(batch.values()))
    rot = random_rotations(int(pick.sum()), max_deg).to(ref.device)
    out = dict(batch)
    if "image" in batch:
        out["image"] = batch["image"].clone()
        out["image"][pick] = rotate_volume(batch["image"][pick], rot)
    if "points" in batch:
        out["points"] = batch["points"].clone()
        out["points"][pick] = rotate_points(batch["points"][pick], rot)
    return out


class RotatingMethod(TorchMethod):
    """A torch method whose config has :class:`RotationFields`: rotates the chosen classes while training."""

    _rotated: list[int] = []

    def fit(self, train, y_train, val, y_val, n_classes, ctx):
        self._rotated = rotated_classes(np.asarray(y_train), n_classes, self.config.augment)
        return super().fit(train, y_train, val, y_val, n_classes, ctx)

    def augment(self, batch, y):
        return rotate_batch(batch, y, self._rotated, self.config.rotate_deg)
