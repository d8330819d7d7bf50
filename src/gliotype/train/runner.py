"""``gliotype train``: patient-level cross-validation (or holdout) of one method, resumable, with Contract 2 files.

RUN/
  config.yaml            resolved configuration (written first; a rerun with another config is refused)
  splits.csv             patient_id, fold, role (train / val / test)
  cohort.json            cohort summary: patients used, class counts, modalities, skipped patients and why
  model/fold<k>.safetensors + .json   each fold's weights and sidecar (method, config, classes, fingerprint)
  work/fold<k>/          resumable epoch state and the fold's out-of-fold predictions
  predictions.csv        out-of-fold predictions of every patient
  head_predictions.csv   the same for each head of a multi-head method (column ``head``), if it has any
  metrics.json           metrics with stratified bootstrap CIs
  tasks/<target>/        for a multi-task model, the predictions.csv and metrics.json of each other target
                         it predicts (patients whose label of that target is unknown have an empty y_true)
A rerun with the same RUN skips finished folds and resumes an interrupted one at its last finished epoch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gliotype.cohort import Cohort, validate
from gliotype.cohort.labels import TARGETS, label_classes
from gliotype.cohort.splits import carve_validation, check_classes, holdout, kfold
from gliotype.evaluate import metrics_report
from gliotype.methods.base import Distributed, FitContext, Method
from gliotype.methods.lazy import items_of
from gliotype.methods.registry import RETRIEVAL_TARGETS, check_target, get_spec
from gliotype.prepare.cache import atomic_write_bytes
from gliotype.train.checkpoint import save_checkpoint, write_json
from gliotype.train.config import RunConfig, method_config
from gliotype.train.parallel import check_hardware

log = logging.getLogger(__name__)


@dataclass
class Selection:
    """The patients a run uses, their class indices, and those left out with the reason."""

    patient_ids: list[str]
    y: np.ndarray
    classes: list[str]
    skipped: dict[str, str]
    inputs: dict
    aux: dict[str, np.ndarray]
    """Class indices (-1 where unknown) of the method's other targets (its label targets and tasks)."""


def class_indices(cohort: Cohort, patient_ids: list[str], target: str) -> np.ndarray:
    """Each patient's class index of ``target`` (order of :func:`label_classes`), -1 where the label is unknown."""
    classes = list(label_classes(target))
    return np.array([classes.index(cohort[p].label(target)) if cohort[p].label(target) else -1
                     for p in patient_ids], int)


def select(cohort: Cohort, method: Method, target: str, cache_dir: Path | None, workers: int,
           progress: bool, require_label: bool = True) -> Selection:
    """Validate, keep patients with the method's modalities (and a known label), and prepare their inputs."""
    report = validate(cohort, progress=progress, modalities=method.needs)
    classes = list(TARGETS[target])
    skipped: dict[str, str] = {}
    candidates = []
    for case in cohort:
        pid = case.patient_id
        lacking = [m for m in method.needs if not case.has(m)]
        if not report.usable(pid, method.needs):
            skipped[pid] = "; ".join(str(p) for p in report.problems if p.patient_id in (pid, "*"))
        elif lacking:
            skipped[pid] = f"lacks {', '.join(lacking)}"
        elif require_label and case.label(target) is None:
            skipped[pid] = f"{target} label unknown"
        else:
            candidates.append(pid)
    if not candidates:
        raise ValueError(f"{cohort.root}: no patient can be used by {method.name!r} for {target!r} "
                         f"(it needs {list(method.needs)}); e.g. {dict(list(skipped.items())[:3])}")
    prepared = method.prepare(cohort, candidates, cache_dir, workers, progress)
    skipped.update(prepared.failed)
    ids = [p for p in candidates if p in prepared.inputs]
    method.fingerprint = prepared.fingerprint
    others = dict.fromkeys([*method.label_targets(target), *method.tasks(target)])
    aux = {t: class_indices(cohort, ids, t) for t in others if t != target}
    return Selection(ids, class_indices(cohort, ids, target), classes, skipped, prepared.inputs, aux)


