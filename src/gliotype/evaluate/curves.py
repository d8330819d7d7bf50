"""One-vs-rest ROC and precision-recall curves, for plotting."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

from gliotype.evaluate.ranking import auc_per_class, average_precision_per_class


def curve_classes(y: np.ndarray, n_classes: int) -> list[int]:
    """Classes that get a curve: the positive class (1) of a binary target, else every class;
    a class that is absent, or is every sample, gets none."""
    wanted = [1] if n_classes == 2 else list(range(n_classes))
    return [k for k in wanted if 0 < np.sum(y == k) < len(y)]


def roc_curves(y, prob) -> list[dict]:
    """ROC curve of each plotted class: ``class_index, fpr, tpr, auc``.

    Shapes:
        - y: ``(n,)``; prob: ``(n, C)``
    """
    y, prob = np.asarray(y), np.asarray(prob, dtype=np.float64)
    aucs = auc_per_class(y[None], prob[None])[0]
    out = []
    for k in curve_classes(y, prob.shape[1]):
        fpr, tpr, _ = roc_curve(y == k, prob[:, k])
        out.append({"class_index": k, "fpr": fpr, "tpr": tpr, "auc": float(aucs[k])})
    return out


def pr_curves(y, prob) -> list[dict]:
    """Precision-recall curve of each plotted class: ``class_index, recall, precision, ap, prevalence``.

    Shapes:
        - y: ``(n,)``; prob: ``(n, C)``
    """
    y, prob = np.asarray(y), np.asarray(prob, dtype=np.float64)
    aps = average_precision_per_class(y[None], prob[None])[0]
    out = []
    for k in curve_classes(y, prob.shape[1]):
        precision, recall, _ = precision_recall_curve(y == k, prob[:, k])
        out.append(
            {
                "class_index": k,
                "recall": recall,
                "precision": precision,
                "ap": float(aps[k]),
                "prevalence": float(np.mean(y == k)),
            }
        )
    return out
