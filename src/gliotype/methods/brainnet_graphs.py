"""Helpers of ``brainnet``'s brain-network graphs: attribute standardisation, the generator's fingerprint,
and the prefixes of a fold's flat state (``model.``, ``generator.``, ``graph.``, ``classifier.``)."""

from __future__ import annotations

import hashlib

import torch

SCALE_KEYS = ("node_mean", "node_std", "edge_mean", "edge_std")


def attribute_scale(items: list[dict]) -> dict[str, torch.Tensor]:
    """Per-feature mean and standard deviation of the node and of the edge attributes over the training
    patients (pooled over nodes, resp. pathways). The generator's node codes spread about 25 times wider than
    its edge codes; on a unit scale both reach the GAT. One scale per feature, not per pathway, keeps a
    change that moves many pathways' codes the same way visible after pooling."""
    out = {}
    for kind in ("node", "edge"):
        values = torch.cat([it[f"{kind}_attr"] for it in items])
        out[f"{kind}_mean"], out[f"{kind}_std"] = values.mean(0), values.std(0).clamp_min(1e-6)
    return out


def scaled(items: list[dict], scale: dict[str, torch.Tensor]) -> list[dict]:
    """Items with standardised node and edge attributes (see :func:`attribute_scale`)."""
    return [{**it, **{f"{k}_attr": (it[f"{k}_attr"] - scale[f"{k}_mean"]) / scale[f"{k}_std"] for k in ("node", "edge")}}
            for it in items]


def digest(module: torch.nn.Module) -> str:
    """A short hash of a module's weights (names and bytes)."""
    h = hashlib.blake2b(digest_size=8)
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def split_state(state: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """``{"model.a": t, "graph.b": u}`` -> ``{"model": {"a": t}, "graph": {"b": u}}``."""
    parts: dict[str, dict] = {}
    for key, value in state.items():
        prefix, _, rest = key.partition(".")
        parts.setdefault(prefix, {})[rest] = value
    return parts
