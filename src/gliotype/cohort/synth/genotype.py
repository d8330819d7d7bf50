"""Genotypes modelled on adult diffuse glioma: IDH, 1p/19q codeletion, WHO grade and CNVs.

Classes are balanced in blocks of ten patients (5 IDH-wildtype, 3 IDH-mutant 1p/19q-intact,
2 IDH-mutant codeleted), so any cohort of 40-60 patients has enough of each; grades and CNVs are
then drawn from the class-conditional distributions below. Decoy genotypes (see
:mod:`~gliotype.cohort.synth.signal`) are drawn independently from the same prior.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

CNV_GENES: tuple[str, ...] = ("EGFR", "PTEN", "CARD11", "FGFR2")
_CNV_VALUES = np.array([-2, -1, 0, 1, 2])

# Class -> probabilities of grade 2, 3, 4.
_GRADE_PROBS = {
    "wildtype": (0.05, 0.15, 0.80),
    "astrocytoma": (0.40, 0.40, 0.20),
    "oligodendroglioma": (0.55, 0.45, 0.00),
}
# Gene -> (probabilities over -2..2 in IDH-wildtype, the same in IDH-mutant).
_CNV_PROBS = {
    "EGFR": ((0.0, 0.0, 0.2, 0.2, 0.6), (0.0, 0.05, 0.85, 0.10, 0.0)),
    "PTEN": ((0.25, 0.50, 0.25, 0.0, 0.0), (0.0, 0.15, 0.85, 0.0, 0.0)),
    "CARD11": ((0.0, 0.0, 0.40, 0.50, 0.10), (0.0, 0.05, 0.85, 0.10, 0.0)),
    "FGFR2": ((0.05, 0.50, 0.45, 0.0, 0.0), (0.0, 0.10, 0.85, 0.05, 0.0)),
}
_BLOCK = ("wildtype",) * 5 + ("astrocytoma",) * 3 + ("oligodendroglioma",) * 2
_PRIOR = (0.5, 0.3, 0.2)


@dataclass(frozen=True)
class Genotype:
    """One patient's (or one decoy's) molecular type.

    Attributes:
        idh: ``"mutant"`` or ``"wildtype"``.
        codel_1p19q: ``"codeleted"`` or ``"intact"``; codeleted only when IDH-mutant.
        grade: WHO grade, 2, 3 or 4.
        cnv: Copy-number state per gene of :data:`CNV_GENES`, integers in -2..2.
    """

    idh: str
    codel_1p19q: str
    grade: int
    cnv: dict[str, int]

    @property
    def wildtype(self) -> float:
        """1.0 for IDH-wildtype, else 0.0."""
        return float(self.idh == "wildtype")

    @property
    def codeleted(self) -> float:
        """1.0 for 1p/19q-codeleted, else 0.0."""
        return float(self.codel_1p19q == "codeleted")

    @property
    def grade_level(self) -> float:
        """Grade scaled to [0, 1]: 2 -> 0, 3 -> 0.5, 4 -> 1."""
        return (self.grade - 2) / 2.0

    def to_dict(self) -> dict:
        """Plain-JSON form."""
        return asdict(self)


def _from_class(kind: str, rng: np.random.Generator) -> Genotype:
    grade = int(rng.choice([2, 3, 4], p=_GRADE_PROBS[kind]))
    mutant = kind != "wildtype"
    cnv = {gene: int(rng.choice(_CNV_VALUES, p=_CNV_PROBS[gene][int(mutant)])) for gene in CNV_GENES}
    return Genotype(
        idh="mutant" if mutant else "wildtype",
        codel_1p19q="codeleted" if kind == "oligodendroglioma" else "intact",
        grade=grade,
        cnv=cnv,
    )


def block_class(seed: int, index: int) -> str:
    """Class of patient ``index`` (0-based) from a seeded permutation of its block of ten.

    The class of a patient does not depend on the cohort size, so a larger cohort with the same
    seed extends a smaller one.
    """
    block, slot = divmod(index, len(_BLOCK))
    order = np.random.default_rng([seed, 7919, block]).permutation(len(_BLOCK))
    return _BLOCK[order[slot]]


def sample_genotype(kind: str, rng: np.random.Generator) -> Genotype:
    """Draw grade and CNVs for a patient of class ``kind``.

    Args:
        kind: ``"wildtype"``, ``"astrocytoma"`` (IDH-mutant, intact) or ``"oligodendroglioma"``.
        rng: The patient's sampling generator.
    """
    if kind not in _GRADE_PROBS:
        msg = f"Unknown glioma class {kind!r}; valid classes are {', '.join(_GRADE_PROBS)}"
        raise ValueError(msg)
    return _from_class(kind, rng)


def sample_decoy(rng: np.random.Generator) -> Genotype:
    """Draw a genotype from the prior, independently of the patient's true genotype."""
    kind = str(rng.choice(list(_GRADE_PROBS), p=_PRIOR))
    return _from_class(kind, rng)
