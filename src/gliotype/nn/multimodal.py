"""The multi-modal network of paper 001: three encoders, hierarchical attention, projection heads, an MLP head.

Encoders (any non-empty subset, for the paper's Table 4 ablations): the tumour image (3-D CNN), the
tumour geometry (point-cloud GNN with per-point attention) and the brain network (GAT). Hierarchical
attention (section 3.3): the geometric encoder's point attentions, averaged over the tumour points that
fall inside each pathway ROI, weight the brain network's edge attributes (eq. 2); the cosine similarity
of each node's projected embedding with the projected tumour features ``g^T(<u^I, u^P>)`` weights the
nodes in the global pooling (eq. 3). Projection heads (section 4.3): ``g^I, g^P, g^B`` 32-64-128-128 and
``g^T`` (32 x tumour encoders)-64-128-128, into the 128-d latent space of the bi-level contrastive loss.
The "MLP" of the paper's "+ MLP" rows is :attr:`MultiModal.head`: features-64-classes on the
concatenated 32-d features.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from gliotype.nn.brainnet import (AttentiveGeometricEncoder, BrainNetworkEncoder, ImageEncoder, ProjectionHead,
                                  edge_attention)

ENCODERS = ("image", "geometry", "network")
FEATURES = 32
LATENT = 128


class MultiModal(nn.Module):
    """Image, geometry and brain-network encoders with hierarchical attention.

    Args:
        encoders: which of ``"image"``, ``"geometry"``, ``"network"`` to build.
        n_classes: output classes of the MLP head.
        pairs: the brain network's pathways as (E, 2) 0-based region pairs (``network`` only).
        n_nodes: regions of the brain network (90, ``network`` only).
        region_identity, pathway_readout: the network encoder's region embedding size and values kept per
            pathway (see :class:`~gliotype.nn.brainnet.BrainNetworkEncoder`; 0 for the paper's encoder).
        image_channels: widths of the image CNN's five conv blocks (paper 64-128-128-256-256).
        gat_channels: widths of the GATConv layers (paper 64-128-128-256-256-256).
        max_neighbors: largest neighbourhood of the point-cloud radius graphs.
        attention: hierarchical attention on (needs ``network`` plus a tumour encoder to have an effect).
        edge_floor: edge attention of pathways crossed by no tumour point (paper: 0).
        dropout: dropout in the encoders' and the head's FC layers.

    Shapes:
        batch["image"]: (B, 4, S, S, S); batch["points"]: (B, P, 3); batch["node_attr"]: (B, 90, 16);
        batch["edge_attr"]: (B, E, 16); batch["point_edges"]: (K, 3) rows (example, point, pathway)
        -> :meth:`forward` gives a dict with ``logits`` (B, n_classes), ``features`` (B, 32 x encoders),
        ``u_*`` (B, 32) per encoder, ``z_*`` (B, 128) projections, and the attentions.
    """

    def __init__(self, encoders: Sequence[str], n_classes: int, pairs: Tensor | None = None,
                 n_nodes: int | None = None, *, region_identity: int = 16, pathway_readout: int = 1,
                 image_channels: Sequence[int] = (64, 128, 128, 256, 256),
                 gat_channels: Sequence[int] = (64, 128, 128, 256, 256, 256), max_neighbors: int = 32,
                 attention: bool = True, edge_floor: float = 0.0, dropout: float = 0.3):
        super().__init__()
        unknown = set(encoders) - set(ENCODERS)
        if not encoders or unknown:
            raise ValueError(f"MultiModal: encoders must be a non-empty subset of {ENCODERS}; got {tuple(encoders)}")
        self.encoders = tuple(e for e in ENCODERS if e in encoders)
        self.attention, self.edge_floor = bool(attention), float(edge_floor)
        tumour = [e for e in self.encoders if e != "network"]
        if "image" in self.encoders:
            self.image = ImageEncoder(4, tuple(image_channels), dropout=dropout)
            self.g_image = ProjectionHead((FEATURES, 64, LATENT, LATENT))
        if "geometry" in self.encoders:
            self.geometry = AttentiveGeometricEncoder(max_neighbors=max_neighbors, dropout=dropout)
            self.g_points = ProjectionHead((FEATURES, 64, LATENT, LATENT))
        if "network" in self.encoders:
            if pairs is None or n_nodes is None:
                raise ValueError("MultiModal: the network encoder needs the pathways' region pairs (E, 2) and the "
                                 "number of regions")
            self.register_buffer("edge_index", torch.as_tensor(pairs, dtype=torch.long).t().contiguous())
            self.network = BrainNetworkEncoder(channels=tuple(gat_channels), attention_dim=LATENT, dropout=dropout,
                                               n_nodes=n_nodes, n_edges=self.edge_index.shape[1],
                                               identity_dim=region_identity, pathway_dim=pathway_readout)
            self.g_brain = ProjectionHead((FEATURES, 64, LATENT, LATENT))
            if tumour:
                self.g_tumour = ProjectionHead((FEATURES * len(tumour), 64, LATENT, LATENT))
        width = FEATURES * len(self.encoders)
        self.head = nn.Sequential(nn.Linear(width, 64), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                  nn.Linear(64, n_classes))

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        tumour = []
        if "image" in self.encoders:
            out["u_image"] = self.image(batch["image"])
            out["z_image"] = self.g_image(out["u_image"])
            tumour.append(out["u_image"])
        if "geometry" in self.encoders:
            out["u_points"], out["point_attention"] = self.geometry(batch["points"])
            out["z_points"] = self.g_points(out["u_points"])
            tumour.append(out["u_points"])
        if tumour:
            out["u_tumour"] = torch.cat(tumour, dim=1)
        if "network" in self.encoders:
            if tumour:
                out["z_tumour"] = self.g_tumour(out["u_tumour"])
            edges = None
            if self.attention and "geometry" in self.encoders:
                edges = edge_attention(out["point_attention"], batch["point_edges"], self.edge_index.shape[1],
                                       floor=self.edge_floor)
                out["edge_attention"] = edges
            node_query = out.get("z_tumour") if self.attention else None
            out["u_brain"], node_attention = self.network(batch["node_attr"], batch["edge_attr"], self.edge_index,
                                                          edges, node_query)
            if node_attention is not None:
                out["node_attention"] = node_attention
            out["z_brain"] = self.g_brain(out["u_brain"])
        out["features"] = torch.cat([out[f"u_{k}"] for k in ("image", "points", "brain") if f"u_{k}" in out], dim=1)
        out["logits"] = self.head(out["features"])
        return out
