"""``Case`` (one patient's files and labels) and ``Cohort`` (all patients of a folder, DESIGN.md Contract 1)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pandas as pd

from gliotype.cohort import layout
from gliotype.cohort.labels import TARGETS, read_labels
from gliotype.cohort.tables import read_ppi, read_rnaseq

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    """Something wrong with one patient (or, with ``patient_id == "*"``, with the cohort).

    ``modality`` names what the problem makes unusable (``"labels"`` or ``None`` for the whole patient).
    """

    patient_id: str
    file: str
    message: str
    modality: str | None = None

    def __str__(self) -> str:
        where = f"{self.patient_id}: {self.file}" if self.file else self.patient_id
        return f"{where}: {self.message}"


@dataclass
class Case:
    """One patient: the files found for each modality and the labels.

    Attributes:
        patient_id: the id shared by ``labels.csv`` and the patient folder.
        folder: the patient folder, ``None`` for a patient with only cohort-level data (RNA-seq).
        images: ``{modality: path}`` for t1n, t1c, t2w, t2f, seg, dsc, fa.
        histology: ROI tiles or slides under ``folder/histology``.
        labels: canonical labels (``idh``, ``codel_1p19q``, ``grade``, ``site``, ``cnv_*`` ...), ``None`` = unknown.
        has_rnaseq: whether ``rnaseq.tsv`` has at least one sample of this patient.
    """

    patient_id: str
    folder: Path | None = None
    images: dict[str, Path] = field(default_factory=dict)
    histology: list[Path] = field(default_factory=list)
    labels: dict[str, str | None] = field(default_factory=dict)
    has_rnaseq: bool = False

    def has(self, modality: str) -> bool:
        """Whether the case has ``modality`` (``mri`` = all four structural sequences)."""
        if modality == "mri":
            return all(s in self.images for s in layout.MRI_SEQUENCES)
        if modality == "histology":
            return bool(self.histology)
        if modality == "rnaseq":
            return self.has_rnaseq
        return modality in self.images

    def label(self, target: str) -> str | None:
        return self.labels.get(target)

    @property
    def modalities(self) -> list[str]:
        return [m for m in layout.MODALITIES if self.has(m)]


class Cohort:
    """All patients of a cohort folder, with the problems found while reading it.

    Reading is cheap (file names and ``labels.csv`` only); :func:`gliotype.cohort.validate` opens the files.

    Example:
        >>> cohort = Cohort.from_folder("data/tcga-mri")    # doctest: +SKIP
        >>> cohort["TCGA-DU-7294"].label("idh")             # doctest: +SKIP
        'mutant'
    """

    def __init__(self, root: Path, cases: dict[str, Case], problems: list[Problem],
                 rnaseq_path: Path | None = None, ppi_path: Path | None = None):
        self.root = root
        self.cases = cases
        self.problems = problems
        self.rnaseq_path = rnaseq_path
        self.ppi_path = ppi_path
        self._rnaseq: pd.DataFrame | None = None

    @classmethod
    def from_folder(cls, root: str | Path) -> Cohort:
        """Read a cohort folder (Contract 1). Raises FileNotFoundError when it has no ``labels.csv``."""
        root = Path(root)
        labels_path = layout.find_table(root, "labels")
        if not root.is_dir() or labels_path is None:
            raise FileNotFoundError(
                f"{root}: not a cohort folder; it needs a labels.csv with a patient_id column "
                "(see `gliotype synth` for an example layout)"
            )
        table, label_problems = read_labels(labels_path)
        problems = [Problem(p.patient_id, labels_path.name, p.message, "labels") for p in label_problems]
        folders = {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")}
        rnaseq_path = layout.find_table(root, "rnaseq")
        cohort = cls(root, {}, problems, rnaseq_path, layout.find_table(root, "ppi"))
        rna_patients = cohort._rnaseq_patients(list(table.index))
        for pid in sorted(set(table.index) | set(folders)):
            case = Case(pid, folders.get(pid), has_rnaseq=pid in rna_patients)
            if pid in table.index:
                row = table.loc[pid]
                case.labels = {k: (None if v in ("", None) or pd.isna(v) else str(v)) for k, v in row.items()}
            elif folders.get(pid):
                problems.append(Problem(pid, labels_path.name, "has a folder but no row in labels.csv; "
                                        "add a row (leave unknown labels empty) or remove the folder", "labels"))
            if case.folder is not None:
                case.images, clashes = layout.find_images(case.folder, pid)
                case.histology = layout.find_histology(case.folder)
                problems.extend(Problem(pid, case.folder.name, c) for c in clashes)
            elif not case.has_rnaseq:
                problems.append(Problem(pid, labels_path.name, f"has a row in labels.csv but no folder "
                                        f"{pid}/ and no RNA-seq sample; add the folder or remove the row"))
            cohort.cases[pid] = case
        log.info("read cohort %s: %d patients, %d problems", root, len(cohort.cases), len(problems))
        return cohort

    def _rnaseq_patients(self, patient_ids: list[str]) -> set[str]:
        if self.rnaseq_path is None:
            return set()
        try:
            return set(self.rnaseq(patient_ids)["patient_id"])
        except ValueError as err:
            self.problems.append(Problem("*", self.rnaseq_path.name, str(err), "rnaseq"))
            return set()

    def rnaseq(self, patient_ids: list[str] | None = None) -> pd.DataFrame:
        """The expression table, samples x genes with a ``patient_id`` column (read once, then cached)."""
        if self.rnaseq_path is None:
            raise FileNotFoundError(f"{self.root}: no rnaseq.tsv in this cohort")
        if self._rnaseq is None:
            self._rnaseq = read_rnaseq(self.rnaseq_path, patient_ids or list(self.cases))
        return self._rnaseq

    @cached_property
    def ppi(self) -> pd.DataFrame:
        if self.ppi_path is None:
            raise FileNotFoundError(f"{self.root}: no ppi.csv in this cohort")
        return read_ppi(self.ppi_path)

    def __getitem__(self, patient_id: str) -> Case:
        try:
            return self.cases[patient_id]
        except KeyError:
            raise KeyError(f"no patient {patient_id!r} in {self.root}; "
                           f"it has {len(self.cases)} patients, e.g. {list(self.cases)[:5]}") from None

    def __len__(self) -> int:
        return len(self.cases)

    def __iter__(self):
        return iter(self.cases.values())

    @property
    def patient_ids(self) -> list[str]:
        return list(self.cases)

    def problems_of(self, patient_id: str) -> list[Problem]:
        return [p for p in self.problems if p.patient_id == patient_id]

    def label_table(self, target: str) -> pd.Series:
        """The canonical labels of ``target`` per patient (``None`` where unknown)."""
        if target not in TARGETS:
            raise ValueError(f"unknown target {target!r}; choose one of {list(TARGETS)}")
        return pd.Series({pid: c.label(target) for pid, c in self.cases.items()}, name=target, dtype=object)