def make_splits(sel: Selection, cfg: RunConfig, validation: bool = True) -> pd.DataFrame:
    """One row per (patient, fold) with role train / val / test; validation carved from training only."""
    y = sel.y
    if cfg.folds == 1 or cfg.holdout:
        check_classes(y, sel.classes, 2, "holdout split")
        tests = [holdout(y, cfg.holdout or 0.2, cfg.seed)]
    else:
        check_classes(y, sel.classes, cfg.folds, f"{cfg.folds}-fold cross-validation")
        tests = kfold(y, cfg.folds, cfg.seed)
    rows = []
    for k, test in enumerate(tests):
        train = np.setdiff1d(np.arange(len(y)), test)
        fit, val = carve_validation(train, y, cfg.val_fraction, cfg.seed + k) if validation else (train, train[:0])
        check_classes(y[fit], sel.classes, 1, f"training part of fold {k}")
        for role, idx in (("train", fit), ("val", val), ("test", test)):
            rows += [(sel.patient_ids[i], k, role) for i in idx]
    splits = pd.DataFrame(rows, columns=["patient_id", "fold", "role"])
    assert_disjoint(splits)
    return splits


def assert_disjoint(splits: pd.DataFrame) -> None:
    """No patient is in two roles of one fold, and each patient is tested at most once."""
    if splits.duplicated(["patient_id", "fold"]).any():
        raise RuntimeError("split error: a patient has two roles in one fold")
    if splits[splits.role == "test"].patient_id.duplicated().any():
        raise RuntimeError("split error: a patient is tested in two folds")


def train(cohort_path: str | Path, method: str, target: str, out: str | Path, *, folds: int = 5,
          holdout_fraction: float | None = None, epochs: int | None = None, seed: int = 0,
          config_file: Path | None = None, overrides: dict | None = None, cache_dir: Path | None = None,
          workers: int = 1, device: str = "auto", distributed: Distributed | None = None,
          memory_format: str = "contiguous", progress: bool = False) -> Path:
    """Cross-validate ``method`` on a cohort and write the Contract 2 files into ``out``; returns ``out``.

    ``device``, ``distributed`` (DDP processes, see :class:`Distributed`) and ``memory_format`` say how each fold
    uses the hardware; like ``device`` they are not part of ``config.yaml``, though ``distributed`` multiplies
    the patients per optimiser step (``batch_size`` is per process): each fold's sidecar records its ``world_size``.
    Under DDP every process runs this whole function on the same files; only the fits are split.
    """
    spec = get_spec(method)
    check_target(spec, target)
    if target in RETRIEVAL_TARGETS:
        from gliotype.train.retrieval import train_retrieval

        return train_retrieval(cohort_path, method, target, out, folds=folds, seed=seed, epochs=epochs,
                               config_file=config_file, overrides=overrides, cache_dir=cache_dir, workers=workers,
                               device=device, progress=progress)
    check_hardware(distributed or Distributed(), memory_format)
    mcfg = method_config(spec, config_file, overrides)
    cfg = RunConfig(cohort=str(Path(cohort_path).resolve()), method=method, target=target, folds=folds,
                    holdout=holdout_fraction, seed=seed, epochs=epochs, method_config=mcfg.model_dump(mode="json"))
    out = Path(out)
    _claim(out, cfg)
    model = spec.factory(mcfg)
    sel = select(Cohort.from_folder(cohort_path), model, target, cache_dir, workers, progress)
    splits = make_splits(sel, cfg, model.uses_validation)
    _write_once(out / "splits.csv", splits.to_csv(index=False))
    write_json(out / "cohort.json", cohort_summary(cohort_path, sel, model.needs))
    index = {p: i for i, p in enumerate(sel.patient_ids)}
    hardware = {"distributed": distributed or Distributed(), "memory_format": memory_format}
    frames, heads, tasks = zip(*[run_fold(model, sel, splits[splits.fold == k], index, int(k), cfg, out, device,
                                          progress, **hardware) for k in sorted(splits.fold.unique())])
    predictions = pd.concat(frames, ignore_index=True)
    task_metrics = write_tasks(out, {t: pd.concat([f[t] for f in tasks], ignore_index=True) for t in tasks[0]},
                               method, seed)
    heads = pd.concat(heads, ignore_index=True) if all(h is not None for h in heads) else None
    if heads is not None:
        atomic_write_bytes(out / "head_predictions.csv", heads.to_csv(index=False).encode())
    atomic_write_bytes(out / "predictions.csv", predictions.to_csv(index=False).encode())
    report = metrics_report(predictions, sel.classes, method, target, seed=seed,
                            extra={"validation": "holdout" if (folds == 1 or holdout_fraction) else f"{folds}-fold cv",
                                   "skipped_patients": len(sel.skipped), **task_metrics,
                                   **head_metrics(heads, sel.classes, method, target, seed)})
    write_json(out / "metrics.json", report)
    return out


