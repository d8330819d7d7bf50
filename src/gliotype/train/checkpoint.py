"""Checkpoints safe by construction: safetensors weights + a JSON sidecar; never pickle.

Optimizer state is flattened into the same safetensors file (``optim.<param>.<name>``) with its
hyper-parameters in the sidecar, so an interrupted fit resumes without ``torch.load``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from gliotype import __version__
from gliotype.prepare.cache import atomic_write_bytes

FORMAT = "gliotype-checkpoint-1"


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], sidecar: dict) -> None:
    """Write ``path`` (.safetensors) and ``path.with_suffix('.json')`` atomically; the JSON last, as the seal."""
    from safetensors.torch import save

    data = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
    atomic_write_bytes(path, data)
    meta = {"format": FORMAT, "gliotype_version": __version__, **sidecar}
    atomic_write_bytes(path.with_suffix(".json"), json.dumps(meta, indent=2, sort_keys=True, default=str).encode())


def load_checkpoint(path: Path, expect_method: str | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """Load a checkpoint and its sidecar; refuse one that is unreadable or from another method.

    Raises:
        ValueError: with the reason (missing sidecar, unreadable weights, method mismatch).
    """
    side = path.with_suffix(".json")
    if not side.is_file():
        raise ValueError(f"{path}: no sidecar {side.name}; the checkpoint is incomplete (interrupted write?) — retrain")
    sidecar = json.loads(side.read_text())
    if sidecar.get("format") != FORMAT:
        raise ValueError(f"{side}: not a gliotype checkpoint (format {sidecar.get('format')!r})")
    if expect_method and sidecar.get("method") != expect_method:
        raise ValueError(f"{path}: this checkpoint belongs to method {sidecar.get('method')!r}, "
                         f"not {expect_method!r}; pass the run that trained {expect_method!r}")
    try:
        tensors = load_file(str(path))
    except Exception as err:
        raise ValueError(f"{path}: unreadable weights ({type(err).__name__}: {err}); retrain or restore the file") from err
    return tensors, sidecar


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Flatten an optimizer's state into tensors plus JSON-able hyper-parameters."""
    state = optimizer.state_dict()
    tensors = {}
    scalars = {}
    for pid, entry in state["state"].items():
        for name, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{name}"] = value
            else:
                scalars[f"{pid}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Inverse of :func:`optimizer_tensors`."""
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    for key, value in meta.get("scalars", {}).items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def write_json(path: Path, data: dict) -> None:
    atomic_write_bytes(path, json.dumps(data, indent=2, sort_keys=True, default=str).encode())



