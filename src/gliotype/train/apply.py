"""``gliotype evaluate`` and ``gliotype predict``: apply a trained run to another cohort.

The model applied is the fold ensemble: the mean of the class probabilities of the model of every fold
(each trained on its fold's training patients). No recalibration on the new cohort.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gliotype.cohort import Cohort
from gliotype.evaluate import metrics_report
from gliotype.methods.lazy import items_of
from gliotype.methods.registry import RETRIEVAL_TARGETS, get_spec
from gliotype.prepare.cache import atomic_write_bytes
from gliotype.train.checkpoint import load_checkpoint, write_json
from gliotype.train.config import RunConfig
from gliotype.train.runner import cohort_summary, frames_of, head_metrics, select, task_frames, write_tasks


def load_run(run: str | Path):
    """The run's config, its method (configured as trained) and the (weights, sidecar) of every fold."""
    run = Path(run)
    if not (run / "config.yaml").is_file():
        raise FileNotFoundError(f"{run}: not a training run (no config.yaml); pass the --out folder of `gliotype train`")
    cfg = RunConfig.from_yaml(run / "config.yaml")
    spec = get_spec(cfg.method)
    method = spec.factory(spec.config_type(**cfg.method_config))
    paths = sorted((run / "model").glob("fold*.safetensors"))
    if not paths:
        raise FileNotFoundError(f"{run}/model: no fold weights; the run did not finish — rerun `gliotype train` with the same --out")
    folds = [load_checkpoint(p, expect_method=cfg.method) for p in paths]
    return cfg, method, folds


def is_retrieval(run: str | Path) -> bool:
    """Whether ``run`` is a retrieval run (target ``lineage`` or ``patient``), whose outputs are retrievals."""
    path = Path(run) / "config.yaml"
    return path.is_file() and RunConfig.from_yaml(path).target in RETRIEVAL_TARGETS


def apply_run(run: str | Path, cohort_path: str | Path, *, require_label: bool, cache_dir: Path | None = None,
              workers: int = 1, device: str = "auto", progress: bool = False):
    """Ensemble predictions of a run on a cohort.

    Returns (predictions frame, per-head frame or ``None``, selection, config, number of models, frames of
    the other tasks of a multi-task model).
    """
    cfg, method, folds = load_run(run)
    classes = folds[0][1]["classes"]
    sel = select(Cohort.from_folder(cohort_path), method, cfg.target, cache_dir, workers, progress, require_label)
    inputs = items_of(sel.inputs, sel.patient_ids)
    per_fold = []
    for weights, sidecar in folds:
        method.restore(sidecar.get("method_state", {}))
        per_fold.append(method.predict_heads(weights, inputs, len(classes), device))
    probs = {head: np.mean([p[head] for p in per_fold], axis=0) for head in per_fold[0]}
    y_true = [classes[i] if i >= 0 else "" for i in sel.y]
    frame, heads = frames_of(sel.patient_ids, y_true, probs, classes, cfg.target, "ensemble")
    return frame, heads, sel, cfg, len(folds), task_frames(sel.patient_ids, sel.aux, probs, "ensemble")


def evaluate(run: str | Path, cohort_path: str | Path, out: str | Path, **kwargs) -> Path:
    """Apply ``run`` to a labelled cohort; writes predictions.csv, metrics.json and cohort.json into ``out``
    (a retrieval run: retrievals.csv, top_genes.csv, metrics.json and cohort.json)."""
    if is_retrieval(run):
        from gliotype.train.retrieval import evaluate_retrieval

        return evaluate_retrieval(run, cohort_path, out, **kwargs)
    frame, heads, sel, cfg, n_models, tasks = apply_run(run, cohort_path, require_label=True, **kwargs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if heads is not None:
        atomic_write_bytes(out / "head_predictions.csv", heads.to_csv(index=False).encode())
    atomic_write_bytes(out / "predictions.csv", frame.to_csv(index=False).encode())
    write_json(out / "cohort.json", cohort_summary(cohort_path, sel, get_spec(cfg.method).modalities))
    extra = {"model": "fold_ensemble", "n_models": n_models, "run": str(Path(run).resolve()),
             "validation": "external cohort"}
    report = metrics_report(frame, sel.classes, cfg.method, cfg.target, seed=cfg.seed,
                            extra={**extra, **write_tasks(out, tasks, cfg.method, cfg.seed, extra),
                                   **head_metrics(heads, sel.classes, cfg.method, cfg.target, cfg.seed)})
    write_json(out / "metrics.json", report)
    return out


def predict(run: str | Path, cohort_path: str | Path, out_csv: str | Path, **kwargs) -> pd.DataFrame:
    """Predict every usable patient of a cohort (labels optional); writes ``out_csv`` (and, for a multi-task
    model, ``<out_csv stem>.<target>.csv`` beside it for each other target)."""
    frame, *_, tasks = apply_run(run, cohort_path, require_label=False, **kwargs)
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    for target, rows in tasks.items():
        atomic_write_bytes(out_csv.with_name(f"{out_csv.stem}.{target}.csv"), rows.to_csv(index=False).encode())
    atomic_write_bytes(out_csv, frame.to_csv(index=False).encode())
    return frame
