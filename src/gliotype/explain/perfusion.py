"""``hiperfgnn`` explanations: gradient saliency of the habitat nodes, spread to their voxels (paper 002, Fig. 2).

For each fold model, the score of a coarse node (a perfusion habitat) is the gradient x input of the
explained class's logit with respect to the node's features, summed over the features (``saliency``), or
the integrated gradients from an all-zero (training-mean) input (``integrated_gradients``). Each node's
score is written into its voxels through the habitat label map, the map is Gaussian-smoothed, and the fold
maps (each fold has its own VQ-VAE, hence its own habitats) are averaged. The structure-only variant has no
habitats: its supervoxels take their place. Written into OUT:

  saliency.nii.gz      the smoothed map on the patient's DSC grid (shape and affine of ``<pid>-dsc``'s frames)
  codes.nii.gz         the first fold's VQ-VAE code (1..8) of every tumour voxel, 0 elsewhere (DSC grid)
  saliency.png         the DSC frame of the bolus peak, the code overlay and the saliency, on an axial slice
  habitats.csv         per habitat of the first fold: code, voxels, centroid (DSC voxels), score
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from matplotlib import colors as plt_colors
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from scipy import ndimage
from torch import Tensor, nn

from gliotype.cohort.images import load_volume
from gliotype.explain.backmap import write_like
from gliotype.prepare.cache import atomic_write_bytes

Attribution = Literal["saliency", "integrated_gradients"]
CODES = ListedColormap(list(plt_colors.TABLEAU_COLORS.values())[:8])
"""One colour for each of the eight habitat codes."""


def node_scores(model: nn.Module, batch: dict[str, Tensor], task: str, class_index: int, level: str = "coarse",
                how: Attribution = "saliency", steps: int = 32) -> np.ndarray:
    """Per-node attribution of one graph's ``task`` logit of ``class_index`` to the ``level`` node features.

    Shapes:
        batch: one collated graph; returns (n_nodes,) float64.
    """
    x = batch[f"{level}_x"].detach()
    alphas = torch.linspace(1.0 / steps, 1.0, steps) if how == "integrated_gradients" else torch.ones(1)
    total = torch.zeros_like(x)
    for alpha in alphas:
        scaled = (alpha * x).requires_grad_(True)
        logit = model({**batch, f"{level}_x": scaled})[task][0, class_index]
        (grad,) = torch.autograd.grad(logit, scaled)
        total += grad
    return (x * total / len(alphas)).sum(1).cpu().double().numpy()


def place(crop: np.ndarray, offset: np.ndarray, grid_shape) -> np.ndarray:
    """A crop (at voxel ``offset``) written into an all-zero volume of ``grid_shape``.

    Shapes:
        crop: (x, y, z) -> (X, Y, Z)
    """
    volume = np.zeros(tuple(int(s) for s in grid_shape), crop.dtype)
    volume[tuple(slice(int(o), int(o) + s) for o, s in zip(offset, crop.shape))] = crop
    return volume


def spread(scores: np.ndarray, labels: np.ndarray, offset: np.ndarray, grid_shape, sigma: float = 1.0) -> np.ndarray:
    """Node scores written into their voxels (``labels`` 1..H on the crop at ``offset``), Gaussian-smoothed.

    Shapes:
        scores: (H,); labels: (x, y, z) crop; returns the full grid ``grid_shape`` float32.
    """
    values = np.concatenate([[0.0], scores]).astype(np.float32)
    volume = place(values[labels], offset, grid_shape)
    return ndimage.gaussian_filter(volume, sigma) if sigma > 0 else volume


def habitat_table(graph: dict[str, np.ndarray], scores: np.ndarray) -> pd.DataFrame:
    """One row per habitat: code, voxel count, centroid (crop voxels), score."""
    labels = graph["habitat_map"]
    counts = np.bincount(labels.ravel(), minlength=len(scores) + 1)[1:]
    pos = graph["coarse_pos"]
    return pd.DataFrame({"habitat": np.arange(1, len(scores) + 1), "code": graph["coarse_code"], "voxels": counts,
                         "x": pos[:, 0], "y": pos[:, 1], "z": pos[:, 2], "score": scores})


def saliency_png(dsc_path: Path, codes: np.ndarray, saliency: np.ndarray, out: Path, title: str) -> Path:
    """Three panels on the axial slice through the tumour: the DSC frame of the bolus peak (lowest mean
    tumour signal), the code overlay and the saliency.

    Shapes:
        codes, saliency: (X, Y, Z) on the DSC's RAS+ grid.
    """
    series, _ = load_volume(dsc_path, ndim=4)
    tumour = codes > 0
    frame = int(np.argmin(series[tumour].mean(0))) if tumour.any() else series.shape[3] // 2
    z = int(np.round(np.argwhere(tumour)[:, 2].mean())) if tumour.any() else series.shape[2] // 2
    background = np.rot90(series[:, :, z, frame])
    fig = Figure(figsize=(12.0, 4.4), layout="constrained")
    axes = fig.subplots(1, 3)
    panels = [(None, None, f"DSC frame {frame}"), (np.ma.masked_equal(codes[:, :, z], 0), CODES, "VQ-VAE codes 1-8"),
              (np.ma.masked_less_equal(saliency[:, :, z], 0), "inferno", "saliency")]
    for ax, (overlay, cmap, name) in zip(axes, panels):
        ax.imshow(background, cmap="gray")
        if overlay is not None:
            shown = ax.imshow(np.rot90(overlay), cmap=cmap, alpha=0.7,
                              **({"vmin": 0.5, "vmax": 8.5} if cmap is CODES else {}))
            fig.colorbar(shown, ax=ax, shrink=0.7)
        ax.set_title(f"{name} (axial z={z})")
        ax.set_axis_off()
    fig.suptitle(title)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    fig.savefig(tmp, format="png", dpi=90)
    tmp.replace(out)
    return out


def write_maps(dsc_path: Path, saliency: np.ndarray, codes: np.ndarray, out: Path) -> dict[str, Path]:
    """``saliency.nii.gz`` and ``codes.nii.gz`` with the DSC's on-disk grid (they overlay its frames)."""
    return {"saliency": write_like(saliency, dsc_path, out / "saliency.nii.gz"),
            "codes": write_like(codes.astype(np.uint8), dsc_path, out / "codes.nii.gz", dtype=np.uint8)}


