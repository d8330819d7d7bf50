"""Reading ``labels.csv``: canonical columns, the TCGA/Ceccarelli aliases, and value normalisation.

Canonical form (DESIGN.md Contract 1):

=============  ==========================  ==========================================
column         values                      aliases read (case-insensitive)
=============  ==========================  ==========================================
patient_id     any string                  ``patient``, ``case_id``, ``case``, ``id``
idh            ``mutant`` / ``wildtype``   ``IDH.status`` (Mutant/WT), 1/0, MUT/WT, yes/no
codel_1p19q    ``codeleted`` / ``intact``  ``X1p.19q.codeletion`` (codel/non-codel), 1/0, yes/no
grade          ``2`` / ``3`` / ``4``       ``Grade`` (G2/G3/G4), II/III/IV
=============  ==========================  ==========================================

An empty cell (or NA/NaN/unknown) is an unknown label, never a class. A value that is none of the
known forms is reported as a problem for that patient, never silently turned into a class.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

TARGETS: dict[str, tuple[str, ...]] = {
    "idh": ("wildtype", "mutant"),
    "codel_1p19q": ("intact", "codeleted"),
    "grade": ("2", "3", "4"),
}
"""Each target's classes, in the order used for ``prob_<class>`` columns (positive class last)."""

CNV_CLASSES: tuple[str, ...] = ("-2", "-1", "0", "1", "2")
"""Classes of a ``cnv_<GENE>`` column: GISTIC-style copy-number calls (deep loss .. amplification)."""

NORMAL_CLASS: dict[str, str] = {"idh": "wildtype", "codel_1p19q": "intact", "cnv": "0"}
"""The normal status of each biomarker kind (``cnv`` for every ``cnv_<GENE>``), e.g. for ``fof``'s negative views."""


def label_classes(name: str) -> tuple[str, ...]:
    """The classes of a label column: a target's (:data:`TARGETS`) or a CNV column's (:data:`CNV_CLASSES`).

    >>> label_classes("cnv_EGFR")
    ('-2', '-1', '0', '1', '2')
    """
    if name in TARGETS:
        return TARGETS[name]
    if name.startswith("cnv_") and len(name) > 4:
        return CNV_CLASSES
    raise ValueError(f"unknown label {name!r}; labels are {list(TARGETS)} or cnv_<GENE> (e.g. cnv_EGFR)")


def normal_class(name: str) -> int:
    """The index in :func:`label_classes` of a biomarker's normal status (wildtype, intact, CNV 0)."""
    return label_classes(name).index(NORMAL_CLASS["cnv" if name.startswith("cnv_") else name])

COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "patient_id": ("patient_id", "patient", "case_id", "case", "id", "subject", "subject_id"),
    "idh": ("idh", "idh.status", "idh_status", "idh status"),
    "codel_1p19q": ("codel_1p19q", "x1p.19q.codeletion", "1p19q", "1p/19q", "codeletion", "1p19q_codeletion"),
    "grade": ("grade", "who_grade", "who grade"),
}

VALUE_ALIASES: dict[str, dict[str, str]] = {
    "idh": {
        "mutant": "mutant", "mut": "mutant", "mutated": "mutant", "idh-mutant": "mutant", "1": "mutant",
        "yes": "mutant", "true": "mutant", "wildtype": "wildtype", "wt": "wildtype", "wild-type": "wildtype",
        "wild type": "wildtype", "idh-wildtype": "wildtype", "0": "wildtype", "no": "wildtype", "false": "wildtype",
    },
    "codel_1p19q": {
        "codeleted": "codeleted", "codel": "codeleted", "codeletion": "codeleted", "1": "codeleted",
        "yes": "codeleted", "true": "codeleted", "intact": "intact", "non-codel": "intact", "noncodel": "intact",
        "non-codeleted": "intact", "0": "intact", "no": "intact", "false": "intact",
    },
    "grade": {
        "2": "2", "g2": "2", "ii": "2", "3": "3", "g3": "3", "iii": "3", "4": "4", "g4": "4", "iv": "4",
    },
}

UNKNOWN_VALUES = frozenset({"", "na", "nan", "n/a", "none", "unknown", "not available", "[not available]", "-"})


