"""The report's figures, drawn with matplotlib's Agg canvas and returned as base64 PNG data URIs.

Figures are built with :class:`matplotlib.figure.Figure` directly, so nothing touches pyplot's global
state or the user's backend.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gliotype.evaluate.calibration import reliability_curve
from gliotype.evaluate.confusion import confusion_matrices
from gliotype.evaluate.curves import pr_curves, roc_curves

FIGSIZE = (4.6, 4.0)
DPI = 100


def to_data_uri(fig: Figure) -> str:
    """Render a figure to ``data:image/png;base64,...``."""
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _axes(title: str, xlabel: str, ylabel: str):
    fig = Figure(figsize=FIGSIZE)
    ax = fig.add_subplot()
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return fig, ax


def _empty(ax, why: str) -> None:
    ax.text(0.5, 0.5, why, ha="center", va="center", wrap=True, transform=ax.transAxes)


def roc_figure(y: np.ndarray, prob: np.ndarray, classes: list[str]) -> str:
    """ROC curve of the positive class (binary) or of every class one-vs-rest (multi-class)."""
    fig, ax = _axes("ROC", "1 - specificity (false positive rate)", "sensitivity (true positive rate)")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1)
    curves = roc_curves(y, prob) if len(y) else []
    for c in curves:
        ax.plot(c["fpr"], c["tpr"], lw=1.8, label=f"{classes[c['class_index']]} (AUC {c['auc']:.3f})")
    if curves:
        ax.legend(loc="lower right", fontsize=8)
    else:
        _empty(ax, "not available: needs labelled patients of two classes")
    ax.set(xlim=(0, 1), ylim=(0, 1.02))
    return to_data_uri(fig)


def pr_figure(y: np.ndarray, prob: np.ndarray, classes: list[str]) -> str:
    """Precision-recall curve(s), with each class's prevalence (a random classifier) dotted."""
    fig, ax = _axes("Precision-recall", "recall (sensitivity)", "precision (PPV)")
    curves = pr_curves(y, prob) if len(y) else []
    for c in curves:
        line = ax.step(
            c["recall"], c["precision"], where="post", lw=1.8, label=f"{classes[c['class_index']]} (AP {c['ap']:.3f})"
        )[0]
        ax.axhline(c["prevalence"], ls=":", lw=1, c=line.get_color())
    if curves:
        ax.legend(loc="lower left", fontsize=8)
    else:
        _empty(ax, "not available: needs labelled patients of two classes")
    ax.set(xlim=(0, 1), ylim=(0, 1.02))
    return to_data_uri(fig)


def reliability_figure(y: np.ndarray, prob: np.ndarray, n_bins: int = 10) -> str:
    """Accuracy against mean top-label confidence per bin; marker area grows with the bin's count."""
    fig, ax = _axes("Calibration (reliability)", "mean confidence (top-label probability)", "accuracy")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1)
    if len(y):
        curve = reliability_curve(y, prob, n_bins)
        keep = curve["count"] > 0
        ax.plot(curve["confidence"][keep], curve["accuracy"][keep], "-", lw=1.2)
        ax.scatter(
            curve["confidence"][keep], curve["accuracy"][keep], s=20 + 200 * curve["count"][keep] / len(y), zorder=3
        )
    else:
        _empty(ax, "not available: no labelled patients")
    ax.set(xlim=(0, 1), ylim=(0, 1.02))
    return to_data_uri(fig)


def confusion_figure(y: np.ndarray, prob: np.ndarray, classes: list[str]) -> str:
    """Confusion matrix of the argmax predictions, counts and row percentages."""
    fig, ax = _axes("Confusion matrix", "predicted", "true")
    cm = (
        confusion_matrices(y[None], prob.argmax(1)[None], len(classes))[0]
        if len(y)
        else np.zeros((len(classes),) * 2, int)
    )
    ax.imshow(cm, cmap="Blues", vmin=0)
    rows = np.maximum(cm.sum(1, keepdims=True), 1)
    for (i, j), count in np.ndenumerate(cm):
        dark = count > 0.6 * max(cm.max(), 1)
        ax.text(
            j,
            i,
            f"{count}\n{100 * count / rows[i, 0]:.0f}%",
            ha="center",
            va="center",
            color="white" if dark else "black",
        )
    ax.set(xticks=range(len(classes)), yticks=range(len(classes)), xticklabels=classes, yticklabels=classes)
    return to_data_uri(fig)


def forest_figure(names: list[str], metrics: list[dict], metric: str = "auc") -> str:
    """One metric with its confidence interval for each run (a forest plot)."""
    fig = Figure(figsize=(6.0, 0.6 + 0.45 * len(names)))
    ax = fig.add_subplot()
    for i, m in enumerate(metrics):
        v = m.get("metrics", {}).get(metric) or {}
        if v.get("value") is not None:
            lo, hi = v.get("ci_low"), v.get("ci_high")
            if lo is not None and hi is not None:
                ax.plot([lo, hi], [i, i], c="C0", lw=2)
            ax.plot(v["value"], i, "o", c="C0")
    ax.set(
        yticks=range(len(names)),
        yticklabels=names,
        xlabel=f"{metric} with its recorded CI",
        ylim=(len(names) - 0.5, -0.5),
    )
    ax.grid(axis="x", alpha=0.3)
    return to_data_uri(fig)
