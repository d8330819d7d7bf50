"""Reading ``predictions.csv`` (DESIGN.md Contract 2) and turning its rows into metric inputs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

REQUIRED_COLUMNS = ("patient_id", "target", "fold", "y_true", "y_pred")
PROB_PREFIX = "prob_"
_TEXT_COLUMNS = {"patient_id": str, "target": str, "y_true": str, "y_pred": str}


def label_to_str(value) -> str | None:
    """A class label as text (``2.0`` -> ``"2"``); ``None`` for an unknown label (empty, NaN, None)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def prob_columns(frame: pd.DataFrame) -> list[str]:
    """Class names from the ``prob_<class>`` columns, in column order."""
    return [c[len(PROB_PREFIX) :] for c in frame.columns if str(c).startswith(PROB_PREFIX)]


def check_columns(frame: pd.DataFrame, classes: list[str], source: str = "predictions") -> None:
    """Raise a ValueError naming what is missing when ``frame`` does not follow Contract 2."""
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    missing += [PROB_PREFIX + c for c in classes if PROB_PREFIX + c not in frame.columns]
    if missing:
        raise ValueError(f"{source}: missing column(s) {missing!r}; has {list(frame.columns)!r}")
    if len(classes) < 2:
        raise ValueError(f"{source}: need at least 2 classes (prob_<class> columns), got {classes!r}")


def read_predictions(path) -> tuple[pd.DataFrame, list[str]]:
    """Read a ``predictions.csv``, keeping labels as text (grade ``"2"`` stays ``"2"``).

    Args:
        path: The file, with columns ``patient_id, target, fold, y_true, y_pred, prob_<class>...``.

    Returns:
        The frame (empty ``y_true`` cells read as NaN) and the class names in ``prob_`` column order.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If a column is missing or a label is not one of the classes.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"predictions file not found: {str(path)!r}")
    frame = pd.read_csv(path, dtype=_TEXT_COLUMNS, keep_default_na=False, na_values={"y_true": [""], "y_pred": [""]})
    classes = prob_columns(frame)
    check_columns(frame, classes, source=str(path))
    labelled_arrays(frame, classes, source=str(path))
    return frame, classes


def labelled_mask(frame: pd.DataFrame) -> np.ndarray:
    """True for the rows whose ``y_true`` is a known label."""
    return np.array([label_to_str(v) is not None for v in frame["y_true"]], dtype=bool)


def labelled_arrays(
    frame: pd.DataFrame, classes: list[str], source: str = "predictions"
) -> tuple[np.ndarray, np.ndarray]:
    """Class indices and probabilities of the labelled rows.

    Raises:
        ValueError: If a ``y_true`` value is not one of ``classes``.

    Shapes:
        - output: ``y (n_labelled,)``, ``prob (n_labelled, C)``
    """
    rows = frame[labelled_mask(frame)]
    index = {c: i for i, c in enumerate(classes)}
    labels = [label_to_str(v) for v in rows["y_true"]]
    unknown = sorted({v for v in labels if v not in index})
    if unknown:
        raise ValueError(f"{source}: y_true value(s) {unknown!r} are not among the classes {classes!r}")
    y = np.array([index[v] for v in labels], dtype=np.int64)
    prob = rows[[PROB_PREFIX + c for c in classes]].to_numpy(dtype=np.float64).reshape(len(rows), len(classes))
    return y, prob


def check_one_row_per_patient(frame: pd.DataFrame, source: str = "predictions") -> None:
    """Raise a ValueError naming repeated patients: patient-level statistics need one row each."""
    counts = frame["patient_id"].astype(str).value_counts()
    repeated = counts[counts > 1]
    if len(repeated):
        raise ValueError(
            f"{source}: patient(s) {repeated.index[:5].tolist()!r} appear in {repeated.iloc[:5].tolist()!r} rows; "
            "patient-level metrics need one labelled row per patient (pool or average repeated predictions first)"
        )
