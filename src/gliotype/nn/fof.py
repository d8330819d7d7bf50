"""The ``fof`` network and its training objective (paper 004, eq. 1-6).

:class:`FoFNetwork` is a :class:`~gliotype.nn.vit.VisionTransformer` whose head has one extra output, the
**background class** that negative views are trained to (eq. 3), plus one projection head per biomarker
(MCA, eq. 5). At inference only the image is read and only the real classes are returned
(:meth:`FoFNetwork.forward` drops the background logit).

:func:`fof_loss` is one training step's loss on a batch of images:

1. the global view: ``logits, tokens = vit(x, return_tokens_of=cam_block)``;
2. FRL (eq. 1-2): Grad-CAM of the ground-truth logit on those tokens (backward through the blocks after
   ``cam_block`` only, parameters untouched) -> ``cam`` -> positive view (tokens with ``cam >= theta``
   kept, the others replaced by the mask token) and negative view (the reverse), both encoded in one
   batch of ``2B`` images;
3. ``L_CLS = CE(global, y) + CE(positive, y) + CE(negative, background)`` (eq. 3);
4. ``L_FRL`` = :func:`~gliotype.losses.focus_consistency` of the pooled features (eq. 4);
5. ``L_MCA`` = mean over biomarkers of :func:`~gliotype.losses.supervised_contrastive` on the projections of
   the ``3B`` views, labels: the image's status for the global and positive views, the normal status for the
   negative view, unknown statuses left out (eq. 5);
6. ``L = L_CLS + lambda_frl * L_FRL + lambda_mca * L_MCA`` (eq. 6).

With ``frl=False`` no views are made (``L = CE(global, y)`` plus, with MCA, MCA on the global view alone);
with ``mca=False`` the projection heads are unused. Both off is the plain ViT baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from gliotype.explain.token_cam import token_gradcam, views_from_cam
from gliotype.losses import focus_consistency, supervised_contrastive
from gliotype.nn.vit import ViTConfig, VisionTransformer

__all__ = ["FoFLossConfig", "FoFNetwork", "fof_loss"]


class FoFNetwork(nn.Module):
    """ViT with a background class and per-biomarker projection heads.

    Args:
        vit: the backbone's architecture for the **real** classes (``n_classes``); the network's ViT gets
            ``n_classes + 1`` outputs, the last one the background class.
        biomarkers: names of the MCA projection heads, in order.
        projection_dim: output width of each head (``Linear(embed, embed) - ReLU - Linear(embed, projection_dim)``).

    Shapes:
        images: (B, 3, H, W) float -> logits of the real classes (B, n_classes)
    """

    def __init__(self, vit: ViTConfig, biomarkers: tuple[str, ...] = (), projection_dim: int = 128):
        super().__init__()
        self.n_classes = vit.n_classes
        self.vit = VisionTransformer(vit.model_copy(update={"n_classes": vit.n_classes + 1}))
        self.biomarkers = tuple(biomarkers)
        self.projections = nn.ModuleDict({
            name: nn.Sequential(nn.Linear(vit.embed, vit.embed), nn.ReLU(), nn.Linear(vit.embed, projection_dim))
            for name in self.biomarkers})

    @property
    def background(self) -> int:
        """Index of the background class in the ViT's logits."""
        return self.n_classes

    def forward(self, images: Tensor) -> Tensor:
        return self.vit(images)[:, : self.n_classes]


@dataclass(frozen=True)
class FoFLossConfig:
    """The switches and weights of :func:`fof_loss` (paper values as defaults)."""

    frl: bool = True
    mca: bool = True
    theta: float = 0.5
    cam_block: int = -2
    tau: float = 0.07
    lambda_frl: float = 0.2
    lambda_mca: float = 0.2
    consistency_form: str = "paper"


def fof_loss(net: FoFNetwork, images: Tensor, y: Tensor, markers: Tensor | None, normal: Tensor | None,
             config: FoFLossConfig, class_weight: Tensor | None = None) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """The training loss of one batch (module docstring).

    Args:
        net: the network.
        images: normalised float images.
        y: class indices of the real classes.
        markers: biomarker class indices, one column per ``net.biomarkers``; -1 = unknown.
        normal: each biomarker's normal class index (the negative view's label).
        config: switches and weights.
        class_weight: weights of the real classes for ``CE(global)`` and ``CE(positive)``; the background
            class gets weight 1.

    Returns:
        ``(loss, logits of the real classes of the global view, parts)``; ``parts`` holds the detached terms
        (``cls``, ``frl``, ``mca``) and, with FRL, ``cam`` (B, P) and ``positive_mask`` (B, P).

    Shapes:
        images: (B, 3, H, W), y: (B,), markers: (B, M), normal: (M,) -> (), (B, n_classes)
    """
    vit = net.vit
    weight = None
    if class_weight is not None:
        weight = torch.cat([class_weight.to(images.device, torch.float32), torch.ones(1, device=images.device)])
    pooled, tokens = vit.encode(images, return_tokens_of=config.cam_block if config.frl else None)
    logits = vit.head(pooled)
    # without FRL no image is labelled background: the plain CE of the real classes (the ViT baseline)
    cls = F.cross_entropy(logits.float() if config.frl else logits[:, : net.n_classes].float(), y,
                          weight=weight if config.frl or weight is None else weight[: net.n_classes])
    parts: dict[str, Tensor] = {}
    views = [pooled]
    frl = torch.zeros((), device=images.device)
    if config.frl:
        cam = token_gradcam(tokens, logits.gather(1, y[:, None]).squeeze(1))
        positive_mask, negative_mask = views_from_cam(cam, config.theta)
        both, _ = vit.encode(torch.cat([images, images]), torch.cat([positive_mask, negative_mask]))
        positive, negative = both.chunk(2)
        view_logits = vit.head(both).float()
        background = torch.full_like(y, net.background)
        cls = cls + F.cross_entropy(view_logits[: len(y)], y, weight=weight) \
            + F.cross_entropy(view_logits[len(y):], background, weight=weight)
        frl = focus_consistency(pooled.float(), positive.float(), negative.float(), config.tau, config.consistency_form)
        views += [positive, negative]
        parts.update(cam=cam, positive_mask=positive_mask)
    mca = torch.zeros((), device=images.device)
    if config.mca and net.biomarkers and markers is not None:
        # global and positive views: the image's statuses; negative view: the normal ones. (views * B, M)
        labels = torch.cat([markers, markers, normal.expand_as(markers)] if config.frl else [markers])
        features = torch.cat(views).float()
        terms = [supervised_contrastive(net.projections[name](features), labels[:, j], config.tau)
                 for j, name in enumerate(net.biomarkers)]
        mca = torch.stack(terms).mean()
    loss = cls + config.lambda_frl * frl + config.lambda_mca * mca
    parts.update(cls=cls.detach(), frl=frl.detach(), mca=mca.detach())
    return loss, logits[:, : net.n_classes], parts
