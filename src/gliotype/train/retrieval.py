"""``gliotype train`` / ``evaluate`` for a retrieval method (``wsi-rna``, target ``lineage`` or ``patient``).

RUN/
  config.yaml, splits.csv (patient_id, fold, role: train / test), cohort.json   as for classification runs
  model/fold<k>.safetensors + .json   each fold's weights and sidecar (tokens, genes)
  work/fold<k>/                       the fold's retrievals and gene votes (a fold with both is finished)
  retrievals.csv     one row per held-out patch: its top-1 RNA sample (evaluate/retrieval.py columns) and the
                     genes that retrieval leans on most (``top_genes``, ';'-separated, most important first)
  top_genes.csv      the top genes by occurrence over all retrievals (explain/genes.py)
  metrics.json       lineage and patient top-1 accuracy with patient-bootstrap CIs, and chance

Folds hold out patients: a tested patch's patient, its lineages and their RNA never take part in training.
The gallery of a fold is the RNA samples of its test patients (``gallery="held_out"``) or of every patient
(``"all"``); chance is reported for the gallery used. ``evaluate`` matches every patch of another cohort
against that cohort's RNA samples by the mean of the fold models' similarities.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from gliotype.cohort import Cohort
from gliotype.cohort.splits import kfold
from gliotype.evaluate.retrieval import retrieval_frame, retrieval_metrics
from gliotype.explain.genes import gene_votes, rank_genes, retrieval_gene_importance, retrieval_top_genes
from gliotype.methods.registry import get_spec
from gliotype.methods.wsi_rna import Lineages
from gliotype.prepare.cache import atomic_write_bytes
from gliotype.train.checkpoint import save_checkpoint, write_json
from gliotype.train.config import RunConfig, method_config
from gliotype.train.runner import _claim, _write_once

log = logging.getLogger(__name__)


def prepare_lineages(method, cohort: Cohort, cache_dir, workers: int, progress: bool) -> tuple[dict, dict]:
    """The method's inputs of every patient with histology and RNA-seq, and the patients skipped (reasons)."""
    candidates = [c.patient_id for c in cohort if all(c.has(m) for m in method.needs)]
    skipped = {c.patient_id: f"lacks {', '.join(m for m in method.needs if not c.has(m))}" for c in cohort
               if c.patient_id not in candidates}
    if len(candidates) < 2:
        raise ValueError(f"{cohort.root}: {method.name} needs patients with both histology and RNA-seq; "
                         f"{len(candidates)} have them")
    prepared = method.prepare(cohort, candidates, cache_dir, workers, progress)
    skipped.update(prepared.failed)
    return prepared.inputs, skipped


def train_retrieval(cohort_path: str | Path, method: str, target: str, out: str | Path, *, folds: int = 5,
                    seed: int = 0, epochs: int | None = None, config_file: Path | None = None,
                    overrides: dict | None = None, cache_dir: Path | None = None, workers: int = 1,
                    device: str = "auto", progress: bool = False) -> Path:
    """Cross-validate a retrieval method over held-out patients; writes the files of the module docstring."""
    spec = get_spec(method)
    overrides = {**(overrides or {}), **({"epochs": epochs} if epochs else {})}
    mcfg = method_config(spec, config_file, overrides)
    if folds < 2:
        raise ValueError(f"{method}: retrieval is cross-validated over held-out patients; give --folds >= 2")
    cfg = RunConfig(cohort=str(Path(cohort_path).resolve()), method=method, target=target, folds=folds, seed=seed,
                    epochs=epochs, method_config=mcfg.model_dump(mode="json"))
    out = Path(out)
    _claim(out, cfg)
    model = spec.factory(mcfg)
    inputs, skipped = prepare_lineages(model, Cohort.from_folder(cohort_path), cache_dir, workers, progress)
    ids = sorted(inputs)
    if len(ids) < folds:
        raise ValueError(f"{cohort_path}: {len(ids)} usable patients for {folds} folds; use fewer folds")
    tests = kfold(np.zeros(len(ids), int), folds, seed)
    splits = pd.DataFrame([(p, k, "test" if i in set(test) else "train") for k, test in enumerate(tests)
                           for i, p in enumerate(ids)], columns=["patient_id", "fold", "role"])
    _write_once(out / "splits.csv", splits.to_csv(index=False))
    write_json(out / "cohort.json", {"cohort": str(cohort_path), "n_patients": len(ids),
                                     "n_samples": sum(len(inputs[p]["samples"]) for p in ids),
                                     "n_patches": sum(len(inputs[p]["patches"]) for p in ids),
                                     "modalities": {m: len(ids) for m in model.needs},
                                     "tokens": model.fingerprint.get("tokens"),
                                     "skipped": [{"patient_id": p, "reason": r} for p, r in sorted(skipped.items())]})
    parts = [_fold(model, inputs, splits[splits.fold == k], k, cfg, out, device) for k in range(folds)]
    retrievals = pd.concat([p[0] for p in parts], ignore_index=True)
    atomic_write_bytes(out / "retrievals.csv", retrievals.to_csv(index=False).encode())
    genes = rank_genes([p[1] for p in parts], mcfg.top_genes)
    atomic_write_bytes(out / "top_genes.csv", genes.to_csv(index=False).encode())
    report = {"method": method, "target": target, **retrieval_metrics(retrievals, seed=seed),
              "validation": f"{folds}-fold cv over held-out patients", "gallery": mcfg.gallery,
              "tokens": model.fingerprint.get("tokens"), "skipped_patients": len(skipped)}
    write_json(out / "metrics.json", report)
    return out


