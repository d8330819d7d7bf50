"""PNG figures of explanations: three orthogonal slices with a heat overlay, and a coloured point cloud.

Drawn on :class:`matplotlib.figure.Figure` with the Agg canvas, so pyplot's global state and the user's
backend are never touched; files appear atomically (temporary file + rename).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gliotype.prepare.cache import atomic_write_bytes

DPI = 100
CONVENTION = "radiological: patient's right on the image's left"

#: (name, slicing axis, horizontal axis, vertical axis, flip horizontally, left-right label, bottom-top label)
#: for a RAS+ volume (index increases towards Right, Anterior, Superior).
_VIEWS = (("sagittal", 0, 1, 2, False, "P  <->  A", "I  <->  S"),
          ("coronal", 1, 0, 2, True, "R  <->  L", "I  <->  S"),
          ("axial", 2, 0, 1, True, "R  <->  L", "P  <->  A"))


def slice_overlay_png(background: np.ndarray, heat: np.ndarray, mask: np.ndarray | None, centre: Sequence[int],
                      out: str | Path, title: str, spacing: Sequence[float] = (1.0, 1.0, 1.0),
                      label: str = "heat") -> Path:
    """Sagittal, coronal and axial slices through ``centre``: grey background, heat where > 0, mask contour.

    Coronal and axial slices are shown in the radiological convention (patient's right on the image's
    left; the title says so); the sagittal slice has anterior on the right. Pixels have the physical
    aspect ratio given by ``spacing``. The heat colour scale runs from 0 to the heat's maximum.

    Args:
        background: an MRI volume on a RAS+ grid.
        heat: the map to overlay (e.g. Grad-CAM mapped back to the grid); <= 0 is transparent.
        mask: the tumour mask, drawn as a contour, or ``None``.
        centre: the voxel the three slices pass through.
        out: the ``.png`` to write; missing folders are created.
        title: the figure title.
        spacing: voxel size in mm along each axis.
        label: the colour bar's label.

    Returns:
        ``out``.

    Shapes:
        - background, heat, mask: ``(X, Y, Z)``
        - centre, spacing: ``(3,)``
    """
    background, heat = np.asarray(background, float), np.asarray(heat, float)
    centre, spacing = _check_slices(background, heat, mask, centre, spacing)
    fig = Figure(figsize=(12.0, 4.6), layout="constrained")
    axes = fig.subplots(1, 3)
    grey = _grey_range(background)
    top = float(heat.max()) if heat.max() > 0 else 1.0
    for ax, view in zip(axes, _VIEWS):
        shown = _draw_view(ax, view, background, heat, mask, centre, spacing, grey, top)
    fig.colorbar(shown, ax=list(axes), shrink=0.8, label=label)
    fig.suptitle(f"{title}\n({CONVENTION})")
    return _save(fig, Path(out))


def points_scatter_png(points: np.ndarray, values: np.ndarray, out: str | Path, title: str,
                       label: str = "importance") -> Path:
    """A 3-D scatter of the points coloured by ``values``, with a colour bar.

    Shapes:
        - points: ``(P, 3)``
        - values: ``(P,)``
    """
    points, values = np.asarray(points, float), np.asarray(values, float).reshape(-1)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) != len(values):
        raise ValueError(f"points_scatter_png: points must be (P, 3) with one value per point; got points "
                         f"{points.shape!r} and values {values.shape!r}")
    fig = Figure(figsize=(6.4, 5.2))
    ax = fig.add_subplot(projection="3d")
    shown = ax.scatter(points[:, 0], points[:, 1], points[:, 2], c=values, cmap="viridis", s=14, depthshade=False)
    ax.set(xlabel="x", ylabel="y", zlabel="z", title=title)
    fig.colorbar(shown, ax=ax, shrink=0.7, label=label)
    return _save(fig, Path(out))


def _draw_view(ax, view, background, heat, mask, centre, spacing, grey, top):
    name, axis, h, v, flip, across, up = view
    slice_of = lambda volume: _plane(volume, axis, centre[axis], flip)  # noqa: E731
    aspect = spacing[v] / spacing[h]
    ax.imshow(slice_of(background), cmap="gray", vmin=grey[0], vmax=grey[1], origin="lower", aspect=aspect)
    hot = slice_of(heat)
    shown = ax.imshow(np.ma.masked_less_equal(hot, 0), cmap="turbo", vmin=0, vmax=top, alpha=0.55,
                      origin="lower", aspect=aspect, interpolation="nearest")
    if mask is not None:
        outline = slice_of(np.asarray(mask, float))
        if outline.min() < 0.5 <= outline.max():
            ax.contour(outline, levels=[0.5], colors="lime", linewidths=1.0)
    ax.set_title(f"{name} ({'xyz'[axis]} = {centre[axis]})")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set(xlabel=across, ylabel=up)
    return shown


def _plane(volume: np.ndarray, axis: int, index: int, flip: bool) -> np.ndarray:
    """The slice as an image: rows = vertical axis (bottom up with origin='lower'), columns = horizontal."""
    plane = np.take(volume, index, axis=axis)
    return (plane[::-1] if flip else plane).T


def _grey_range(background: np.ndarray) -> tuple[float, float]:
    inside = background[background != 0]
    if inside.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(inside, [1, 99])
    return float(lo), float(hi if hi > lo else lo + 1)


def _check_slices(background, heat, mask, centre, spacing):
    shapes = {"background": background.shape, "heat": heat.shape}
    if mask is not None:
        shapes["mask"] = np.shape(mask)
    if background.ndim != 3 or len(set(shapes.values())) != 1:
        raise ValueError(f"slice_overlay_png: background, heat and mask must be 3-D on one grid; got {shapes!r}")
    centre = np.rint(np.asarray(centre, float)).astype(int).reshape(-1)
    spacing = np.asarray(spacing, float).reshape(-1)
    if centre.shape != (3,) or np.any(centre < 0) or np.any(centre >= background.shape):
        raise ValueError(f"slice_overlay_png: centre must be a voxel (i, j, k) inside {background.shape!r}; "
                         f"got {centre.tolist()!r}")
    if spacing.shape != (3,) or np.any(spacing <= 0):
        raise ValueError("slice_overlay_png: spacing must be three positive voxel sizes (mm); "
                         f"got {spacing.tolist()!r}")
    return centre, spacing


def _save(fig: Figure, out: Path) -> Path:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    atomic_write_bytes(out, buffer.getvalue())
    return out
