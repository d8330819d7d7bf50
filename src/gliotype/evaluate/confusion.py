"""Metrics that depend only on the confusion matrix (argmax predictions), for a batch of samples."""

from __future__ import annotations

import numpy as np

from gliotype.evaluate._arrays import divide, masked_mean


def confusion_matrices(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Count (true, predicted) pairs for each sample in a batch.

    Args:
        y: True class indices.
        pred: Predicted class indices.
        n_classes: Number of classes ``C``.

    Returns:
        Counts with rows = true class, columns = predicted class.

    Shapes:
        - y, pred: ``(B, n)``
        - output: ``(B, C, C)``
    """
    batch = np.arange(y.shape[0])[:, None]
    flat = (batch * n_classes + y) * n_classes + pred
    counts = np.bincount(flat.ravel(), minlength=y.shape[0] * n_classes * n_classes)
    return counts.reshape(y.shape[0], n_classes, n_classes)


def kappa(cm: np.ndarray, weights: str | None = None) -> np.ndarray:
    """Cohen's kappa ``1 - sum(W * O) / sum(W * E)``; NaN when chance agreement is perfect.

    Args:
        cm: Confusion matrices.
        weights: ``None`` for unweighted (``W = 1 - I``) or ``"quadratic"`` (``W_ij = (i - j)^2``).

    Shapes:
        - cm: ``(B, C, C)``
        - output: ``(B,)``
    """
    n_classes = cm.shape[-1]
    i, j = np.meshgrid(np.arange(n_classes), np.arange(n_classes), indexing="ij")
    if weights is None:
        w = (i != j).astype(np.float64)
    elif weights == "quadratic":
        w = (i - j).astype(np.float64) ** 2
    else:
        raise ValueError(f"weights must be None or 'quadratic', got {weights!r}")
    n = cm.sum(axis=(1, 2)).astype(np.float64)
    expected = divide(cm.sum(2)[:, :, None] * cm.sum(1)[:, None, :], n[:, None, None])
    observed_disagreement = (w * cm).sum(axis=(1, 2))
    expected_disagreement = (w * expected).sum(axis=(1, 2))
    return 1.0 - divide(observed_disagreement, expected_disagreement)


def confusion_metrics(cm: np.ndarray, ordinal: bool = False) -> dict[str, np.ndarray]:
    """Accuracy, sensitivity, specificity, macro F1, kappa and balanced accuracy.

    Binary (``C == 2``): sensitivity is the recall of class 1, specificity the recall of class 0.
    Multi-class: sensitivity and specificity are macro averages of the one-vs-rest values over the
    classes present among the true labels. Balanced accuracy is the mean recall over the classes present
    (as scikit-learn's ``balanced_accuracy_score``); macro F1 averages over the classes that are true or
    predicted, a class never predicted scoring 0 (as scikit-learn's ``f1_score(average="macro")``).

    Args:
        cm: Confusion matrices, rows = true, columns = predicted.
        ordinal: Also return ``kappa_quadratic``.

    Shapes:
        - cm: ``(B, C, C)``
        - output values: ``(B,)``
    """
    tp = np.diagonal(cm, axis1=1, axis2=2).astype(np.float64)
    support = cm.sum(axis=2).astype(np.float64)
    predicted = cm.sum(axis=1).astype(np.float64)
    n = cm.sum(axis=(1, 2)).astype(np.float64)[:, None]
    recall = divide(tp, support)
    specificity = divide(n - support - (predicted - tp), n - support)
    present = support > 0
    if cm.shape[-1] == 2:
        sensitivity, spec = recall[:, 1], recall[:, 0]
    else:
        sensitivity, spec = masked_mean(recall, present), masked_mean(specificity, present)
    f1 = divide(2 * tp, support + predicted)
    out = {
        "accuracy": divide(tp.sum(1), n[:, 0]),
        "sensitivity": sensitivity,
        "specificity": spec,
        "f1_macro": masked_mean(f1, present | (predicted > 0)),
        "kappa": kappa(cm),
        "balanced_accuracy": masked_mean(recall, present),
    }
    if ordinal:
        out["kappa_quadratic"] = kappa(cm, "quadratic")
    return out