def code_volume(graph: dict[str, np.ndarray], offset: np.ndarray, grid_shape) -> np.ndarray:
    """The voxel codes of a graph's tumour on the full DSC grid (0 outside)."""
    codes = np.concatenate([[0], np.asarray(graph["coarse_code"])]).astype(np.uint8)
    return place(codes[graph["habitat_map"]], offset, grid_shape)


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    atomic_write_bytes(path, frame.to_csv(index=False).encode())
    return path


def explain_hiperf(method, folds, item: dict, arrays: dict, dsc_path: Path, class_index, out: Path,
                   how: Attribution = "saliency", device: str = "auto") -> tuple[dict, dict[str, Path]]:
    """Saliency of every fold model for one patient (``item`` from ``method.item``, ``arrays`` the patient's
    ``perfusion_input`` arrays); returns (ensemble probabilities per head, files written).

    ``class_index`` is a function from the ensemble's prediction (n_classes,) to the class to explain.
    """
    from gliotype.methods.brainnet_graphs import split_state
    from gliotype.methods.hiperf_graphs import cached_graphs, scaled, to_tensors
    from gliotype.methods.hiperfgnn import load_vqvae

    level = "fine" if method.config.mode == "fine" else "coarse"
    runs = []
    for weights, sidecar in folds:
        method.restore(sidecar.get("method_state", {}))
        parts = split_state(weights)
        vqvae = load_vqvae(method.config.vqvae_config(), parts["vqvae"]) if "vqvae" in parts else None
        graph = cached_graphs([item], vqvae, method.config, getattr(method, "_cache", None))[0]
        model = method.load_model(weights, len(sidecar["classes"]), device)
        dev = next(model.parameters()).device
        batch, _ = method.collate([(scaled([to_tensors(graph)], parts["scale"])[0], -1)])
        batch = {k: v.to(dev) for k, v in batch.items()}
        with torch.no_grad():
            probs = {h: p[0].cpu().numpy() for h, p in method.heads(model, batch).items()}
        runs.append((graph, model, batch, probs))
    probs = {h: np.mean([r[3][h] for r in runs], axis=0) for h in runs[0][3]}
    target = class_index(probs["prediction"])
    task = method._names[0]
    offset, grid = arrays["offset"], arrays["grid_shape"]
    maps, first_scores = [], None
    for graph, model, batch, _ in runs:
        scores = node_scores(model, batch, task, target, level, how)
        first_scores = scores if first_scores is None else first_scores
        labels = graph["habitat_map"] if level == "coarse" else graph["supervoxel_map"]
        maps.append(spread(scores, labels, offset, grid))
    saliency = np.mean(maps, axis=0)
    first = runs[0][0]
    codes = code_volume(first, offset, grid) if level == "coarse" else place(arrays["mask"].astype(np.uint8), offset, grid)
    out.mkdir(parents=True, exist_ok=True)
    files = write_maps(dsc_path, saliency, codes, out)
    files["png"] = saliency_png(dsc_path, codes, saliency, out / "saliency.png",
                                f"{method.name}: {how} of {task} = {folds[0][1]['classes'][target]}, "
                                f"mean of {len(runs)} fold models")
    if level == "coarse":
        files["habitats"] = write_table(habitat_table(first, first_scores), out / "habitats.csv")
    return {"probabilities": probs, "class_index": target, "level": level, "attribution": how}, files
