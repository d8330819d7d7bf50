"""Columns that must never be features because they encode a label.

A mutation, CNV or status column (``IDH1_mut``, ``IDH.status``, ``X1p.19q.codeletion``, ``Grade``,
``EGFR_cnv``) is a label in disguise: an ``IDH1_mut`` column predicts IDH trivially. Gene expression
columns (``IDH1``, ``EGFR``) are measurements and stay. Every column that looks like a label, a
mutation call, a copy-number call or a clinical grade is dropped, whatever the target, and reported.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

import pandas as pd

from gliotype.cohort.labels import TARGETS, canonical_column

log = logging.getLogger(__name__)

LEAKY = re.compile(
    r"(^|[._\s-])(mut|mutation|mutated|mutant|status|codel|codeletion|cnv|cna|amp|del|grade|histology|subtype)([._\s-]|$)"
    r"|^x?1p|19q",
    re.IGNORECASE,
)


def leaky_columns(columns: Iterable[str]) -> list[str]:
    """The columns that look like labels, mutation calls or copy-number calls.

    >>> leaky_columns(["IDH1", "IDH1_mut", "IDH.status", "EGFR", "EGFR_cnv", "Grade", "X1p.19q.codeletion"])
    ['IDH1_mut', 'IDH.status', 'EGFR_cnv', 'Grade', 'X1p.19q.codeletion']
    """
    return [c for c in columns if canonical_column(c) in TARGETS or LEAKY.search(str(c))]


def expression_features(table: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """An expression table (``patient_id`` then genes) without its label-like columns, and those columns
    (logged as a warning: they are never features)."""
    dropped = leaky_columns(table.columns[1:])
    if dropped:
        log.warning("not using %d label-like columns as features: %s", len(dropped), dropped[:10])
    return table.drop(columns=dropped), dropped
