"""Interpretation of the histology methods (paper 004): FRL's contribution map on every ROI or tile.

For a run of ``fof``, ``vit`` or ``kd`` (a ViT reads the image alone; ``fof``/``vit``: ``model.vit``,
``kd``: the model itself) and each of a patient's tiles (one per ROI, several per slide;
:mod:`gliotype.prepare.histology_tiles`):

* the token Grad-CAM of the explained class's logit on the tokens of block ``cam_block`` (the run's
  config; -2, the block FRL reads in training, for ``kd``), min-max normalised per tile and per fold model
  (:func:`~gliotype.explain.token_cam.token_gradcam`), averaged over the fold models and min-max normalised
  again, so that ``theta`` means what it means in training;
* the positive / negative views at ``theta`` (the run's config; 0.5 for ``kd``) on that averaged map
  (:func:`~gliotype.explain.token_cam.views_from_cam`): the positive view keeps the tokens with
  ``cam >= theta``, the negative view keeps the others. A tile on which no token raises the class's
  score has an all-zero map (ReLU), so all its tokens are in the negative view and its PNG has no outline
  (seen on the tiny test cohort for wildtype patients explained as wildtype: nothing marks that class).

Files:
  frl_<file stem>.png       per ROI (``frl_<file stem>_<k>.png`` for the k-th tile of a file that gives
                            several): the tile as the model saw it, the map upsampled bilinearly to pixels
                            as a semi-transparent heat overlay, and the outline of the positive view's kept
                            patches; the title gives the class explained and the tile's probability of it
  token_masks.csv           one row per (tile, token): tile (index among the patient's tiles), file, token
                            (row-major index), row, col (patch grid), cam, view (``positive`` if kept in the
                            positive view, i.e. cam >= theta, else ``negative``)

Probabilities: per tile the mean over the fold models of the softmax of the real classes; the patient's
is the mean of its tiles' (the methods' ``aggregation``), which is what ``gliotype predict`` reports.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from torch import Tensor, nn

from gliotype.explain.token_cam import cam_to_image, min_max, token_gradcam, views_from_cam
from gliotype.nn.vit import VisionTransformer
from gliotype.prepare.cache import atomic_write_bytes

__all__ = ["FIGURE_PX", "check_explainable", "explain_tiles", "frl_png", "tile_names", "token_table", "vision_transformer",
           "write_outputs"]

FIGSIZE, DPI = (4.0, 4.4), 100
FIGURE_PX = (int(FIGSIZE[0] * DPI), int(FIGSIZE[1] * DPI))
"""(width, height) in pixels of every ``frl_*.png``."""


def check_explainable(method_name: str, method) -> None:
    """Refuse a method whose model reads genomics as well as the image (``concat-fusion``,
    ``kronecker-fusion``): a map of the image alone would not explain its prediction."""
    if getattr(method, "genomics_required", False):
        raise ValueError(f"{method_name}: explain supports the histology methods that read the image alone "
                         f"(fof, vit, kd); {method_name} also reads the patient's genomics at inference, so an image "
                         "map would not explain its prediction")


def vision_transformer(model: nn.Module) -> VisionTransformer:
    """The ViT of a histology model: the model itself (``kd``) or its ``vit`` (``fof``, ``vit``)."""
    vit = model if isinstance(model, VisionTransformer) else getattr(model, "vit", None)
    if not isinstance(vit, VisionTransformer):
        raise ValueError(f"explain: expected a VisionTransformer or a model with one as .vit; got "
                         f"{type(model).__name__}")
    return vit


def explain_tiles(method, models: list[nn.Module], tiles: np.ndarray, n_classes: int, target_of, *,
                  batch_size: int = 16) -> dict:
    """Fold-mean probabilities and FRL maps of a patient's tiles.

    Args:
        method: the run's :class:`~gliotype.methods.histology.HistologyMethod` (normalises the images;
            its config gives ``cam_block`` and ``theta``).
        models: one loaded model per fold.
        tiles: the patient's tiles as the ``histology_tiles`` stage cut them.
        n_classes: the run's number of (real) classes.
        target_of: called with the patient's mean probabilities (n_classes,), returns the class index to
            explain (the predicted class, or one the user named).

    Returns:
        ``{"probabilities": (n, n_classes), "patient": (n_classes,), "target": int, "cam": (n, P) float32 in
        [0, 1], "positive_mask": (n, P) bool, "grid": (rows, cols), "cam_block": int, "theta": float}``.

    Shapes:
        tiles: (n, S, S, 3) uint8
    """
    cam_block, theta = getattr(method.config, "cam_block", -2), getattr(method.config, "theta", 0.5)
    images = torch.from_numpy(np.ascontiguousarray(tiles)).permute(0, 3, 1, 2)
    chunks = [images[i:i + batch_size] for i in range(0, len(images), batch_size)]
    probs = np.mean([np.concatenate([_probabilities(method, m, c, n_classes) for c in chunks]) for m in models], 0)
    target = int(target_of(probs.mean(0)))
    cams = [torch.cat([_cam(method, m, c, target, cam_block) for c in chunks]) for m in models]
    cam = min_max(torch.stack(cams).mean(0))
    positive_mask, _ = views_from_cam(cam, theta)
    grid = vision_transformer(models[0]).grid_size(*images.shape[-2:])
    return {"probabilities": probs, "patient": probs.mean(0), "target": target, "cam": cam.numpy(),
            "positive_mask": positive_mask.numpy(), "grid": grid, "cam_block": cam_block, "theta": theta}


def _device_images(method, model: nn.Module, chunk: Tensor) -> Tensor:
    return method.images({"image": chunk.to(next(model.parameters()).device)})


@torch.no_grad()
def _probabilities(method, model: nn.Module, chunk: Tensor, n_classes: int) -> np.ndarray:
    logits = vision_transformer(model)(_device_images(method, model, chunk))[:, :n_classes]
    return torch.softmax(logits.float(), dim=1).cpu().numpy().astype(np.float64)


def _cam(method, model: nn.Module, chunk: Tensor, target: int, cam_block: int) -> Tensor:
    """Token Grad-CAM of the ``target`` logit on block ``cam_block``. Shapes: chunk (b, 3, S, S) -> (b, P)."""
    with torch.enable_grad():
        logits, tokens = vision_transformer(model)(_device_images(method, model, chunk), return_tokens_of=cam_block)
        return token_gradcam(tokens, logits[:, target].float()).float().cpu()


def tile_names(files: list[str], source: np.ndarray) -> list[str]:
    """The PNG name of every tile: ``frl_<file stem>.png``, with ``_<k>`` for the k-th tile of a file that
    gives several (stems shared by two files, e.g. ``a.png`` and ``a.tif``, keep their suffix)."""
    stems = [Path(f).stem for f in files]
    stems = [s if stems.count(s) == 1 else Path(f).name.replace(".", "_") for s, f in zip(stems, files)]
    counts = np.bincount(source, minlength=len(files))
    names, seen = [], np.zeros(len(files), int)
    for s in source:
        names.append(f"frl_{stems[s]}.png" if counts[s] == 1 else f"frl_{stems[s]}_{seen[s]}.png")
        seen[s] += 1
    return names


def token_table(cam: np.ndarray, positive_mask: np.ndarray, grid: tuple[int, int], files: list[str],
                source: np.ndarray) -> pd.DataFrame:
    """The rows of ``token_masks.csv`` (module docstring). Shapes: cam, positive_mask (n, P)."""
    n, p = cam.shape
    token = np.tile(np.arange(p), n)
    return pd.DataFrame({"tile": np.repeat(np.arange(n), p), "file": np.repeat(np.asarray(files)[source], p),
                         "token": token, "row": token // grid[1], "col": token % grid[1],
                         "cam": cam.reshape(-1).astype(np.float64),
                         "view": np.where(positive_mask.reshape(-1), "negative", "positive")})


def frl_png(tile: np.ndarray, cam: np.ndarray, kept: np.ndarray, grid: tuple[int, int], out: Path,
            title: str) -> Path:
    """One tile with its map as a heat overlay and the kept patches outlined; ``FIGURE_PX`` pixels.

    Args:
        tile: the image.
        cam: the map on the token grid, in [0, 1].
        kept: True for the tokens the positive view keeps (cam >= theta).
        grid: the patch grid (rows, cols).
        out: the ``.png`` to write.
        title: the figure title.

    Shapes:
        tile: (S, S, 3) uint8, cam, kept: (rows * cols,)
    """
    size = tile.shape[:2]
    heat = cam_to_image(torch.as_tensor(cam, dtype=torch.float32)[None], grid, size)[0].numpy()
    fig = Figure(figsize=FIGSIZE, layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(tile, extent=(0, size[1], size[0], 0), interpolation="nearest")
    shown = ax.imshow(heat, cmap="turbo", vmin=0, vmax=1, alpha=0.45, extent=(0, size[1], size[0], 0))
    ax.add_collection(LineCollection(_outline(kept.reshape(grid), size[0] / grid[0], size[1] / grid[1]),
                                     colors="white", linewidths=2.0))
    ax.set(xlim=(0, size[1]), ylim=(size[0], 0), xticks=[], yticks=[])
    ax.set_title(title, fontsize=9)
    fig.colorbar(shown, ax=ax, shrink=0.8, orientation="horizontal", label="contribution (Grad-CAM)")
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    atomic_write_bytes(out, buffer.getvalue())
    return out


def _outline(kept: np.ndarray, height: float, width: float) -> list:
    """Segments ((x0, y0), (x1, y1)) in pixels of the boundary of the kept grid cells."""
    padded = np.pad(kept, 1)
    segments = []
    for r, c in zip(*np.nonzero(kept)):
        top, left, bottom, right = r * height, c * width, (r + 1) * height, (c + 1) * width
        if not padded[r, c + 1]:
            segments.append(((left, top), (right, top)))
        if not padded[r + 2, c + 1]:
            segments.append(((left, bottom), (right, bottom)))
        if not padded[r + 1, c]:
            segments.append(((left, top), (left, bottom)))
        if not padded[r + 1, c + 2]:
            segments.append(((right, top), (right, bottom)))
    return segments


def write_outputs(result: dict, tiles: np.ndarray, meta: dict, source: np.ndarray, classes: list[str],
                  patient_id: str, out: Path) -> tuple[dict[str, Path], list[dict]]:
    """The PNG of every tile and ``token_masks.csv``; returns the files by kind and a summary per tile."""
    out.mkdir(parents=True, exist_ok=True)
    files, names, target = list(meta["files"]), tile_names(list(meta["files"]), source), result["target"]
    written, per_tile = {}, []
    for i, name in enumerate(names):
        kept = ~result["positive_mask"][i]
        p = result["probabilities"][i]
        title = (f"{patient_id}: {files[source[i]]} (tile {i})\n{classes[target]}: p = {p[target]:.3f} (tile), "
                 f"{result['patient'][target]:.3f} (patient)")
        written[Path(name).stem] = frl_png(tiles[i], result["cam"][i], kept, result["grid"], out / name, title)
        per_tile.append({"tile": i, "file": files[source[i]], "png": name, "positive_tokens": int(kept.sum()),
                         "probabilities": dict(zip(classes, map(float, p)))})
    table = token_table(result["cam"], result["positive_mask"], result["grid"], files, source)
    atomic_write_bytes(out / "token_masks.csv", table.to_csv(index=False).encode())
    written["token_masks"] = out / "token_masks.csv"
    return written, per_tile