@dataclass(frozen=True)
class LabelProblem:
    """One unusable cell or row in ``labels.csv``."""

    patient_id: str
    column: str
    message: str


def canonical_column(name: str) -> str:
    """Map a column header to its canonical name (``IDH.status`` -> ``idh``); unknown headers pass through."""
    key = name.strip().lower()
    for canonical, aliases in COLUMN_ALIASES.items():
        if key in aliases:
            return canonical
    if key.startswith("cnv_"):
        return "cnv_" + name.strip()[4:]
    return name.strip()


def normalise_value(target: str, raw: object) -> str | None:
    """Return the canonical class of ``raw`` for ``target``, ``None`` for an unknown label.

    Raises:
        ValueError: ``raw`` is neither a known form nor an unknown-label marker.
    """
    if raw is None or (isinstance(raw, float) and pd.isna(raw)):
        return None
    text = str(raw).strip()
    if isinstance(raw, float) and raw.is_integer():
        text = str(int(raw))
    key = text.lower()
    if key in UNKNOWN_VALUES:
        return None
    if key.endswith(".0") and key[:-2].isdigit():
        key = key[:-2]
    mapped = VALUE_ALIASES[target].get(key)
    if mapped is None:
        accepted = sorted({v for v in VALUE_ALIASES[target].values()})
        raise ValueError(
            f"{target} value {text!r} is not a known class; use one of {accepted} "
            f"(aliases such as {sorted(VALUE_ALIASES[target])[:6]} are read too), or leave the cell empty if unknown"
        )
    return mapped


def normalise_cnv(raw: object) -> str | None:
    """The canonical class of a copy-number call (``"-2"`` .. ``"2"``), ``None`` for an unknown one.

    Raises:
        ValueError: not an integer from -2 to 2 (``"1.0"`` and ``"+1"`` are read as 1).
    """
    if raw is None or (isinstance(raw, float) and pd.isna(raw)) or str(raw).strip().lower() in UNKNOWN_VALUES:
        return None
    try:
        value = float(str(raw).strip())
    except ValueError:
        value = float("nan")
    if not value.is_integer() or not -2 <= value <= 2:
        raise ValueError(f"copy-number value {str(raw).strip()!r} is not a call; use an integer from -2 (deep loss) "
                         "to 2 (amplification), GISTIC style, or leave the cell empty if unknown")
    return str(int(value))


def read_labels(path: str | Path) -> tuple[pd.DataFrame, list[LabelProblem]]:
    """Read a labels table into canonical columns, indexed by ``patient_id``.

    Returns:
        The table (one row per patient, string dtype, ``None`` for unknown labels) and the problems
        found: unknown values, duplicate patient ids. A patient with a problem stays in the table with
        the offending cell set to unknown, so the caller decides whether to skip it.
    """
    path = Path(path)
    sep = "\t" if path.suffix.lower() in {".tsv", ".txt"} else ","
    raw = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    raw.columns = [canonical_column(c) for c in raw.columns]
    if "patient_id" not in raw.columns:
        raise ValueError(
            f"{path}: no patient id column; name the first column 'patient_id' "
            f"(or one of {list(COLUMN_ALIASES['patient_id'])}); found {list(raw.columns)}"
        )
    raw["patient_id"] = raw["patient_id"].str.strip()
    problems: list[LabelProblem] = []
    duplicated = raw["patient_id"][raw["patient_id"].duplicated()].unique()
    for pid in duplicated:
        problems.append(LabelProblem(pid, "patient_id", f"{path.name}: patient {pid!r} has more than one row; keep one"))
    raw = raw.drop_duplicates("patient_id", keep="first").set_index("patient_id")
    cnv_columns = [c for c in raw.columns if c.startswith("cnv_") and len(c) > 4]
    for target in [*TARGETS, *cnv_columns]:
        if target not in raw.columns:
            continue
        values = []
        for pid, cell in raw[target].items():
            try:
                values.append(normalise_cnv(cell) if target in cnv_columns else normalise_value(target, cell))
            except ValueError as err:
                problems.append(LabelProblem(pid, target, f"{path.name}: {err}"))
                values.append(None)
        raw[target] = pd.Series(values, index=raw.index, dtype=object)
    return raw, problems
