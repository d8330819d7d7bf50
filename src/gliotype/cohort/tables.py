"""Cohort-level tables: ``rnaseq.tsv`` in either orientation, and the protein-interaction list ``ppi.csv``.

``rnaseq.tsv`` is either samples x genes (first column ``patient_id``, optional ``sample_id`` column for
several samples or lineages of one patient) or genes x patients (first column the gene symbol, one column
per patient). The orientation is decided from the first header and, failing that, from which axis holds
the patient ids of ``labels.csv``.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from gliotype.cohort.labels import COLUMN_ALIASES

GENE_HEADERS = ("gene", "genes", "symbol", "gene_symbol", "hugo_symbol", "gene_id", "gene_name", "")
SAMPLE_HEADERS = ("sample_id", "sample", "lineage")


def _sep(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    return "," if name.endswith(".csv") else "\t"


def _first_line(path: Path) -> str:
    """The header line of a text table, gzipped or not (reading it with pandas parses far more)."""
    with (gzip.open(path, "rt") if path.suffix == ".gz" else open(path)) as f:
        return f.readline().rstrip("\r\n")


def read_rnaseq(path: str | Path, patient_ids: Iterable[str] = ()) -> pd.DataFrame:
    """Read an expression table as samples x genes.

    Args:
        path: the table (``.tsv``/``.csv``, optionally gzipped).
        patient_ids: the cohort's patients, used to recognise the genes x patients orientation.

    Returns:
        A float frame indexed by sample (``patient_id``, or ``sample_id`` where given) with a
        ``patient_id`` column first, then one column per gene.

    Raises:
        ValueError: the table has no recognisable patient axis or non-numeric expression values.
    """
    path = Path(path)
    sep = _sep(path)
    header = pd.Index([c.strip("\"") for c in _first_line(path).split(sep)])
    first = header[0].strip().lower()
    if first in COLUMN_ALIASES["patient_id"]:  # samples as rows: ids read as text, genes parsed as numbers
        sample_col = next((c for c in header[1:3] if c.strip().lower() in SAMPLE_HEADERS), None)
        text = dict.fromkeys([header[0], *([sample_col] if sample_col else [])], str)
        table = pd.read_csv(path, sep=sep, dtype=text, na_values=[""], keep_default_na=False, low_memory=False)
        table = table.rename(columns={header[0]: "patient_id"})
    elif first in GENE_HEADERS or set(header[1:]) & set(patient_ids):  # genes as rows, one column per sample
        table = pd.read_csv(path, sep=sep, index_col=0, na_values=[""], keep_default_na=False, low_memory=False)
        table = table.T.rename_axis("patient_id").reset_index()
        table["patient_id"] = table["patient_id"].astype(str)
        sample_col = None
    else:
        raise ValueError(
            f"{path.name}: cannot tell patients from genes; name the first column 'patient_id' "
            f"(patients as rows) or 'gene' (genes as rows, one column per patient)"
        )
    genes = [c for c in table.columns if c not in ("patient_id", sample_col)]
    kind = dict(zip(table.columns, (d.kind for d in table.dtypes)))  # per column without 60k Series (fast)
    text = [g for g in genes if kind[g] not in "iufb"]
    if text:
        raise ValueError(f"{path.name}: expression values must be numbers; {len(text)} genes hold text, e.g. "
                         f"{text[:3]} (first value {table[text[0]].dropna().iloc[0]!r}); fix or remove them")
    index = table[sample_col] if sample_col else table["patient_id"]
    values = pd.DataFrame(table[genes].to_numpy(dtype=float), columns=pd.Index(genes),
                          index=pd.Index(index.str.strip().to_numpy(), name="sample_id"))
    values.insert(0, "patient_id", table["patient_id"].str.strip().to_numpy())
    return values


def read_ppi(path: str | Path) -> pd.DataFrame:
    """Read protein interactions as columns ``gene_a, gene_b, score`` (score 1.0 where absent).

    Two gene-symbol columns are taken from ``symbol_1/symbol_2``, ``gene_a/gene_b``,
    ``protein1/protein2`` or, failing those, the first two columns. An edge with an empty symbol (STRING v12
    has 65, for proteins without one) names no gene and is dropped.
    """
    path = Path(path)
    raw = pd.read_csv(path, sep=_sep(path))
    lower = {c.lower(): c for c in raw.columns}
    for a, b in (("symbol_1", "symbol_2"), ("gene_a", "gene_b"), ("protein1", "protein2"), ("gene1", "gene2")):
        if a in lower and b in lower:
            pair = [lower[a], lower[b]]
            break
    else:
        pair = list(raw.columns[:2])
    symbols = raw[pair].fillna("").astype(str).apply(lambda column: column.str.strip())
    raw = raw[(symbols != "").all(axis=1)]
    score_col = next((lower[c] for c in ("combined_score", "score", "weight") if c in lower), None)
    score = raw[score_col].astype(float) if score_col else 1.0
    return pd.DataFrame({"gene_a": raw[pair[0]].astype(str), "gene_b": raw[pair[1]].astype(str), "score": score}
                        ).reset_index(drop=True)
