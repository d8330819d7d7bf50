"""The report section of a retrieval run (``wsi-rna``): accuracies against chance, the top genes, the data used."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

import pandas as pd

from gliotype.evaluate.retrieval import retrieval_metrics
from gliotype.report.html import fmt, fmt_ci, table


def is_retrieval_run(path: Path) -> bool:
    """A folder written by a retrieval run (``retrievals.csv``, no ``predictions.csv``)."""
    return (path / "retrievals.csv").is_file() and not (path / "predictions.csv").is_file()


def retrieval_section(index: int, path: Path, name: str) -> str:
    """Lineage and patient top-1 accuracy with CIs and chance (recomputed from ``retrievals.csv``), the top
    genes (``top_genes.csv``) and the gene tokens and patches used."""
    saved = json.loads((path / "metrics.json").read_text()) if (path / "metrics.json").is_file() else {}
    retrievals = pd.read_csv(path / "retrievals.csv", dtype={"patient_id": str, "retrieved_patient": str})
    m = retrieval_metrics(retrievals, seed=0)
    rows = [[escape(k.replace("_", " ")), fmt_ci(v), fmt(m["chance"][k]),
             fmt(v["value"] / m["chance"][k], 1) + "x"] for k, v in m["metrics"].items()]
    where = f"{saved.get('validation', 'n/a')}; gallery: {saved.get('gallery', 'n/a')}"
    parts = [f"<h3>Retrieval (top-1 by cosine similarity, {m['n']} patches of {m['n_patients']} patients; "
             f"{escape(where)})</h3>",
             table(["metric", "value [95% CI, patient bootstrap]", "chance", "vs chance"], rows)]
    if (path / "top_genes.csv").is_file():
        genes = pd.read_csv(path / "top_genes.csv")
        parts += ["<h3>Top genes by occurrence among the retrievals' most important genes</h3>",
                  table(["rank", "gene", "retrievals", "fraction", "mean importance"],
                        [[str(r.rank), escape(str(r.gene)), str(r.retrievals), fmt(r.fraction),
                          fmt(r.mean_importance, 4)] for r in genes.itertuples()], left_columns=2)]
    tokens = saved.get("tokens") or {}
    if tokens:
        parts.append(f"<p class='muted'>gene tokens: {tokens.get('count')} of sizes {tokens.get('sizes')}</p>")
    return (f"<section id='run-{index}'><h2>{index}. {escape(name)}</h2><p class='muted'>{escape(str(path))}</p>"
            + "".join(parts) + "</section>")