def run_fold(model: Method, sel: Selection, split: pd.DataFrame, index: dict, k: int, cfg: RunConfig,
             out: Path, device: str, progress: bool, distributed: Distributed | None = None,
             memory_format: str = "contiguous") -> tuple[pd.DataFrame, pd.DataFrame | None, dict]:
    """Fit fold ``k`` (or take it from disk when finished); returns its test predictions, for a
    multi-head method the test predictions of each head (else ``None``), and those of each other task."""
    work = out / "work" / f"fold{k}"
    done, heads_csv = work / "predictions.csv", work / "heads.csv"
    task_csv = {t: work / f"task_{t}.csv" for t in model.tasks(cfg.target)}
    if done.is_file() and (out / "model" / f"fold{k}.json").is_file():
        log.info("fold %d already finished: skipping", k)
        return (read_predictions_csv(done), (read_predictions_csv(heads_csv) if heads_csv.is_file() else None),
                {t: read_predictions_csv(path) for t, path in task_csv.items()})
    ids = {role: split[split.role == role].patient_id.tolist() for role in ("train", "val", "test")}
    data = {role: items_of(sel.inputs, ids[role]) for role in ids}  # lazy inputs stay on disk until read
    rows = {role: [index[p] for p in ids[role]] for role in ids}
    ys = {role: sel.y[rows[role]] for role in ids}
    ctx = FitContext(work, cfg.seed + k, cfg.epochs, device, progress, cfg.target,
                     {t: a[rows["train"]] for t, a in sel.aux.items()}, {t: a[rows["val"]] for t, a in sel.aux.items()},
                     distributed or Distributed(), memory_format)
    state = model.fit(data["train"], ys["train"], data["val"], ys["val"], len(sel.classes), ctx)
    save_checkpoint(out / "model" / f"fold{k}.safetensors", state, {
        "method": cfg.method, "target": cfg.target, "classes": sel.classes, "fold": k,
        "config": cfg.method_config, "preprocessing": getattr(model, "fingerprint", {}),
        "method_state": model.sidecar(), "fit": getattr(model, "fit_summary", {}), "kind": "fold"})
    probs = model.predict_heads(state, data["test"], len(sel.classes), device)
    y_true = [sel.classes[i] for i in ys["test"]]
    frame, heads = frames_of(ids["test"], y_true, probs, sel.classes, cfg.target, k)
    tasks = task_frames(ids["test"], {t: a[rows["test"]] for t, a in sel.aux.items()}, probs, k)
    for t, path in task_csv.items():  # these and heads.csv are written before predictions.csv,
        atomic_write_bytes(path, tasks[t].to_csv(index=False).encode())  # which marks the fold finished
    if heads is not None:
        atomic_write_bytes(heads_csv, heads.to_csv(index=False).encode())
    atomic_write_bytes(done, frame.to_csv(index=False).encode())
    return frame, heads, tasks


def frames_of(ids, y_true, probs: dict[str, np.ndarray], classes, target: str, fold):
    """The prediction frame and, when ``probs`` has other heads, one frame of every head's rows (column ``head``)."""
    frame = predictions_frame(ids, y_true, probs["prediction"], classes, target, fold)
    others = [predictions_frame(ids, y_true, p, classes, target, fold).assign(head=h)
              for h, p in probs.items() if h != "prediction" and not h.startswith(TASK)]
    return frame, (pd.concat(others, ignore_index=True) if others else None)


