"""The geometric learner of paper 000: four point-cloud convolution stages, three FC layers.

Each stage (paper section 2.2, Fig. 2b) is

1. graph generation: :func:`gliotype.nn.radius_graph` with the stage's radius (0.25, 0.5, 0.75, 1.0 for
   clouds scaled into ``[-1, 1]``), at most ``max_neighbors`` nearest neighbours per point, no self-loops;
2. graph convolution: NNConv (paper eq. 3, ``x_i' = W x_i + sum_j x_j . h(e_ij)``, PyG's
   :class:`~torch_geometric.nn.NNConv`), whose edge network ``h`` maps the edge feature
   ``e_ij = pos_j - pos_i`` (source ``j``, target ``i``: PyG stores an edge as ``[j; i]``) through
   ``Linear(3, edge_hidden) - BatchNorm1d - ReLU - Linear(edge_hidden, in * out)`` to an ``in x out``
   weight matrix; then BatchNorm1d + ReLU on the nodes. It is computed by :class:`FactorizedNNConv`, an
   NNConv subclass with the same parameters and the same result that never builds the per-edge matrices;
3. pooling: :func:`gliotype.nn.fps` keeps half of each example's points (random start point in training,
   the first point in eval mode, so that eval is deterministic).

A global max pool over the 32 remaining points of each cloud feeds three FC layers; the ``latent``-d
(128) vector before the last one is the latent of the collaborative KL loss (paper eq. 2).

Choices the paper leaves open (recorded here):

* Aggregation ``"add"`` (default): eq. 3 is a sum, and PyG's NNConv default is ``"add"``. A sum lets a
  node see how many neighbours it has inside the radius, which is geometry (local curvature and
  density of the surface); with at most 32 neighbours the scale stays bounded and the BatchNorm after
  the convolution absorbs it. ``aggr="mean"`` is available.
* Widths ``channels=(32, 64, 64, 128)``, ``edge_hidden=32``, ``max_neighbors=32`` (the first four widths of
  the same authors' later geometric encoder, paper 001). Throughput target (``benchmarks/bench_pointgnn.py``):
  >= 20 clouds/s for a training step, 512 points, batch 8, 2 CPU cores. On tumour-like clouds most
  points reach the 32-neighbour cap (12, 22, 26, 23 edges per point in stages 1-4), and PyG's NNConv
  message passing, which builds an ``in x out`` matrix per edge (about 300 M floats per forward pass at
  these widths), trained at 4.7 clouds/s (2.5 on one thread); on one thread 16-32-32-64 gave 10,
  16-16-32-32 gave 17 and 8-16-16-32 gave 36 clouds/s, so stages about 8-16-16-32 wide would have been
  needed to meet the target. :class:`FactorizedNNConv` computes the same sums without those
  matrices: 60 clouds/s training (43 on one thread) and 73 clouds/s inference (2-core AMD EPYC VM,
  torch 2.13, load average 1.4), so the wider stages are kept.
* Dropout ``0.3`` after the first FC layer (FC - ReLU - Dropout - FC - ReLU = latent - head).
* BatchNorm lags in eval mode early in training: the node BatchNorms see pre-activations whose scale
  grows quickly during the first few dozen Adam steps (the convolutions are scale-free before a
  BatchNorm), so their running statistics trail and eval-mode predictions can be constant until they
  catch up (40-50 steps of batch 8 at lr 1e-3 in the planted-signal test). Train-mode outputs are
  right all along; early stopping should not start counting before then.

Node features: the first stage takes ``x`` (default: the coordinates themselves, paper: "node features
(euclidean coordinates of points)") while the graph is always built from ``pos``. A GNNExplainer-style
wrapper can therefore multiply ``x`` by a learned node mask without changing the graph.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch_geometric.nn import NNConv, global_max_pool

from gliotype.nn.fps import fps
from gliotype.nn.graph import radius_graph

__all__ = ["FactorizedNNConv", "GeometricLearner", "PointConvStage", "flatten_clouds"]

_AGGRS = ("add", "mean", "max")


def flatten_clouds(points: Tensor) -> tuple[Tensor, Tensor]:
    """Concatenate equally sized clouds into PyG's batched form.

    Args:
        points: ``B`` clouds of ``P`` points each.

    Returns:
        ``(pos, batch)``: all points, and the example id of each point (sorted).

    Shapes:
        - points: ``(B, P, D)``
        - pos: ``(B * P, D)``
        - batch: ``(B * P,)``, ``batch[b * P + p] == b``
    """
    if points.dim() != 3:
        raise ValueError(f"flatten_clouds expects points of shape (B, P, D); got shape {tuple(points.shape)}")
    n_clouds, n_points, dim = points.shape
    batch = torch.arange(n_clouds, device=points.device).repeat_interleave(n_points)
    return points.reshape(n_clouds * n_points, dim), batch


class FactorizedNNConv(NNConv):
    """:class:`~torch_geometric.nn.NNConv` computed without a weight matrix per edge (same parameters, same result).

    NNConv's edge network ends with a Linear layer, ``h(e) = W2 g(e) + b2`` reshaped to ``(in, out)``, and
    its sum aggregation is linear in that layer, so the sum over the neighbours ``j`` of ``i`` factorises::

        sum_j x_j^T Theta(e_ij) = sum_{a,k} M_i[a, k] W2[(a, o), k] + S_i^T B2,
        M_i = sum_j x_j g(e_ij)^T  (in x hidden),   S_i = sum_j x_j  (in)

    ``M`` is one batched product over a padded neighbour table (``N x K x in`` and ``N x K x hidden``, ``K``
    the largest degree), then one ``(N, in * hidden) @ (in * hidden, out)`` product. PyG's NNConv builds an
    ``in x out`` matrix for every edge instead (``E x hidden x in x out`` multiply-adds and ``E x in x out``
    floats); for clouds of 512 points at widths 32-64-64-128 this form trains about 13x faster.
    ``aggr="mean"`` divides by the degree (0 for isolated nodes, as PyG). ``aggr="max"`` does not
    factorise; it, bipartite inputs, ``size`` and ``flow="target_to_source"`` fall back to NNConv's own
    message passing.

    Shapes:
        x: (N, in_channels), edge_index: (2, E) as [source; target], edge_attr: (E, edge_dim)
        -> (N, out_channels)
    """

    def __init__(self, in_channels: int, out_channels: int, nn: nn.Sequential, aggr: str = "add", **kwargs):
        if not isinstance(nn[-1], torch.nn.Linear) or nn[-1].out_features != in_channels * out_channels:
            raise ValueError(f"FactorizedNNConv: the edge network must end with Linear(hidden, in * out) = "
                             f"Linear(hidden, {in_channels * out_channels}); got {nn[-1]!r}")
        super().__init__(in_channels, out_channels, nn=nn, aggr=aggr, **kwargs)

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor, size=None) -> Tensor:  # noqa: D102
        if self.aggr not in ("add", "mean") or not isinstance(x, Tensor) or size is not None \
                or self.flow != "source_to_target":
            return super().forward(x, edge_index, edge_attr, size)
        source, target = edge_index
        hidden = self.nn[:-1](edge_attr)  # (E, H): the edge network up to its last Linear
        x_nb, h_nb, degree = _neighbour_table(x[source], hidden, target, x.shape[0])
        moment = torch.bmm(x_nb.transpose(1, 2), h_nb)  # (N, in, H)
        last = self.nn[-1]
        w = last.weight.view(self.in_channels_l, self.out_channels, -1).transpose(1, 2)  # (in, H, out)
        out = moment.reshape(x.shape[0], -1) @ w.reshape(-1, self.out_channels)
        if last.bias is not None:
            out = out + x_nb.sum(1) @ last.bias.view(self.in_channels_l, self.out_channels)
        if self.aggr == "mean":
            out = out / degree.clamp(min=1).to(out.dtype)[:, None]
        if self.root_weight:
            out = out + self.lin(x)
        return out if self.bias is None else out + self.bias


def _neighbour_table(x_src: Tensor, h: Tensor, target: Tensor, n: int) -> tuple[Tensor, Tensor, Tensor]:
    """Edge rows grouped by target into zero-padded tables.

    Shapes:
        x_src: (E, C), h: (E, H), target: (E,) -> (N, K, C), (N, K, H), degree (N,), K = max degree
    """
    degree = torch.bincount(target, minlength=n)
    k = int(degree.max()) if target.numel() else 0
    order = torch.argsort(target, stable=True)
    target = target[order]
    slot = torch.arange(target.numel(), device=target.device) - (torch.cumsum(degree, 0) - degree)[target]
    x_nb = x_src.new_zeros(n, k, x_src.shape[1])
    h_nb = h.new_zeros(n, k, h.shape[1])
    x_nb = x_nb.index_put((target, slot), x_src[order])
    h_nb = h_nb.index_put((target, slot), h[order])
    return x_nb, h_nb, degree


class PointConvStage(nn.Module):
    """One point-cloud convolution: radius graph, NNConv, BatchNorm + ReLU, farthest point sampling.

    Args:
        in_channels: node features in.
        out_channels: node features out.
        radius: neighbourhood radius of the graph.
        ratio: fraction of each example's points kept by farthest point sampling.
        max_neighbors: nearest neighbours kept per point within the radius.
        edge_hidden: hidden width of the edge network.
        aggr: NNConv aggregation (``"add"``, ``"mean"`` or ``"max"``).

    Shapes:
        x: (N, in_channels), pos: (N, 3), batch: (N,) -> x: (M, out_channels), pos: (M, 3), batch: (M,)
        with ``M = sum_b ceil(ratio * n_b)``.
    """

    def __init__(self, in_channels: int, out_channels: int, radius: float, ratio: float = 0.5,
                 max_neighbors: int = 32, edge_hidden: int = 32, aggr: str = "add"):
        super().__init__()
        self.radius, self.ratio, self.max_neighbors = float(radius), float(ratio), int(max_neighbors)
        edge_net = nn.Sequential(nn.Linear(3, edge_hidden), nn.BatchNorm1d(edge_hidden), nn.ReLU(inplace=True),
                                 nn.Linear(edge_hidden, in_channels * out_channels))
        self.conv = FactorizedNNConv(in_channels, out_channels, nn=edge_net, aggr=aggr)
        self.norm = nn.BatchNorm1d(out_channels)

    def forward(self, x: Tensor, pos: Tensor, batch: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        edge_index = radius_graph(pos, self.radius, batch, loop=False, max_num_neighbors=self.max_neighbors)
        source, target = edge_index
        x = torch.relu(self.norm(self.conv(x, edge_index, pos[source] - pos[target])))
        keep = fps(pos, batch, self.ratio, random_start=self.training)
        return x[keep], pos[keep], batch[keep]


class GeometricLearner(nn.Module):
    """Point-cloud GNN with a ``latent``-d (128) latent before its last FC layer.

    Args:
        in_channels: node features of the first stage (3: the coordinates).
        n_classes: output classes.
        radii: graph radius of each stage (one stage per radius; paper: 0.25, 0.5, 0.75, 1.0).
        channels: output width of each stage (same length as ``radii``).
        ratio: fraction of points kept by farthest point sampling after each stage (paper: 0.5).
        max_neighbors: nearest neighbours kept per point within the radius.
        edge_hidden: hidden width of NNConv's edge network.
        latent: size of the latent (paper: 128).
        dropout: dropout after the first FC layer.
        aggr: NNConv aggregation; ``"add"`` is paper eq. 3.

    Shapes:
        pos: (N, 3) with batch (N,) sorted example ids (``None``: one example), or (B, P, 3) with
        ``batch=None``; x: (N, in_channels) or (B, P, in_channels), default ``pos``
        -> logits (B, n_classes); :meth:`encode` gives the latent (B, latent).

    Example:
        >>> net = GeometricLearner().eval()
        >>> net(torch.rand(2, 512, 3) * 2 - 1).shape
        torch.Size([2, 2])
    """

    def __init__(self, in_channels: int = 3, n_classes: int = 2, radii: Sequence[float] = (0.25, 0.5, 0.75, 1.0),
                 channels: Sequence[int] = (32, 64, 64, 128), ratio: float = 0.5, max_neighbors: int = 32,
                 edge_hidden: int = 32, latent: int = 128, dropout: float = 0.3, aggr: str = "add"):
        super().__init__()
        _check_config(radii, channels, ratio, aggr)
        self.in_channels = int(in_channels)
        widths = [self.in_channels, *channels]
        self.stages = nn.ModuleList(
            PointConvStage(w_in, w_out, r, ratio, max_neighbors, edge_hidden, aggr)
            for w_in, w_out, r in zip(widths[:-1], widths[1:], radii))
        self.fc = nn.Sequential(nn.Linear(widths[-1], 2 * latent), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                nn.Linear(2 * latent, latent), nn.ReLU(inplace=True))
        self.head = nn.Linear(latent, n_classes)

    def encode(self, pos: Tensor, batch: Tensor | None = None, x: Tensor | None = None) -> Tensor:
        """The latent, (B, latent): the input of :attr:`head`. Arguments as :meth:`forward`."""
        pos, batch, x = self._inputs(pos, batch, x)
        n_graphs = int(batch[-1]) + 1 if batch.numel() else 0
        for stage in self.stages:
            x, pos, batch = stage(x, pos, batch)
        return self.fc(global_max_pool(x, batch, size=n_graphs))

    def forward(self, pos: Tensor, batch: Tensor | None = None, x: Tensor | None = None) -> Tensor:
        """Logits, (B, n_classes).

        Args:
            pos: point coordinates, (N, 3) or (B, P, 3); the graphs are built from these.
            batch: sorted example id of each point, (N,); ``None``: one example, or ``B`` from (B, P, 3).
            x: node features of the first stage, (N, in_channels) or (B, P, in_channels); default ``pos``.
        """
        return self.head(self.encode(pos, batch, x))

    def _inputs(self, pos: Tensor, batch: Tensor | None, x: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        if pos.dim() == 3:
            if batch is not None:
                raise ValueError("GeometricLearner: pos of shape (B, P, 3) carries its own batch; pass batch=None, "
                                 f"or pos of shape (N, 3) with batch (N,). Got batch of shape {tuple(batch.shape)}")
            pos, batch = flatten_clouds(pos)
            x = x.reshape(pos.shape[0], -1) if x is not None and x.dim() == 3 else x
        if pos.dim() != 2 or pos.shape[1] != 3:
            raise ValueError(f"GeometricLearner: pos must have shape (N, 3) or (B, P, 3); got {tuple(pos.shape)}")
        if batch is None:
            batch = torch.zeros(pos.shape[0], dtype=torch.long, device=pos.device)
        x = pos if x is None else x
        if x.shape != (pos.shape[0], self.in_channels):
            raise ValueError(f"GeometricLearner: x must have shape (N, in_channels) = ({pos.shape[0]}, "
                             f"{self.in_channels}) to match pos {tuple(pos.shape)}; got {tuple(x.shape)}")
        return pos, batch, x


def _check_config(radii: Sequence[float], channels: Sequence[int], ratio: float, aggr: str) -> None:
    if len(radii) != len(channels) or not radii:
        raise ValueError(f"GeometricLearner: radii and channels give one value per stage and must have the same "
                         f"(non-zero) length; got radii={tuple(radii)!r}, channels={tuple(channels)!r}")
    if any(r <= 0 for r in radii):
        raise ValueError(f"GeometricLearner: every radius must be > 0; got radii={tuple(radii)!r}")
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"GeometricLearner: ratio must be in (0, 1]; got ratio={ratio!r}")
    if aggr not in _AGGRS:
        raise ValueError(f"GeometricLearner: aggr must be one of {_AGGRS}; got aggr={aggr!r}")
