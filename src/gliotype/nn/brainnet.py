"""The encoders and the hierarchical attention of paper 001 (tumour image, tumour geometry, brain network).

Paper numbers:

* image encoder: five 3-D conv blocks (3x3x3 conv, BatchNorm, ReLU, 2x max-pool), widths 64-128-128-256-256,
  then FC 512-256-32;
* geometric encoder: five point-cloud convolution stages (radii 0.2, 0.4, 0.6, 0.8, 1.0, widths
  32-64-64-128-128, half of the points kept by farthest point sampling after each), then FC 256-128-32;
  it yields an attention per point;
* edge attention (eq. 2): the mean attention of the tumour points inside each white-matter pathway;
  the brain network's edge attributes are multiplied by it (``x^B' = x^B * a^E``);
* brain-network encoder: six GAT layers (64-128-128-256-256-256) over the 90-region network with 16-d
  node and edge attributes, FC 512-256-32; node attention (eq. 3) is the cosine similarity between the
  projected node embeddings ``g^Na(e^N_n)`` and the tumour latent.

Our choices (recorded here):

* Adaptive average pooling to 1^3 before the image FC layers, so 32^3 crops work (five pools: 32 -> 1).
* The paper does not say how the geometric encoder pools its last points or gets point attentions.
  We use global attention pooling: a gate ``Linear(C, 1)`` whose softmax over each cloud's remaining
  points weights their sum; the gate of those points is carried back to every ORIGINAL point by
  inverse-squared-distance interpolation over its 3 nearest remaining points (PyG's ``knn_interpolate``,
  written here with a batched distance matrix because it needs torch-cluster), then divided by the
  cloud's maximum so attentions lie in ``[0, 1]`` with a maximum of 1 per cloud. All differentiable.
* Dropout 0.3 after each hidden FC layer; ReLU between FC layers, none on the 32-d outputs.
* GAT layers: one head, ``edge_dim`` attributes in the attention, PyG's self-loops (their attribute is the
  mean of the node's incoming ones), each followed by ReLU. Undirected pathways are given once and used in
  both directions; graphs are batched by offsetting node indices.
* Node attention weights the node embeddings (cosines may be negative) before a mean over the nodes.
* GATConv uses edge attributes only in its attention coefficients, never in its messages, so a signal
  carried by the pathways alone (white-matter disruption away from the tumour, with normal grey-matter
  regions) cannot reach the node embeddings through it: on a synthetic cohort whose label lives only in
  the pathways the encoder stayed at chance (AUC 0.47) while a linear model on the same edge attributes
  reached 0.86-0.96. Each node's input is therefore its own attributes concatenated with the mean of its
  incident pathways' (attention-weighted) attributes, computed by a message-passing layer
  (:class:`IncidentEdgeMean`) so that GNNExplainer's edge masks act on it too.
* The mean over the nodes forgets which region and which pathway carried a value; with that alone the
  encoder reached AUC 0.55-0.61 on the cohort above. Two additions (both on by default, ``0`` turns each
  off and gives the paper's encoder, a function of the graph alone):
  a learnt embedding of each region's identity (AAL label) joins its node input, and each pathway's
  attended attributes are projected to ``pathway_dim`` values (one projection shared by all pathways,
  :class:`PathwayReadout`, a message-passing layer so that GNNExplainer masks it too) and mapped,
  in pathway order, by one linear layer onto the latent, added to the FC output of the pooled nodes.
  Same cohort, same cached networks, 80 training patients: identity 0.69, pathway readout 0.88, both
  0.94-0.98 (a linear model on the flattened pathway attributes: 0.97-0.99); the whole method, 5-fold,
  0.877 [0.807, 0.934] (README).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch_geometric.nn import GATConv, MessagePassing
from torch_geometric.utils import softmax

from gliotype.nn._blocks import batched_pairwise_dist
from gliotype.nn.cnn3d import conv_blocks
from gliotype.nn.graph import check_edge_index
from gliotype.nn.netgen import mlp
from gliotype.nn.pointgnn import PointConvStage, flatten_clouds

__all__ = ["AttentiveGeometricEncoder", "BrainNetworkEncoder", "ImageEncoder", "ProjectionHead", "edge_attention"]


def _fc_head(in_dim: int, dims: Sequence[int], dropout: float) -> nn.Sequential:
    """``Linear - ReLU - Dropout`` for each hidden width, then a plain ``Linear`` to ``dims[-1]``."""
    layers: list[nn.Module] = []
    for width in dims[:-1]:
        layers += [nn.Linear(in_dim, width), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        in_dim = width
    return nn.Sequential(*layers, nn.Linear(in_dim, dims[-1]))


class ImageEncoder(nn.Module):
    """3-D CNN of the tumour image: conv blocks, global average pooling, FC layers.

    Args:
        in_channels: MRI sequences (4).
        channels: widths of the conv blocks (paper: 64, 128, 128, 256, 256); each halves the grid.
        fc: FC widths (paper: 512, 256, 32); the last is the output size.
        dropout: dropout after each hidden FC layer.

    Shapes:
        x: (B, in_channels, X, Y, Z), each side >= 2 ** len(channels) (32 for the paper) -> (B, fc[-1])
    """

    def __init__(self, in_channels: int = 4, channels: Sequence[int] = (64, 128, 128, 256, 256),
                 fc: Sequence[int] = (512, 256, 32), dropout: float = 0.3):
        super().__init__()
        self.conv = conv_blocks(in_channels, channels)
        prev = channels[-1]
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.fc = _fc_head(prev, fc, dropout)
        self.min_side = 2 ** len(channels)

    @property
    def last_conv(self) -> nn.Module:
        """The last conv block's ReLU, before its max-pool (Grad-CAM's layer)."""
        return self.conv[-2]

    def forward(self, x: Tensor) -> Tensor:
        """The image latent, (B, fc[-1])."""
        if x.dim() != 5 or min(x.shape[2:]) < self.min_side:
            raise ValueError(f"ImageEncoder: x must have shape (B, C, X, Y, Z) with every side >= {self.min_side} "
                             f"({len(self.conv) // 4} 2x poolings); got {tuple(x.shape)}. Crop or resample larger.")
        return self.fc(self.pool(self.conv(x)).flatten(1))


class AttentiveGeometricEncoder(nn.Module):
    """Point-cloud encoder of the tumour geometry with global attention pooling and per-point attention.

    Args:
        radii: graph radius of each stage (paper: 0.2, 0.4, 0.6, 0.8, 1.0 for clouds in ``[-1, 1]``).
        channels: width of each stage (paper: 32, 64, 64, 128, 128).
        fc: FC widths after pooling (paper: 256, 128, 32).
        ratio: fraction of points kept after each stage (paper: 0.5).
        max_neighbors: nearest neighbours kept per point within the radius.
        edge_hidden: hidden width of each stage's edge network.
        dropout: dropout after each hidden FC layer.
        k: remaining points interpolated to carry the gate back to each original point.

    Shapes:
        pos: (B, P, 3) -> u (B, fc[-1]), attention (B, P) in [0, 1] with max 1 per cloud
    """

    def __init__(self, radii: Sequence[float] = (0.2, 0.4, 0.6, 0.8, 1.0),
                 channels: Sequence[int] = (32, 64, 64, 128, 128),
                 fc: Sequence[int] = (256, 128, 32), ratio: float = 0.5, max_neighbors: int = 32, edge_hidden: int = 32,
                 dropout: float = 0.3, k: int = 3):
        super().__init__()
        if len(radii) != len(channels) or not radii:
            raise ValueError(f"AttentiveGeometricEncoder: radii and channels give one value per stage and must have "
                             f"the same non-zero length; got radii={tuple(radii)!r}, channels={tuple(channels)!r}")
        widths = [3, *channels]
        self.stages = nn.ModuleList(PointConvStage(w_in, w_out, r, ratio, max_neighbors, edge_hidden)
                                    for w_in, w_out, r in zip(widths[:-1], widths[1:], radii))
        self.gate = nn.Linear(widths[-1], 1)
        self.fc = _fc_head(widths[-1], fc, dropout)
        self.k = int(k)

    def forward(self, pos: Tensor) -> tuple[Tensor, Tensor]:
        """The geometry latent (B, fc[-1]) and the attention of every input point (B, P)."""
        if pos.dim() != 3 or pos.shape[-1] != 3 or pos.shape[1] < 1:
            raise ValueError(f"AttentiveGeometricEncoder: pos must have shape (B, P, 3); got {tuple(pos.shape)}")
        n_clouds = pos.shape[0]
        p, batch = flatten_clouds(pos)
        x = p
        for stage in self.stages:
            x, p, batch = stage(x, p, batch)
        gate = softmax(self.gate(x).squeeze(-1), batch, num_nodes=x.shape[0])  # (M,), sums to 1 per cloud
        pooled = x.new_zeros(n_clouds, x.shape[1]).index_add(0, batch, gate[:, None] * x)
        attention = self._carry_back(pos, p.view(n_clouds, -1, 3), gate.view(n_clouds, -1))
        return self.fc(pooled), attention

    def _carry_back(self, pos: Tensor, kept: Tensor, gate: Tensor) -> Tensor:
        """Inverse-squared-distance kNN interpolation of ``gate`` onto ``pos``, over the cloud's max.

        Shapes:
            pos: (B, P, 3), kept: (B, M, 3), gate: (B, M) -> (B, P)
        """
        d2 = batched_pairwise_dist(pos.detach(), kept.detach())  # (B, P, M)
        k = min(self.k, kept.shape[1])
        dist, idx = torch.topk(d2, k, dim=-1, largest=False)  # (B, P, k)
        weight = 1.0 / dist.clamp_min(1e-16)
        values = gate.gather(1, idx.flatten(1)).view_as(idx)
        attention = (weight * values).sum(-1) / weight.sum(-1)
        return attention / attention.amax(dim=1, keepdim=True)


class ProjectionHead(nn.Module):
    """MLP with ReLU between its layers (none after the last), e.g. ``(32, 64, 128, 128)``.

    Shapes:
        (..., dims[0]) -> (..., dims[-1])
    """

    def __init__(self, dims: Sequence[int]):
        super().__init__()
        self.net = mlp(dims)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return self.net(x)


def edge_attention(point_attention: Tensor, point_edges: Tensor, n_edges: int, floor: float = 0.0) -> Tensor:
    """Paper eq. 2: each pathway's attention is the mean attention of the tumour points inside it.

    Args:
        point_attention: attention of every point of every example.
        point_edges: one row ``(example, point, edge)`` per point lying in a pathway (a point may lie in
            several pathways, a pathway hold several points).
        n_edges: pathways per example.
        floor: attention of a pathway that holds no point.

    Returns:
        The edge attention, differentiable w.r.t. ``point_attention``.

    Shapes:
        point_attention: (B, P), point_edges: (K, 3) long -> (B, n_edges)
    """
    n_examples, n_points = point_attention.shape
    if point_edges.dim() != 2 or point_edges.shape[1] != 3:
        raise ValueError("edge_attention: point_edges must have shape (K, 3), rows (example, point, edge); "
                         f"got {tuple(point_edges.shape)}")
    example, point, edge = point_edges.long().unbind(1)
    for name, values, size in (("example", example, n_examples), ("point", point, n_points), ("edge", edge, n_edges)):
        if values.numel() and (int(values.min()) < 0 or int(values.max()) >= size):
            raise ValueError(f"edge_attention: {name} indices in point_edges must lie in [0, {size}); got the range "
                             f"[{int(values.min())}, {int(values.max())}]")
    slot = example * n_edges + edge
    total = point_attention.new_zeros(n_examples * n_edges).index_add(0, slot, point_attention[example, point])
    count = torch.bincount(slot, minlength=n_examples * n_edges)
    mean = total / count.clamp_min(1).to(total.dtype)
    return torch.where(count > 0, mean, mean.new_tensor(float(floor))).view(n_examples, n_edges)


class IncidentEdgeMean(MessagePassing):
    """Mean of the attributes of the edges arriving at each node (0 for a node without edges).

    Shapes:
        x: (N, F) (only its length is used), edge_index: (2, M), edge_attr: (M, D) -> (N, D)
    """

    def __init__(self):
        super().__init__(aggr="mean")

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor:  # noqa: D102
        return self.propagate(edge_index, edge_attr=edge_attr, size=(x.shape[0], x.shape[0]))

    def message(self, edge_attr: Tensor) -> Tensor:  # noqa: D102
        return edge_attr


class PathwayReadout(MessagePassing):
    """Each directed edge's own attributes projected to ``k`` values, one row per edge (no aggregation).

    A message-passing layer, so that GNNExplainer's edge masks scale its rows like every other message.

    Shapes:
        x: (N, F) (only its length is used), edge_index: (2, M), edge_attr: (M, D) -> (M, k)
    """

    def __init__(self, edge_dim: int, k: int):
        super().__init__(aggr="sum")
        self.lin = nn.Linear(edge_dim, k)

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor:  # noqa: D102
        return self.propagate(edge_index, edge_attr=edge_attr, size=(x.shape[0], x.shape[0]))

    def message(self, edge_attr: Tensor) -> Tensor:  # noqa: D102
        return self.lin(edge_attr)

    def aggregate(self, inputs: Tensor, index: Tensor, ptr: Tensor | None = None,
                  dim_size: int | None = None) -> Tensor:  # noqa: D102
        return inputs


class BrainNetworkEncoder(nn.Module):
    """GAT encoder of the brain network with edge attention (attributes) and node attention (pooling).

    Args:
        node_dim: node attribute size (16, from the generator).
        edge_dim: edge attribute size (16).
        channels: widths of the GAT layers (paper: 64, 128, 128, 256, 256, 256).
        fc: FC widths after pooling (paper: 512, 256, 32).
        attention_dim: size of the tumour latent that node attention compares with (128).
        dropout: dropout after each hidden FC layer.
        n_nodes: regions per network (90); with ``identity_dim`` > 0 each region's input also carries a
            learnt embedding of which region it is.
        n_edges: pathways per network; with ``pathway_dim`` > 0 each pathway's (attended) attributes are also
            projected to ``pathway_dim`` values, mapped in pathway order by a linear layer onto the latent.
        identity_dim, pathway_dim: 0 turns the addition off (the paper's encoder).

    Shapes:
        node_attr: (B, N, node_dim), edge_attr: (B, E, edge_dim), edge_index: (2, E) undirected pairs,
        edge_attention: (B, E) or None, tumour_latent: (B, attention_dim) or None
        -> u_B (B, fc[-1]), node_attention (B, N) or None
    """

    def __init__(self, node_dim: int = 16, edge_dim: int = 16, channels: Sequence[int] = (64, 128, 128, 256, 256, 256),
                 fc: Sequence[int] = (512, 256, 32), attention_dim: int = 128, dropout: float = 0.3, *,
                 n_nodes: int | None = None, n_edges: int | None = None, identity_dim: int = 16,
                 pathway_dim: int = 1):
        super().__init__()
        self.n_nodes = int(n_nodes) if n_nodes and identity_dim else None
        self.n_edges = int(n_edges) if n_edges and pathway_dim else None
        self.identity = nn.Embedding(self.n_nodes, identity_dim) if self.n_nodes else None
        self.pathways = PathwayReadout(edge_dim, pathway_dim) if self.n_edges else None
        widths = [int(node_dim) + int(edge_dim) + (identity_dim if self.identity else 0), *channels]
        self.node_dim, self.edge_dim, self.attention_dim = int(node_dim), int(edge_dim), int(attention_dim)
        self.incident = IncidentEdgeMean()
        self.convs = nn.ModuleList(GATConv(w_in, w_out, heads=1, edge_dim=edge_dim)
                                   for w_in, w_out in zip(widths[:-1], widths[1:]))
        self.node_head = ProjectionHead((widths[-1], 64, attention_dim, attention_dim))
        self.fc = _fc_head(widths[-1], fc, dropout)
        self.pathway_fc = nn.Linear(self.n_edges * pathway_dim, fc[-1]) if self.pathways else None

    def forward(self, node_attr: Tensor, edge_attr: Tensor, edge_index: Tensor, edge_attention: Tensor | None = None,
                tumour_latent: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """The brain-network latent (B, fc[-1]) and the node attention (B, N), ``None`` without a tumour latent."""
        x, directed, attr = self.batched_graph(node_attr, edge_attr, edge_index, edge_attention)
        return self.encode(x, directed, attr, node_attr.shape[0], tumour_latent)

    def encode(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor, n_graphs: int,
               tumour_latent: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """:meth:`forward` on PyG's batched form (see :meth:`batched_graph`), for PyG's ``Explainer``.

        Give the Explainer a module that holds this encoder as a submodule and calls this method, so that
        it finds the message-passing layers to mask.

        Shapes:
            x: (B * N, node_dim), edge_index: (2, B * 2E) directed, edge_attr: (B * 2E, edge_dim)
            -> (B, fc[-1]), (B, N) or None
        """
        embeddings = self.embed(x, edge_index, edge_attr).view(n_graphs, -1, self.convs[-1].out_channels)
        node_attention = None if tumour_latent is None else self.node_attention(embeddings, tumour_latent)
        if node_attention is not None:
            embeddings = embeddings * node_attention[..., None]
        latent = self.fc(embeddings.mean(dim=1))
        if self.pathways is not None:
            rows = self.pathways(x, edge_index, edge_attr).view(n_graphs, 2, self.n_edges, -1)  # both directions
            latent = latent + self.pathway_fc(rows.mean(1).flatten(1))
        return latent, node_attention

    def node_attention(self, embeddings: Tensor, tumour_latent: Tensor) -> Tensor:
        """Paper eq. 3: cosine of ``g^Na(e^N_n)`` and the tumour latent.

        Shapes:
            embeddings: (B, N, channels[-1]), tumour_latent: (B, attention_dim) -> (B, N)
        """
        if tumour_latent.shape != (embeddings.shape[0], self.attention_dim):
            raise ValueError(f"BrainNetworkEncoder: tumour_latent must have shape (B, attention_dim) = "
                             f"({embeddings.shape[0]}, {self.attention_dim}); got {tuple(tumour_latent.shape)}")
        return torch.cosine_similarity(self.node_head(embeddings), tumour_latent[:, None, :], dim=-1)

    def embed(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor:
        """Node embeddings after the GAT layers on PyG's batched form (no attention applied here).

        Shapes:
            x: (B * N, node_dim), edge_index: (2, M) directed, edge_attr: (M, edge_dim) -> (B * N, channels[-1])
        """
        parts = [x, self.incident(x, edge_index, edge_attr)]
        if self.identity is not None:
            parts.append(self.identity(torch.arange(x.shape[0], device=x.device) % self.n_nodes))
        x = torch.cat(parts, dim=-1)
        for conv in self.convs:
            x = torch.relu(conv(x, edge_index, edge_attr))
        return x

    def batched_graph(self, node_attr: Tensor, edge_attr: Tensor, edge_index: Tensor,
                       edge_attention: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """PyG's batched form: both directions of every pathway, example ``b``'s nodes offset by ``b * N``.

        Edge attributes are multiplied by ``edge_attention`` when given. Arguments as :meth:`forward`.

        Shapes:
            -> x (B * N, node_dim), edge_index (2, B * 2E) (per example: the E pathways, then reversed),
            edge_attr (B * 2E, edge_dim)
        """
        self._check(node_attr, edge_attr, edge_index, edge_attention)
        n_graphs, n_nodes, _ = node_attr.shape
        if edge_attention is not None:
            edge_attr = edge_attr * edge_attention[..., None]
        directed = torch.cat([edge_index, edge_index.flip(0)], dim=1)  # (2, 2E)
        offsets = torch.arange(n_graphs, device=node_attr.device) * n_nodes
        batched = (directed[:, None, :] + offsets[None, :, None]).reshape(2, -1)  # (2, B * 2E), example-major
        attr = torch.cat([edge_attr, edge_attr], dim=1).reshape(-1, edge_attr.shape[-1])
        return node_attr.reshape(n_graphs * n_nodes, -1), batched, attr

    def _check(self, node_attr: Tensor, edge_attr: Tensor, edge_index: Tensor, edge_attention: Tensor | None) -> None:
        name = "BrainNetworkEncoder"
        if node_attr.dim() != 3 or node_attr.shape[-1] != self.node_dim:
            raise ValueError(f"{name}: node_attr must have shape (B, N, {self.node_dim}); got {tuple(node_attr.shape)}")
        n_graphs, n_nodes, _ = node_attr.shape
        n_pathways = edge_index.shape[-1]
        for what, built, given in (("regions", self.n_nodes, n_nodes), ("pathways", self.n_edges, n_pathways)):
            if built is not None and given != built:
                raise ValueError(f"{name}: built for {built} {what} per network, given {given}; a network from "
                                 "another atlas needs a model trained on it")
        check_edge_index(edge_index, n_nodes, f"{name} (one column per undirected pathway)")
        expected = (n_graphs, edge_index.shape[1], self.edge_dim)
        if tuple(edge_attr.shape) != expected:
            raise ValueError(f"{name}: edge_attr must have shape (B, E, edge_dim) = {expected}; "
                             f"got {tuple(edge_attr.shape)}")
        if edge_attention is not None and tuple(edge_attention.shape) != expected[:2]:
            raise ValueError(f"{name}: edge_attention must have shape (B, E) = {expected[:2]} (or be None); "
                             f"got {tuple(edge_attention.shape)}")
