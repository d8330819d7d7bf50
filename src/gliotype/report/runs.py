"""Loading a run folder (``gliotype train`` / ``gliotype evaluate`` output) for the report."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from gliotype.evaluate.predictions import labelled_arrays, labelled_mask, read_predictions
from gliotype.evaluate.summary import metrics_report

logger = logging.getLogger(__name__)


@dataclass
class RunRecord:
    """Everything the report shows about one run; optional parts are ``None`` when not recorded.

    Shapes:
        - y: ``(n_labelled,)`` class indices; prob: ``(n_labelled, C)``
    """

    path: Path
    name: str
    predictions: pd.DataFrame
    classes: list[str]
    metrics: dict
    y: np.ndarray
    prob: np.ndarray
    config: dict | None = None
    splits: pd.DataFrame | None = None
    cohort: dict | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def method(self) -> str:
        return str(self.metrics.get("method") or (self.config or {}).get("method") or "not recorded")

    @property
    def target(self) -> str:
        return str(self.metrics.get("target") or (self.config or {}).get("target") or "not recorded")


def _read_optional(path: Path, reader, notes: list[str]):
    if not path.is_file():
        return None
    try:
        return reader(path)
    except (OSError, ValueError, yaml.YAMLError) as err:
        notes.append(f"{path.name} could not be read ({err}); shown as not recorded")
        logger.warning("%s: could not be read: %s", path, err)
        return None


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def _read_yaml(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"expected a mapping, got {type(data).__name__}")
    return data


def load_run(path, name: str | None = None) -> RunRecord:
    """Read a run folder: ``predictions.csv`` (required), ``metrics.json``, ``config.yaml``,
    ``splits.csv`` and ``cohort.json`` (optional).

    A missing ``metrics.json`` is recomputed from ``predictions.csv`` (and the report says so).

    Raises:
        FileNotFoundError: If ``path`` is not a folder or has no ``predictions.csv``.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"run folder not found: {str(path)!r}")
    predictions, classes = read_predictions(path / "predictions.csv")
    notes: list[str] = []
    config = _read_optional(path / "config.yaml", _read_yaml, notes)
    metrics = _read_optional(path / "metrics.json", _read_json, notes)
    if metrics is None:
        metrics = _recompute_metrics(predictions, classes, config)
        notes.append("metrics.json not recorded; metrics recomputed from predictions.csv")
    y, prob = labelled_arrays(predictions[labelled_mask(predictions)], classes, str(path / "predictions.csv"))
    return RunRecord(
        path=path,
        name=name or path.name,
        predictions=predictions,
        classes=classes,
        metrics=metrics,
        y=y,
        prob=prob,
        config=config,
        splits=_read_optional(path / "splits.csv", lambda p: pd.read_csv(p, dtype={"patient_id": str}), notes),
        cohort=_read_optional(path / "cohort.json", _read_json, notes),
        notes=notes,
    )


def _recompute_metrics(predictions: pd.DataFrame, classes: list[str], config: dict | None) -> dict:
    targets = sorted({str(t) for t in predictions["target"].dropna()})
    target = (config or {}).get("target") or (targets[0] if targets else "not recorded")
    method = (config or {}).get("method") or "not recorded"
    return metrics_report(predictions, classes, method=str(method), target=str(target))


def unique_names(paths) -> list[str]:
    """Folder names, prefixed with their parent where two runs share a name."""
    paths = [Path(p) for p in paths]
    names = [p.name or str(p) for p in paths]
    return [f"{p.parent.name}/{n}" if names.count(n) > 1 else n for p, n in zip(paths, names, strict=True)]
