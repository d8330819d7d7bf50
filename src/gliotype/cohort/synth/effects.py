"""Phenotype effects of a genotype, one small vector per modality, and their signal mixing.

Every rendered appearance reads its modality's *mixed* effect and nothing else that depends on
the genotype, so a modality whose signal is 0 carries no label information.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from gliotype.cohort.synth.genotype import CNV_GENES, Genotype


def geometry(g: Genotype) -> dict[str, float]:
    """Shape: lobulation/roughness (``irregularity``), core radius and oedema margin in mm."""
    return {
        "irregularity": min(1.0, 0.1 + 0.75 * g.wildtype + 0.3 * g.grade_level),
        "core_radius_mm": 12.0 + 6.0 * g.wildtype + 3.0 * g.grade_level,
        "oedema_margin_mm": 3.0 + 5.0 * g.wildtype + 2.0 * g.grade_level,
    }


def texture(g: Genotype) -> dict[str, float]:
    """Intensity texture inside the lesion: T2-FLAIR mismatch, calcification speckle, heterogeneity."""
    astro = (1.0 - g.wildtype) * (1.0 - g.codeleted)
    return {
        "mismatch": astro * (1.0 - 0.5 * g.grade_level),
        "speckle": g.codeleted,
        "heterogeneity": min(1.0, 0.2 + 0.6 * g.wildtype + 0.4 * g.grade_level),
    }


def enhancement(g: Genotype) -> dict[str, float]:
    """Necrosis and ring enhancement on T1c, in [0, 1]."""
    return {"enhancement": min(1.0, 0.1 + 0.55 * g.wildtype + 0.5 * g.grade_level)}


def location(g: Genotype) -> dict[str, float]:
    """Propensity for a frontal, cortical placement."""
    astro = (1.0 - g.wildtype) * (1.0 - g.codeleted)
    return {"frontal": 0.1 + 0.8 * g.codeleted + 0.3 * astro}


def perfusion(g: Genotype) -> dict[str, float]:
    """Relative CBV of the tumour (normal white matter = 1) and T1 leakage."""
    return {
        "rcbv": 1.0 + 2.6 * g.wildtype + 0.8 * g.grade_level + 0.5 * g.codeleted,
        "leakage": 0.012 * g.wildtype + 0.012 * g.grade_level,
    }


def network(g: Genotype) -> dict[str, float]:
    """Disruption of three remote white-matter tract groups (see ``network.TRACT_GROUPS``)."""
    return {"callosal": g.wildtype, "frontal": g.codeleted, "posterior": g.grade_level}


def histology(g: Genotype) -> dict[str, float]:
    """Cellularity/atypia (grade), fried-egg halos (codel), microvascular proliferation, necrosis."""
    grade4 = float(g.grade == 4)
    return {
        "grade": g.grade_level,
        "halo": g.codeleted,
        "mvp": min(1.0, grade4 + 0.3 * g.wildtype * float(g.grade == 3)),
        "necrosis": grade4,
    }


def rnaseq(g: Genotype) -> dict[str, float]:
    """Module drivers (IDH-mutant, codeletion, grade, wildtype programme) and CNV dosage."""
    out = {
        "idh_mutant": 1.0 - g.wildtype,
        "codeleted": g.codeleted,
        "grade": g.grade_level,
        "wildtype": g.wildtype,
    }
    out.update({f"cnv_{gene}": float(g.cnv[gene]) for gene in CNV_GENES})
    return out


EFFECTS: dict[str, Callable[[Genotype], dict[str, float]]] = {
    "geometry": geometry,
    "texture": texture,
    "enhancement": enhancement,
    "location": location,
    "perfusion": perfusion,
    "network": network,
    "histology": histology,
    "rnaseq": rnaseq,
}


def mixed_effects(
    true: Genotype, decoys: Mapping[str, Genotype], signal: Mapping[str, float]
) -> dict[str, dict[str, float]]:
    """Mix every modality's effect between the true genotype and that modality's decoy.

    Args:
        true: The patient's genotype (the labels).
        decoys: Modality -> independently drawn decoy genotype.
        signal: Modality -> signal in [0, 1].

    Returns:
        Modality -> effect name -> ``s * effect(true) + (1 - s) * effect(decoy)``.
    """
    out = {}
    for key, effect in EFFECTS.items():
        s = signal[key]
        real, decoy = effect(true), effect(decoys[key])
        out[key] = {name: s * real[name] + (1.0 - s) * decoy[name] for name in real}
    return out
