"""Point importances of the geometric learner with PyG's GNNExplainer (Ying et al., NeurIPS 2019).

GNNExplainer learns one mask value ``m_i`` per point; the learner sees node features ``x_i * sigmoid(m_i)``
while its graphs are still built from the unmasked coordinates. The mask is fitted to keep the
prediction of ``class_index`` (cross-entropy) while staying small and near 0 or 1 (size and entropy
penalties). A point whose features do not change the logit at all gets exactly 0.

Note: the learner's first-stage features are the coordinates themselves, so masking a point scales its
coordinates towards the origin of the normalised cloud; points near the centre of the cloud therefore
change little when masked, and their importance is less informative.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import Tensor, nn
from torch_geometric.explain import Explainer, GNNExplainer

from gliotype.explain._modes import eval_mode, frozen
from gliotype.nn.graph import radius_graph


class NodeMaskWrapper(nn.Module):
    """Adapts a point learner ``learner(pos, batch, x=x)`` to PyG's ``model(x, edge_index, **kwargs)``.

    ``edge_index`` is required by the Explainer API but unused: the learner builds its own graphs.

    Shapes:
        x: (N, F), edge_index: (2, E), pos: (N, 3), batch: (N,) -> logits (B, n_classes).
    """

    def __init__(self, learner: nn.Module):
        super().__init__()
        self.learner = learner

    def forward(self, x: Tensor, edge_index: Tensor, pos: Tensor, batch: Tensor) -> Tensor:
        return self.learner(pos, batch, x=x)


def point_importance(learner: nn.Module, points: Tensor, class_index: int, epochs: int = 200, seed: int = 0,
                     radius: float = 0.25) -> np.ndarray:
    """GNNExplainer importance of each point of one cloud for the logit of ``class_index``.

    Deterministic for a given ``seed`` (the global random state is left as it was); the learner runs in
    eval mode and its training flags and ``requires_grad`` flags are restored, with no ``.grad`` left.

    Args:
        learner: ``learner(pos (N, 3), batch (N,) | None, x=(N, 3)) -> logits (B, n_classes)``,
            e.g. :class:`gliotype.nn.pointgnn.GeometricLearner`.
        points: one cloud, in the coordinates the learner was trained on.
        class_index: the class whose prediction is explained.
        epochs: optimisation steps of the mask (Adam, lr 0.01).
        seed: seeds the random initial mask.
        radius: radius of the graph handed to the Explainer (the learner's first stage uses 0.25).

    Returns:
        ``sigmoid`` of the fitted node mask, in [0, 1], float32 (not rescaled).

    Shapes:
        - points: ``(P, 3)``
        - output: ``(P,)``
    """
    pos = _check_points(points)
    batch = torch.zeros(len(pos), dtype=torch.long, device=pos.device)
    explainer = Explainer(model=NodeMaskWrapper(learner), algorithm=GNNExplainer(epochs=epochs),
                          explanation_type="phenomenon", node_mask_type="object", edge_mask_type=None,
                          model_config=dict(mode="multiclass_classification", task_level="graph", return_type="raw"))
    with eval_mode(learner), frozen(learner), _seeded(seed, pos.device):
        target = _target(learner, pos, batch, class_index)
        explanation = explainer(pos, radius_graph(pos, radius), target=target, pos=pos, batch=batch)
    return explanation.node_mask.reshape(-1).detach().cpu().numpy().astype(np.float32)


def _check_points(points: Tensor) -> Tensor:
    if not isinstance(points, Tensor) or points.dim() != 2 or points.shape[1] != 3 or len(points) == 0:
        got = tuple(points.shape) if isinstance(points, Tensor) else type(points).__name__
        raise ValueError(f"point_importance: points must be one cloud, a float tensor of shape (P, 3); got {got!r}. "
                         "For a batch (B, P, 3) explain one cloud at a time: points[b].")
    return points.detach().float()


def _target(learner: nn.Module, pos: Tensor, batch: Tensor, class_index: int) -> Tensor:
    with torch.no_grad():
        logits = learner(pos, batch, x=pos)
    n_classes = logits.shape[-1]
    if not 0 <= int(class_index) < n_classes:
        raise ValueError(f"point_importance: class_index must be in 0..{n_classes - 1} for this learner; "
                         f"got {class_index!r}")
    return torch.tensor([int(class_index)], device=pos.device)


@contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed the generator of ``device`` inside, and give back the caller's random state afterwards."""
    cuda = device.type == "cuda"
    with torch.random.fork_rng(devices=[device] if cuda else []):
        torch.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        yield