def _fold(model, inputs: dict, split: pd.DataFrame, k: int, cfg: RunConfig, out: Path,
          device: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit fold ``k`` (or read it back when finished); returns its retrievals and gene votes."""
    work = out / "work" / f"fold{k}"
    done, votes_csv = work / "retrievals.csv", work / "gene_votes.csv"
    if done.is_file() and votes_csv.is_file() and (out / "model" / f"fold{k}.json").is_file():
        log.info("fold %d already finished: skipping", k)
        return pd.read_csv(done, dtype={"patient_id": str}), pd.read_csv(votes_csv)
    train_ids = split[split.role == "train"].patient_id.tolist()
    test_ids = split[split.role == "test"].patient_id.tolist()
    state = model.fit(Lineages.of([inputs[p] for p in train_ids]), cfg.target, cfg.seed + k, device)
    save_checkpoint(out / "model" / f"fold{k}.safetensors", state, {
        "method": cfg.method, "target": cfg.target, "classes": [], "fold": k, "config": cfg.method_config,
        "preprocessing": model.fingerprint, "method_state": model.sidecar(), "fit": model.fit_summary,
        "kind": "fold"})
    gallery_ids = test_ids if model.config.gallery == "held_out" else sorted(inputs)
    retrievals, votes = retrieve(model, state, [inputs[p] for p in test_ids], [inputs[p] for p in gallery_ids],
                                 k, device)
    atomic_write_bytes(votes_csv, votes.to_csv(index=False).encode())
    atomic_write_bytes(done, retrievals.to_csv(index=False).encode())  # written last: marks the fold finished
    return retrievals, votes


def match(model, state, q: Lineages, g: Lineages, device: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """One fold model's cosine similarity of every query patch to every gallery sample, and the gene importance
    of each patch's top-1 retrieval (the projections are unit norm, so their dot product is the cosine).

    Shapes:
        -> similarity (M, N), importance (M, G') over ``model.genes``
    """
    net, scaler = model.load(state, device)
    patches = model.embed_patches(net, q.patches)
    rna, x = model.embed_rna(net, scaler, g)
    similarity = patches.astype(np.float64) @ rna.T.astype(np.float64)
    return similarity, retrieval_gene_importance(net, x[similarity.argmax(axis=1)], patches)


def frame_of(q: Lineages, g: Lineages, fold, similarity: np.ndarray) -> pd.DataFrame:
    """The ``retrievals.csv`` rows of the top-1 gallery sample of each query patch under ``similarity``."""
    best = similarity.argmax(axis=1)
    return retrieval_frame(q.patch_ids, np.array(q.patients)[q.patch_sample], np.array(q.samples)[q.patch_sample],
                           fold, g.samples, g.patients, best, similarity[np.arange(len(best)), best])


def retrieve(model, state, queries: list[dict], gallery: list[dict], fold, device: str = "auto"
             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Top-1 RNA sample of every query patch among the gallery's samples (with the genes each retrieval leans
    on most), and the gene votes of those retrievals."""
    q, g = Lineages.of(queries), Lineages.of(gallery)
    similarity, importance = match(model, state, q, g, device)
    frame = frame_of(q, g, fold, similarity)
    top = retrieval_top_genes(importance, model.genes, model.config.top_genes)
    frame["top_genes"] = [";".join(row) for row in top]
    return frame, gene_votes(importance, model.genes, top)


def evaluate_retrieval(run: str | Path, cohort_path: str | Path, out: str | Path, *, cache_dir: Path | None = None,
                       workers: int = 1, device: str = "auto", progress: bool = False) -> Path:
    """Every patch of another cohort retrieves among that cohort's RNA samples, by the fold models' mean
    similarity; writes retrievals.csv, top_genes.csv (votes of each fold model), metrics.json, cohort.json."""
    from gliotype.train.apply import load_run

    cfg, model, folds = load_run(run)
    inputs, skipped = prepare_lineages(model, Cohort.from_folder(cohort_path), cache_dir, workers, progress)
    data = Lineages.of([inputs[p] for p in sorted(inputs)])
    similarity, votes = 0.0, []
    for weights, sidecar in folds:
        model.restore(sidecar["method_state"])
        fold_similarity, importance = match(model, weights, data, data, device)
        similarity = similarity + fold_similarity / len(folds)
        votes.append(gene_votes(importance, model.genes,
                                retrieval_top_genes(importance, model.genes, model.config.top_genes)))
    frame = frame_of(data, data, "ensemble", similarity)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "retrievals.csv", frame.to_csv(index=False).encode())
    atomic_write_bytes(out / "top_genes.csv", rank_genes(votes, model.config.top_genes).to_csv(index=False).encode())
    write_json(out / "cohort.json", {"cohort": str(cohort_path), "n_patients": len(inputs),
                                     "skipped": [{"patient_id": p, "reason": r} for p, r in sorted(skipped.items())]})
    metrics = retrieval_metrics(frame, seed=cfg.seed)
    write_json(out / "metrics.json", {"method": cfg.method, "target": cfg.target, **metrics,
                                      "validation": "external cohort", "gallery": "all", "model": "fold_ensemble",
                                      "n_models": len(folds), "run": str(Path(run).resolve())})
    return out


def explain_retrieval(run: str | Path, cohort_path: str | Path, patient_id: str, out: str | Path, *,
                      cache_dir: Path | None = None, device: str = "auto") -> dict:
    """One patient's patches retrieve among the cohort's RNA samples with every fold model; writes
    ``retrievals.csv`` (column ``fold``: the model) and ``top_genes.csv`` (the genes those retrievals lean on)
    into ``out``; returns a summary (accuracies over these retrievals, the files)."""
    from gliotype.train.apply import load_run

    cfg, model, folds = load_run(run)
    cohort = Cohort.from_folder(cohort_path)
    if patient_id not in cohort.patient_ids:
        raise ValueError(f"{cohort_path}: no patient {patient_id!r}; e.g. {cohort.patient_ids[:3]}")
    inputs, skipped = prepare_lineages(model, cohort, cache_dir, 1, False)
    if patient_id not in inputs:
        raise ValueError(f"{patient_id}: cannot be explained: {skipped.get(patient_id, 'no usable patch or RNA')}")
    frames, votes = [], []
    for k, (weights, sidecar) in enumerate(folds):
        model.restore(sidecar["method_state"])
        frame, vote = retrieve(model, weights, [inputs[patient_id]], [inputs[p] for p in sorted(inputs)], k, device)
        frames.append(frame)
        votes.append(vote)
    frame, out = pd.concat(frames, ignore_index=True), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    genes = rank_genes(votes, model.config.top_genes)
    files = {"retrievals": out / "retrievals.csv", "top_genes": out / "top_genes.csv"}
    atomic_write_bytes(files["retrievals"], frame.to_csv(index=False).encode())
    atomic_write_bytes(files["top_genes"], genes.to_csv(index=False).encode())
    return {"patient_id": patient_id, "n_patches": int(len(frame) // len(folds)), "n_models": len(folds),
            "lineage_accuracy": float((frame.retrieved_lineage == frame.lineage).mean()),
            "patient_accuracy": float((frame.retrieved_patient == frame.patient_id).mean()),
            "top_genes": genes.gene.tolist(), "files": {k: str(v) for k, v in files.items()}}