TASK = "task:"
"""Prefix of the ``predict_heads`` keys that hold another target's probabilities (multi-task models)."""


def task_frames(ids, aux: dict[str, np.ndarray], probs: dict[str, np.ndarray], fold) -> dict[str, pd.DataFrame]:
    """The predictions frame of every other task in ``probs`` (``task:<target>``), labels from ``aux``."""
    frames = {}
    for key, prob in probs.items():
        if key.startswith(TASK):
            target = key[len(TASK):]
            classes = list(TARGETS[target])
            y_true = [classes[i] if i >= 0 else "" for i in aux[target]]
            frames[target] = predictions_frame(ids, y_true, prob, classes, target, fold)
    return frames


def write_tasks(out: Path, frames: dict[str, pd.DataFrame], method: str, seed: int, extra: dict | None = None) -> dict:
    """Write ``tasks/<target>/predictions.csv`` and ``metrics.json`` of each other task; returns the
    ``tasks`` entry of the main metrics.json (each task's metrics with CIs), or ``{}`` for none."""
    summary = {}
    for target, frame in frames.items():
        folder = out / "tasks" / target
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(folder / "predictions.csv", frame.to_csv(index=False).encode())
        report = metrics_report(frame, list(TARGETS[target]), method, target, seed=seed, extra=extra)
        write_json(folder / "metrics.json", report)
        summary[target] = {"n": report["n"], "metrics": report["metrics"]}
    return {"tasks": summary} if summary else {}


def head_metrics(heads: pd.DataFrame | None, classes, method: str, target: str, seed: int) -> dict:
    """``metrics.json``'s ``heads`` entry: each head's metrics with CIs, from its own saved predictions."""
    if heads is None:
        return {}
    return {"heads": {h: metrics_report(rows.drop(columns="head"), classes, method, target, seed=seed)["metrics"]
                      for h, rows in heads.groupby("head", sort=False)}}


def read_predictions_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"patient_id": str, "y_true": str, "y_pred": str})


def predictions_frame(ids, y_true, prob: np.ndarray, classes, target: str, fold) -> pd.DataFrame:
    """Contract 2 ``predictions.csv`` rows: patient_id, target, fold, y_true, y_pred, prob_<class>."""
    frame = pd.DataFrame({"patient_id": ids, "target": target, "fold": fold, "y_true": y_true,
                          "y_pred": [classes[i] for i in prob.argmax(1)]})
    for j, c in enumerate(classes):
        frame[f"prob_{c}"] = prob[:, j]
    return frame


def cohort_summary(cohort_path, sel: Selection, needs) -> dict:
    counts = {c: int((sel.y == i).sum()) for i, c in enumerate(sel.classes)}
    return {"cohort": str(cohort_path), "n_patients": len(sel.patient_ids), "class_counts": counts,
            "modalities": {m: len(sel.patient_ids) for m in needs},
            "skipped": [{"patient_id": p, "reason": r} for p, r in sorted(sel.skipped.items())]}


def _claim(out: Path, cfg: RunConfig) -> None:
    """Write config.yaml, or check that the one already in ``out`` describes the same run (resumption)."""
    path = out / "config.yaml"
    if path.is_file():
        if not RunConfig.from_yaml(path).same_experiment(cfg):
            raise ValueError(f"{out} already holds a run with another configuration ({path}); "
                             "use another --out, or delete it to start over")
        log.info("resuming the run in %s", out)
        return
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, cfg.to_yaml().encode())


def _write_once(path: Path, text: str) -> None:
    """Write ``path``; on a rerun it must hold the same text (the same splits), else the run is inconsistent."""
    if path.is_file() and path.read_text() != text:
        raise ValueError(f"{path}: the splits of this run changed since it started (cohort or labels edited?); "
                         "start a new run with another --out")
    atomic_write_bytes(path, text.encode())
