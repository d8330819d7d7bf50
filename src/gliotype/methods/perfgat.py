"""``perfgat``: paper 002's perfusion-only baseline (PerfGAT, its ref. 29), in simplified form.

PerfGAT averages the DSC time-intensity curves over the regions of a brain atlas (SRI24/TZO) and runs graph
attention over those regions. The atlas is not available here, so the tumour is cut by a **fixed grid of
cubic parcels** instead: the ``perfusion_input`` stage crops the tumour's bounding box (plus a margin) on the
DSC grid, and voxel ``v`` of that crop lies in parcel ``v // parcel_voxels``. Like an atlas, these boundaries
do not adapt to the tumour (the property HiPerfGNN criticises); unlike an atlas they carry no anatomy.

Graph of one patient (:func:`parcel_graph`, pure numpy):

* a node per parcel holding at least one tumour voxel, in lexicographic order of the parcel's grid index;
* node features: the mean curve of the parcel's tumour voxels, linearly resampled to ``curve_length``
  points (so patients with different numbers of time points share one network), and the parcel's
  tumour-voxel fraction (tumour voxels / ``parcel_voxels**3``);
* edges between parcels that share a face, an edge or a corner (26-neighbourhood), both directions.

Network: :class:`gliotype.nn.perfgat.PerfGATNet`. Training: :class:`TorchMethod`'s class-weighted
cross-entropy. Left out of the published PerfGAT: the atlas, the learnt temporal graph (edge attention and
negative graphs), the dual-attention fusion with local tumour features and the class-balanced recombining
augmentation.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from gliotype.methods.registry import register_method
from gliotype.methods.torch_method import TorchConfig, TorchMethod
from gliotype.nn.perfgat import PerfGATNet, batch_graphs, graph_count

NEIGHBOUR_OFFSETS = np.array([d for d in itertools.product((-1, 0, 1), repeat=3) if any(d)])
"""The 26 grid steps to a parcel sharing a face, an edge or a corner. Shape (26, 3)."""


@dataclass(frozen=True)
class ParcelGraph:
    """One patient's parcel graph.

    Shapes:
        parcels: (P, 3) int grid index of each node's parcel; curves: (P, L) float32 mean resampled curves;
        fraction: (P,) float32 tumour-voxel fraction; edge_index: (2, E) int64, sorted by (source, target).
    """

    parcels: np.ndarray
    curves: np.ndarray
    fraction: np.ndarray
    edge_index: np.ndarray

    def features(self) -> np.ndarray:
        """Node features: the curve then the tumour-voxel fraction. Shape (P, L + 1) float32."""
        return np.concatenate([self.curves, self.fraction[:, None]], axis=1).astype(np.float32)


def resample_curves(curves: np.ndarray, length: int) -> np.ndarray:
    """Linear resampling of each row onto ``length`` points from its first to its last time point.

    Shapes:
        curves: (n, T), T >= 1 -> (n, length) float64.
    """
    curves = np.asarray(curves, dtype=np.float64)
    if curves.ndim != 2 or curves.shape[1] == 0:
        raise ValueError(f"curves must have shape (n, T) with T >= 1; got {curves.shape}")
    last = curves.shape[1] - 1
    pos = np.linspace(0, last, length)
    lo = np.floor(pos).astype(int)
    hi, w = np.minimum(lo + 1, last), pos - lo
    return curves[:, lo] * (1 - w) + curves[:, hi] * w


def parcel_adjacency(parcels: np.ndarray) -> np.ndarray:
    """Edges between distinct parcels that share a face, an edge or a corner, both directions.

    Shapes:
        parcels: (P, 3) distinct non-negative grid indices -> edge_index (2, E) int64 sorted by (source, target).
    """
    lookup = np.full(parcels.max(0) + 3, -1, dtype=np.int64)  # a border of one parcel: every neighbour exists
    lookup[tuple((parcels + 1).T)] = np.arange(len(parcels))
    neighbours = (parcels[:, None, :] + 1 + NEIGHBOUR_OFFSETS[None]).reshape(-1, 3)
    target = lookup[tuple(neighbours.T)].reshape(len(parcels), len(NEIGHBOUR_OFFSETS))
    source, k = np.nonzero(target >= 0)
    edges = np.stack([source, target[source, k]]).astype(np.int64)
    return edges[:, np.lexsort((edges[1], edges[0]))]


def parcel_graph(mask: np.ndarray, curves: np.ndarray, parcel_voxels: int = 4, curve_length: int = 32) -> ParcelGraph:
    """The parcel graph of one tumour (module docstring).

    Args:
        mask: the tumour mask; ``curves`` row ``i`` belongs to its ``i``-th voxel in ``np.nonzero`` order.
        curves: one perfusion curve per tumour voxel.
        parcel_voxels: edge of a cubic parcel, in voxels.
        curve_length: points of each node's resampled mean curve.

    Shapes:
        mask: (X, Y, Z), curves: (n, T) with n = mask voxels -> nodes (P, ...) as :class:`ParcelGraph`.
    """
    voxels = np.argwhere(mask)  # row-major, the order of np.nonzero
    curves = np.asarray(curves)
    if len(voxels) == 0:
        raise ValueError("the tumour mask is empty: a parcel graph needs at least one tumour voxel")
    if curves.ndim != 2 or len(curves) != len(voxels):
        raise ValueError(f"curves must hold one row per tumour voxel ({len(voxels)} in the mask, np.nonzero "
                         f"order); got shape {curves.shape}")
    if parcel_voxels < 1:
        raise ValueError(f"parcel_voxels must be >= 1; got {parcel_voxels!r}")
    parcels, node = np.unique(voxels // parcel_voxels, axis=0, return_inverse=True)
    node = node.reshape(-1)
    count = np.bincount(node, minlength=len(parcels))
    sums = np.zeros((len(parcels), curves.shape[1]))
    np.add.at(sums, node, curves)
    mean = resample_curves(sums / count[:, None], curve_length)
    return ParcelGraph(parcels, mean.astype(np.float32), (count / parcel_voxels**3).astype(np.float32),
                       parcel_adjacency(parcels))


class PerfGATConfig(TorchConfig):
    region: Literal["whole", "core", "enhancing"] = "whole"
    scaling: Literal["p995", "zscore"] = Field("p995", description="curve scaling of the perfusion_input stage")
    margin: int = Field(1, ge=0, description="voxels around the tumour's bounding box (DSC grid)")
    parcel_voxels: int = Field(4, ge=1, description="edge of a cubic parcel, DSC voxels")
    curve_length: int = Field(32, ge=2, description="points of each parcel's resampled mean curve")
    hidden: int = Field(64, ge=1)
    heads: int = Field(4, ge=1, description="attention heads of each GATConv (averaged)")
    dropout: float = Field(0.3, ge=0, lt=1)


@register_method("perfgat", config=PerfGATConfig, modalities=("dsc", "seg"),
                 description="Perfusion-only graph attention over a fixed parcel grid (paper 002 baseline, simplified)")
class PerfGAT(TorchMethod):
    """GAT over fixed cubic parcels of the tumour, node = mean DSC curve (paper 002's PerfGAT baseline)."""

    needs = ("dsc", "mri", "seg")  # the perfusion_input stage also resamples the structural sequences
    stages = ("perfusion_input",)

    def build(self, n_classes: int) -> nn.Module:
        cfg = self.config
        return PerfGATNet(cfg.curve_length + 1, n_classes, hidden=cfg.hidden, heads=cfg.heads, dropout=cfg.dropout)

    def item(self, arrays):
        perfusion = arrays["perfusion_input"]
        graph = parcel_graph(perfusion["mask"], perfusion["curves"], self.config.parcel_voxels,
                             self.config.curve_length)
        return {"x": torch.from_numpy(graph.features()), "edge_index": torch.from_numpy(graph.edge_index)}

    def collate(self, batch):
        items, ys = zip(*batch)
        return batch_graphs(list(items)), torch.tensor(ys)

    def logits(self, model, batch):
        return model(batch["x"], batch["edge_index"], batch["batch"], graph_count(batch["batch"]))
