"""Synthetic bulk RNA-seq on a modular gene network, and that network as a PPI table.

About 500 genes: real glioma genes placed in biologically sensible modules, plus made-up module
genes ``GMmm_kkk``. A sample's log-expression is

    x = mu_gene + loading_gene * (patient activity + sample deviation + genotype shift)_module
        + cnv_dose(gene) + lineage(sample) + noise

where genotype shifts come from the mixed rnaseq effect (never the labels themselves), CNVs shift
their own gene, and each lineage (sample) has a latent that drives the ``GM10`` lineage module plus
a few lineage-specific genes of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from gliotype.cohort.synth.genotype import CNV_GENES

N_MODULES = 10
GENES_PER_MODULE = 45
REAL_GENES: dict[str, tuple[str, ...]] = {
    "GM01": ("DLL3", "ASCL1", "OLIG1", "OLIG2", "SOX10", "BCAN", "NKX2-2"),
    "GM02": ("CIC", "FUBP1"),
    "GM03": ("MKI67", "TOP2A", "PCNA", "CCNB1", "AURKA", "BIRC5"),
    "GM04": ("CHI3L1", "CD44", "VIM", "SERPINE1", "POSTN", "TNC", "LGALS3", "PDPN"),
    "GM05": ("VEGFA", "HIF1A", "CA9"),
    "GM06": ("EGFR", "PDGFRA", "PIK3CA", "PIK3R1", "NF1", "CARD11"),
    "GM07": ("CDKN2A", "CDKN2B", "RB1", "CDK4", "MDM2", "TP53", "MYC"),
    "GM08": ("GFAP", "SOX2", "NES", "NOTCH1", "ATRX"),
    "GM09": ("PTEN", "FGFR2", "MGMT", "TERT", "IDH1", "IDH2"),
    "GM10": (),
}
# Module -> {rnaseq effect driver: shift in log2 units per unit driver}.
GENOTYPE_SHIFTS: dict[str, dict[str, float]] = {
    "GM01": {"idh_mutant": 1.3},
    "GM02": {"codeleted": -1.0},
    "GM03": {"grade": 1.5},
    "GM04": {"wildtype": 1.3},
    "GM05": {"wildtype": 0.6, "grade": 0.8},
}
LINEAGE_MODULE = "GM10"
CNV_DOSE = 0.9
N_LINEAGE_GENES = 5


@dataclass
class GeneSpace:
    """The cohort's genes and their parameters.

    Attributes:
        genes: Gene symbols, length G.
        module: Module of each gene, length G.
        mu: Baseline log-expression, shape (G,).
        loading: Module loading of each gene, shape (G,).
        lineage_loading: Loading of each gene on the 3 lineage latents, shape (G, 3) (GM10 only).
    """

    genes: list[str]
    module: list[str]
    mu: np.ndarray
    loading: np.ndarray
    lineage_loading: np.ndarray

    def modules(self) -> dict[str, list[str]]:
        """Module -> its genes."""
        out: dict[str, list[str]] = {}
        for gene, mod in zip(self.genes, self.module):
            out.setdefault(mod, []).append(gene)
        return out


def make_gene_space(seed: int) -> GeneSpace:
    """Draw the cohort's genes, modules, baselines and loadings from ``seed``."""
    rng = np.random.default_rng([seed, 10**6, 2])
    genes, module = [], []
    for m in range(1, N_MODULES + 1):
        name = f"GM{m:02d}"
        real = list(REAL_GENES[name])
        made_up = [f"{name}_{k:03d}" for k in range(1, GENES_PER_MODULE - len(real) + 1)]
        genes += real + made_up
        module += [name] * GENES_PER_MODULE
    n = len(genes)
    lineage = rng.normal(0, 0.7, (n, 3)) * (np.array(module) == LINEAGE_MODULE)[:, None]
    return GeneSpace(genes, module, rng.uniform(2.0, 10.0, n), rng.uniform(0.5, 1.5, n), lineage)


def lineage_genes(space: GeneSpace, n_samples: int, rng: np.random.Generator) -> list[list[str]]:
    """Draw each sample's lineage-specific genes (outside the genotype-shifted modules)."""
    pool = [g for g, m in zip(space.genes, space.module) if m not in GENOTYPE_SHIFTS]
    return [sorted(rng.choice(pool, N_LINEAGE_GENES, replace=False).tolist()) for _ in range(n_samples)]


def expression(
    space: GeneSpace,
    effect: dict[str, float],
    latents: np.ndarray,
    specific: list[list[str]],
    rng: np.random.Generator,
) -> np.ndarray:
    """Log-expression of one patient's samples.

    Args:
        space: The cohort's gene space.
        effect: Mixed rnaseq effect (module drivers and ``cnv_<GENE>`` doses).
        latents: Lineage latents of the samples, shape (S, 3).
        specific: Lineage-specific genes of each sample.
        rng: Rendering generator.

    Returns:
        float array of shape (S, G).
    """
    names = sorted(set(space.module))
    index = {m: i for i, m in enumerate(names)}
    col = np.array([index[m] for m in space.module])
    shift = np.zeros(len(names))
    for mod, drivers in GENOTYPE_SHIFTS.items():
        shift[index[mod]] = sum(coef * effect[key] for key, coef in drivers.items())
    activity = rng.normal(0, 0.4, len(names)) + shift
    position = {g: i for i, g in enumerate(space.genes)}
    cnv = np.zeros(len(space.genes))
    for gene in CNV_GENES:
        cnv[position[gene]] = CNV_DOSE * effect[f"cnv_{gene}"]
    rows = []
    for latent, genes in zip(latents, specific):
        deviation = rng.normal(0, 0.2, len(names))
        x = space.mu + space.loading * (activity + deviation)[col] + cnv + space.lineage_loading @ latent
        x[[position[g] for g in genes]] += 1.8
        rows.append(x + rng.normal(0, 0.25, len(space.genes)))
    return np.round(np.stack(rows), 4)


def ppi_table(space: GeneSpace, seed: int) -> pd.DataFrame:
    """A modular PPI: dense within modules (p 0.25), sparse across (p 0.004), STRING-like scores.

    Returns:
        DataFrame with columns ``symbol_1, symbol_2, combined_score`` (int 150-999).
    """
    rng = np.random.default_rng([seed, 10**6, 3])
    mod = np.array(space.module)
    i, j = np.triu_indices(len(space.genes), k=1)
    same = mod[i] == mod[j]
    keep = rng.random(len(i)) < np.where(same, 0.25, 0.004)
    score = np.where(same, rng.integers(500, 1000, len(i)), rng.integers(150, 500, len(i)))
    genes = np.array(space.genes)
    return pd.DataFrame(
        {"symbol_1": genes[i[keep]], "symbol_2": genes[j[keep]], "combined_score": score[keep]}
    )
