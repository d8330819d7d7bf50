"""Patient-level splits: stratified K-fold, a stratified holdout, and a validation split carved from training.

The unit is always the patient: every ROI, patch, sample or slice of a patient falls on one side.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split


def check_classes(y: np.ndarray, classes: list[str], need: int, what: str) -> None:
    """Each class must have at least ``need`` patients; otherwise say which class has how many."""
    counts = np.bincount(y, minlength=len(classes))
    present = int((counts > 0).sum())
    if present < 2:
        raise ValueError(f"{what}: only one class present ({dict(zip(classes, counts.tolist()))}); "
                         "a classifier needs patients of at least two classes")
    if counts[counts > 0].min() < need:
        raise ValueError(f"{what}: class counts {dict(zip(classes, counts.tolist()))} are too small for "
                         f"{need} stratified parts; use fewer folds or more patients")


def kfold(y: np.ndarray, folds: int, seed: int) -> list[np.ndarray]:
    """Test indices of each of ``folds`` stratified folds (shuffled with ``seed``).

    Shapes:
        y: (n,) class indices -> list of ``folds`` index arrays partitioning range(n).
    """
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [test for _, test in splitter.split(np.zeros(len(y)), y)]


def holdout(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Test indices of a stratified holdout of ``fraction`` of the patients."""
    if not 0 < fraction < 1:
        raise ValueError(f"holdout fraction must lie in (0, 1), got {fraction!r}")
    _, test = train_test_split(np.arange(len(y)), test_size=fraction, stratify=y, random_state=seed)
    return np.sort(test)


def carve_validation(train_idx: np.ndarray, y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split training indices into (fit, validation), stratified; validation never touches the test fold."""
    y_train = y[train_idx]
    counts = np.bincount(y_train)
    stratify = y_train if counts[counts > 0].min() >= 2 else None
    fit, val = train_test_split(train_idx, test_size=fraction, stratify=stratify, random_state=seed)
    return np.sort(fit), np.sort(val)
