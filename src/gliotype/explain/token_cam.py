"""Grad-CAM on transformer token maps, and the positive / negative views of ``fof``'s FRL (paper 004, eq. 1-2).

For the tokens ``v`` (B, P, C) of one block and a score ``s`` per image (e.g. the ground-truth logit)::

    w_c = mean_p ds / dv_pc,        cam_p = ReLU(sum_c w_c v_pc),        cam <- (cam - min) / (max - min)

Paper eq. 1 writes ``alpha_k`` as a *sum* over positions; the mean differs by the factor ``P``, which the
min-max normalisation removes (ReLU commutes with a positive factor), so both give the same map.

The map stays on the token grid: a token's value is what eq. 2 thresholds. (The author code upsamples
the map to pixels and averages it back over each patch, which returns each token's value up to the
smoothing of the bilinear resampling; we skip the round trip. The author code also uses the
"eigen-smoothing" of pytorch-grad-cam, not done here.)

Views (eq. 2, with the ``token_mask`` convention of :class:`gliotype.nn.vit.VisionTransformer`, True =
the token is replaced by the mask token):

* positive view: ``positive_mask = cam < theta`` -- the low-scoring tokens are replaced, the tokens with
  ``cam >= theta`` are kept;
* negative view: ``negative_mask = cam >= theta`` (``~positive_mask``) -- the high-scoring tokens are
  replaced, the others kept.

Every token is kept in exactly one view. A token at exactly ``theta`` counts as positive (author code:
``mask = cam < threshold``; paper eq. 2 writes ``> theta`` for the kept tokens).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["cam_to_image", "min_max", "token_gradcam", "views_from_cam"]


def token_gradcam(tokens: Tensor, score: Tensor) -> Tensor:
    """Grad-CAM of ``score`` on a token map, min-max normalised per image to ``[0, 1]``, detached.

    The gradient is taken with ``torch.autograd.grad(score.sum(), tokens, retain_graph=True)``: no
    parameter's ``.grad`` is touched and the graph survives, so the same forward pass can still be used for
    the training loss. Summing the scores is exact when image ``i``'s score depends only on image ``i``'s
    tokens (true for a ViT: no BatchNorm mixes the batch).

    Args:
        tokens: a block's output tokens, in the graph that computed ``score``
            (``logits, tokens = model(images, return_tokens_of=-2)``).
        score: one score per image, e.g. ``logits.gather(1, labels[:, None]).squeeze(1)``.

    Returns:
        The maps in ``[0, 1]``, max 1 per image; an image whose map is constant (e.g. all zero after the
        ReLU) gets all zeros.

    Shapes:
        tokens: (B, P, C), score: (B,) -> (B, P)
    """
    _check_inputs(tokens, score)
    (gradients,) = torch.autograd.grad(score.sum(), tokens, retain_graph=True, create_graph=False,
                                       allow_unused=True)
    if gradients is None:
        raise ValueError("token_gradcam: score does not depend on tokens; pass the tokens returned by the same "
                         "forward pass that produced the score (model(images, return_tokens_of=-2))")
    with torch.no_grad():
        weights = gradients.mean(dim=1, keepdim=True)  # (B, 1, C)
        cam = torch.relu((weights * tokens).sum(dim=-1))  # (B, P)
        return min_max(cam).detach()


def views_from_cam(cam: Tensor, theta: float = 0.5) -> tuple[Tensor, Tensor]:
    """Token masks of the positive and negative views (eq. 2; True = replaced by the mask token).

    Args:
        cam: normalised maps from :func:`token_gradcam`.
        theta: the threshold (paper: 0.5).

    Returns:
        ``(positive_mask, negative_mask)``: ``positive_mask = cam < theta`` (masks the low-scoring tokens,
        keeps the focus), ``negative_mask = ~positive_mask`` (masks the focus). Pass them as
        ``model(images, token_mask=positive_mask)`` and ``model(images, token_mask=negative_mask)``.

    Shapes:
        cam: (B, P) -> ((B, P) bool, (B, P) bool)
    """
    if not isinstance(cam, Tensor) or cam.dim() != 2:
        got = tuple(cam.shape) if isinstance(cam, Tensor) else type(cam).__name__
        raise ValueError(f"views_from_cam: cam must be a tensor (B, n_patches); got {got!r}")
    if not 0.0 <= theta <= 1.0:
        raise ValueError(f"views_from_cam: theta must be in [0, 1] (cam is min-max normalised); got {theta!r}. "
                         "The paper uses 0.5.")
    positive_mask = cam < theta
    return positive_mask, ~positive_mask


def cam_to_image(cam: Tensor, grid_hw: Sequence[int], image_hw: Sequence[int]) -> Tensor:
    """Upsample token maps to pixels (bilinear, ``align_corners=False``) for overlays.

    Args:
        cam: token maps, tokens row by row over the grid (the ViT's order).
        grid_hw: the patch grid ``(rows, columns)``, e.g. ``(14, 14)`` for 224 px and patch 16.
        image_hw: the output size in pixels.

    Shapes:
        cam: (B, P) with P = rows * columns -> (B, H, W)
    """
    rows, cols = (int(v) for v in grid_hw)
    if not isinstance(cam, Tensor) or cam.dim() != 2 or cam.shape[1] != rows * cols:
        got = tuple(cam.shape) if isinstance(cam, Tensor) else type(cam).__name__
        raise ValueError(f"cam_to_image: cam must be (B, rows * columns) = (B, {rows * cols}) for grid_hw "
                         f"{(rows, cols)!r}; got {got!r}. The grid is image size // patch size per side.")
    grid = cam.reshape(cam.shape[0], 1, rows, cols).float()
    size = tuple(int(v) for v in image_hw)
    return F.interpolate(grid, size=size, mode="bilinear", align_corners=False)[:, 0]


def min_max(cam: Tensor) -> Tensor:
    """Each row scaled to [0, 1] (max 1); a constant row becomes zeros. Shapes: (B, P) -> (B, P)."""
    low = cam.amin(dim=1, keepdim=True)
    span = cam.amax(dim=1, keepdim=True) - low
    return torch.where(span > 0, (cam - low) / span.clamp_min(torch.finfo(cam.dtype).tiny), torch.zeros_like(cam))


def _check_inputs(tokens: Tensor, score: Tensor) -> None:
    if not isinstance(tokens, Tensor) or tokens.dim() != 3:
        got = tuple(tokens.shape) if isinstance(tokens, Tensor) else type(tokens).__name__
        raise ValueError(f"token_gradcam: tokens must be a tensor (B, n_patches, channels); got {got!r}")
    if not isinstance(score, Tensor) or tuple(score.shape) != (tokens.shape[0],):
        got = tuple(score.shape) if isinstance(score, Tensor) else type(score).__name__
        raise ValueError(f"token_gradcam: score must be one value per image, shape ({tokens.shape[0]},); got "
                         f"{got!r}. For logits (B, n_classes) use logits.gather(1, labels[:, None]).squeeze(1).")
    if not tokens.requires_grad or not score.requires_grad:
        raise ValueError("token_gradcam: tokens and score must be in an autograd graph; run the forward pass with "
                         "gradients enabled (not under torch.no_grad()) and pass model(images, return_tokens_of=-2)")
