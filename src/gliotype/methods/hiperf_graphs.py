"""``hiperfgnn``'s per-patient graphs: from the ``perfusion_input`` arrays and a frozen VQ-VAE to tensors.

A graph depends on the patient's inputs, the VQ-VAE's weights and the graph options, and is cached under
``CACHE/hiperf_graph/<patient>/<key>.npz`` with a key of all three, so each fold's VQ-VAE builds its own
graphs once and a rerun (or ``gliotype evaluate``) reuses them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from gliotype.methods.brainnet_graphs import digest
from gliotype.nn.vqvae import PerfusionVQVAE, encode_voxels
from gliotype.prepare.cache import fingerprint, load_arrays, save_arrays
from gliotype.prepare.habitat_graph import hierarchy, kinetic_maps, structure_graph

LEVELS = ("coarse", "fine")
GRAPH_VERSION = 2  # raise whenever build_graph's output changes: a cached graph of an older build is not reused
GRAPH_KEYS = ("coarse_x", "coarse_edge_index", "coarse_edge_attr", "fine_x", "fine_edge_index",
              "fine_edge_attr", "fine_parent")
"""The arrays of a graph that reach the network (the label maps stay in the cache, for ``explain``)."""


def input_digest(arrays: dict[str, np.ndarray]) -> str:
    """A short hash of one patient's ``perfusion_input`` arrays."""
    h = hashlib.blake2b(digest_size=8)
    for name in sorted(arrays):
        h.update(name.encode())
        h.update(np.ascontiguousarray(arrays[name]).tobytes())
    return h.hexdigest()


def graph_options(config) -> dict:
    """The graph-construction options of a ``hiperfgnn`` configuration."""
    return {"k": config.k, "delta_max": config.delta_max, "rule": config.edge_rule,
            "min_voxels": config.min_habitat_voxels, "voxels_per_segment": config.voxels_per_supervoxel,
            "compactness": config.compactness}


def build_graph(item: dict, vqvae: PerfusionVQVAE | None, config, device: str = "cpu") -> dict[str, np.ndarray]:
    """One patient's graph: the hierarchy (coarse habitats + fine supervoxels), with ``mode="coarse"`` the
    habitats alone, or with ``mode="fine"`` the supervoxel graph of the whole tumour (no perfusion, no VQ-VAE)."""
    options = graph_options(config)
    mask, structural = item["mask"], item["structural"]
    if config.mode == "fine":
        return structure_graph(mask, structural, **options)
    codes, latents = encode_voxels(vqvae, item["curves"], device=device)
    channels = (None if config.mode == "coarse" else
                kinetic_maps(mask, item["curves"]) if config.fine_channels == "kinetic" else structural)
    graph = hierarchy(mask, codes, latents.astype(np.float32), channels, **options)
    graph["codes"] = codes.astype(np.uint8)
    return graph


def cached_graphs(items: list[dict], vqvae: PerfusionVQVAE | None, config, cache: Path | None,
                  device: str = "cpu") -> list[dict[str, np.ndarray]]:
    """:func:`build_graph` of every item, through the cache when ``cache`` is given."""
    options = {**graph_options(config), "mode": config.mode, "fine_channels": config.fine_channels,
               "vqvae": digest(vqvae) if vqvae is not None and config.mode != "fine" else None}
    out = []
    for it in items:
        key = fingerprint("hiperf_graph", GRAPH_VERSION, {**options, "input": it["input_digest"]}, [])
        path = cache / "hiperf_graph" / it["patient_id"] / f"{key}.npz" if cache is not None else None
        if path is not None and path.is_file():
            out.append(load_arrays(path)[0])
            continue
        graph = build_graph(it, vqvae, config, device)
        if path is not None:
            save_arrays(path, graph, {"stage": "hiperf_graph", "options": options})
        out.append(graph)
    return out


def to_tensors(graph: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The network's inputs of a graph: float features, int64 indices (missing levels left out)."""
    out = {}
    for key in GRAPH_KEYS:
        if key in graph:
            value = torch.from_numpy(np.asarray(graph[key]))
            out[key] = value.long() if value.dtype in (torch.int32, torch.int64) else value.float()
    return out


def feature_scale(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Per-feature mean and SD of the node features of each level over the training patients' nodes."""
    out = {}
    for level in LEVELS:
        key = f"{level}_x"
        if key in items[0]:
            values = torch.cat([it[key] for it in items])
            out[f"{level}_mean"], out[f"{level}_std"] = values.mean(0), values.std(0).clamp_min(1e-6)
    return out


def scaled(items: list[dict[str, torch.Tensor]], scale: dict[str, torch.Tensor]) -> list[dict]:
    """Items with standardised node features (see :func:`feature_scale`)."""
    out = []
    for it in items:
        it = dict(it)
        for level in LEVELS:
            if f"{level}_mean" in scale and f"{level}_x" in it:
                it[f"{level}_x"] = (it[f"{level}_x"] - scale[f"{level}_mean"]) / scale[f"{level}_std"]
        out.append(it)
    return out
