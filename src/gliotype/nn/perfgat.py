"""The network of the simplified ``perfgat`` baseline: graph attention over a parcellation of the tumour.

PerfGAT (Yan et al., MICCAI 2024; HiPerfGNN's ref. 29) reads DSC perfusion curves averaged over the regions
of a brain atlas. Here each node is one parcel of a fixed grid (see :mod:`gliotype.methods.perfgat`); its
feature vector is the parcel's mean perfusion curve (resampled to a fixed length) and its tumour-voxel
fraction. The network: a linear input layer, two :class:`~torch_geometric.nn.GATConv` layers (multi-head
attention averaged over heads, ``concat=False``) each followed by ELU and dropout, a global mean pool over
each patient's nodes and a linear classifier.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch_geometric.nn import GATConv, global_mean_pool

__all__ = ["PerfGATNet", "batch_graphs", "graph_count"]


class PerfGATNet(nn.Module):
    """Graph attention classifier of parcel graphs, one graph per patient.

    Args:
        in_features: node feature size (curve length + 1 for the tumour-voxel fraction).
        n_classes: output classes.
        hidden: width of every layer.
        heads: attention heads of each GATConv (averaged, so the width stays ``hidden``).
        layers: number of GATConv layers (2 in the simplified baseline).
        dropout: dropout after each GATConv and on the attention coefficients.

    Shapes:
        x: (N, in_features) nodes of all graphs of the batch, edge_index: (2, E) long, batch: (N,) long,
        graph index of each node, sorted -> logits (B, n_classes), B = ``n_graphs`` or ``batch.max() + 1``.
    """

    def __init__(self, in_features: int, n_classes: int, hidden: int = 64, heads: int = 4, layers: int = 2,
                 dropout: float = 0.3):
        super().__init__()
        self.embed = nn.Linear(in_features, hidden)
        self.convs = nn.ModuleList(GATConv(hidden, hidden, heads=heads, concat=False, dropout=dropout)
                                   for _ in range(layers))
        self.dropout = dropout
        self.head = nn.Linear(hidden, n_classes)

    def encode(self, x: Tensor, edge_index: Tensor) -> Tensor:
        """Node embeddings (N, hidden) after the GAT layers."""
        h = F.elu(self.embed(x))
        for conv in self.convs:
            h = F.dropout(F.elu(conv(h, edge_index)), self.dropout, self.training)
        return h

    def forward(self, x: Tensor, edge_index: Tensor, batch: Tensor, n_graphs: int | None = None) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.embed.in_features:
            raise ValueError(f"PerfGATNet expects node features of shape (N, {self.embed.in_features}); "
                             f"got {tuple(x.shape)} (is curve_length the one the network was built with?)")
        pooled = global_mean_pool(self.encode(x, edge_index), batch, n_graphs)
        return self.head(pooled)


def graph_count(batch: Tensor) -> int:
    """Number of graphs in a sorted batch vector (its last entry + 1; 0 when empty)."""
    return int(batch[-1]) + 1 if batch.numel() else 0



def batch_graphs(items: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Join one graph per patient into one disconnected graph, as :class:`torch_geometric.data.Batch` does.

    Each item holds ``x`` (N_i, F) and ``edge_index`` (2, E_i) indexing its own nodes; the edges of item
    ``i`` are shifted by the number of nodes before it, and ``batch`` names each node's item.

    Shapes:
        returns ``x`` (sum N_i, F), ``edge_index`` (2, sum E_i) long, ``batch`` (sum N_i,) long.
    """
    sizes = torch.tensor([len(it["x"]) for it in items])
    starts = torch.cumsum(sizes, 0) - sizes
    edge_index = torch.cat([it["edge_index"] + int(s) for it, s in zip(items, starts)], dim=1)
    batch = torch.repeat_interleave(torch.arange(len(items)), sizes)
    return {"x": torch.cat([it["x"] for it in items]), "edge_index": edge_index, "batch": batch}
