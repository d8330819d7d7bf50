"""Classification losses of HiPerfGNN (paper 002): weighted cross-entropy per task, or focal loss.

The paper trains with ``L = sum_c w_c CE(y_c, y_hat_c)`` over the targets (IDH, 1p/19q, WHO grade); the
author code uses the focal loss (Lin et al., 2017) with ``gamma = 2`` and inverse-frequency ``alpha``.
:func:`multitask_loss` offers both (default cross-entropy). Labels equal to ``-1`` are unknown: such a
patient contributes to its other tasks only, and a task with no known label in the batch contributes 0.

Reductions (recorded here): weighted cross-entropy is ``torch``'s weighted mean,
``sum_i w_{y_i} CE_i / sum_i w_{y_i}``; the focal loss is the plain mean over known rows of
``-alpha_{y_i} (1 - p_i)^gamma log p_i`` (as in Lin et al.), so ``gamma = 0`` with ``alpha = None`` is
exactly the (unweighted) cross-entropy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from torch import Tensor
from torch.nn import functional as F

__all__ = ["focal_loss", "multitask_loss"]

_KINDS = ("ce", "focal")


def focal_loss(logits: Tensor, target: Tensor, alpha: Tensor | None = None, gamma: float = 2.0,
               ignore_index: int = -1) -> Tensor:
    """Focal loss ``mean_i -alpha_{y_i} (1 - p_{i,y_i})^gamma log p_{i,y_i}`` over the rows with a known label.

    Args:
        logits: unnormalised class scores.
        target: class index per row, or ``ignore_index`` for an unknown label.
        alpha: per-class weight (author code: inverse class frequency), or ``None`` for 1.
        gamma: focusing parameter ``>= 0``; 0 gives the cross-entropy.
        ignore_index: the label of rows to leave out.

    Returns:
        The loss, a scalar tensor; 0 (still connected to ``logits``) when no row has a known label.

    Shapes:
        logits: (B, C), target: (B,), alpha: (C,) -> ()
    """
    if gamma < 0:
        raise ValueError(f"focal_loss: gamma must be >= 0 (0 is plain cross-entropy); got gamma={gamma!r}")
    logits, target = _known(logits, target, ignore_index, alpha, "focal_loss")
    if target.numel() == 0:
        return logits.sum() * 0.0
    log_p = F.log_softmax(logits, dim=-1).gather(1, target[:, None]).squeeze(1)
    loss = -((1.0 - log_p.exp()).clamp(min=0.0) ** gamma) * log_p
    if alpha is not None:
        loss = loss * alpha.to(loss)[target]
    return loss.mean()


def multitask_loss(logits: Mapping[str, Tensor], targets: Mapping[str, Tensor],
                   weights: Mapping[str, Tensor | None], kind: Literal["ce", "focal"] = "ce",
                   gamma: float = 2.0) -> tuple[Tensor, dict[str, Tensor]]:
    """Sum over tasks of the per-task loss; labels ``-1`` are masked, a task without known labels gives 0.

    Args:
        logits: per task, the model's logits.
        targets: per task, the class index per patient or ``-1`` (unknown); extra tasks are ignored.
        weights: per task, class weights (``"ce"``) or alpha (``"focal"``), or ``None``; a task missing
            from ``weights`` is unweighted.
        kind: ``"ce"`` (weighted cross-entropy, paper) or ``"focal"`` (author code).
        gamma: the focal loss's focusing parameter (ignored for ``"ce"``).

    Returns:
        ``(total, per_task)``: the summed loss and the loss of each task (scalar tensors).

    Shapes:
        logits[t]: (B, C_t), targets[t]: (B,), weights[t]: (C_t,) -> total: (), per_task[t]: ()
    """
    if kind not in _KINDS:
        raise ValueError(f"multitask_loss: kind must be one of {_KINDS!r}; got {kind!r}")
    missing = [t for t in logits if t not in targets]
    unknown = [t for t in weights if t not in logits]
    if missing or unknown:
        raise ValueError(f"multitask_loss: tasks {sorted(logits)!r} predicted; targets lack {missing!r}, weights "
                         f"name tasks the model does not predict {unknown!r}")
    per_task = {t: _task_loss(x, targets[t], weights.get(t), kind, gamma, t) for t, x in logits.items()}
    return sum(per_task.values()), per_task


def _task_loss(logits: Tensor, target: Tensor, weight: Tensor | None, kind: str, gamma: float, task: str) -> Tensor:
    if kind == "focal":
        return focal_loss(logits, target, weight, gamma)
    logits, target = _known(logits, target, -1, weight, f"multitask_loss, task {task!r}")
    if target.numel() == 0:
        return logits.sum() * 0.0
    return F.cross_entropy(logits, target, weight=None if weight is None else weight.to(logits))


def _known(logits: Tensor, target: Tensor, ignore_index: int, weight: Tensor | None, where: str) -> tuple[Tensor, Tensor]:
    """The rows with a known label, after checking shapes and label range."""
    if logits.dim() != 2 or target.shape != (logits.shape[0],):
        raise ValueError(f"{where}: expects logits (B, C) and target (B,); got {tuple(logits.shape)} and "
                         f"{tuple(target.shape)}")
    n_classes = logits.shape[1]
    if weight is not None and tuple(weight.shape) != (n_classes,):
        raise ValueError(f"{where}: class weights must have shape ({n_classes},), one per class; got "
                         f"{tuple(weight.shape)}")
    keep = target != ignore_index
    target = target[keep].long()
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= n_classes):
        raise ValueError(f"{where}: labels must be in 0..{n_classes - 1} or {ignore_index} (unknown); got values in "
                         f"[{int(target.min())}, {int(target.max())}]")
    return logits[keep], target
