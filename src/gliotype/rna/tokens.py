"""Gene tokens: groups of genes, each group one token of the RNA encoder (paper 003, section 2.2).

Two groupings:

- ``ppi``: Louvain communities of a protein-interaction graph restricted to the expression table's genes
  (:func:`networkx.community.louvain_communities`; on a ``DiGraph`` networkx maximises the directed
  modularity ``Q_d`` of the paper's eq. 1). STRING lists each undirected pair once, so the graph is
  undirected unless ``directed=True``, which reads every row as an edge ``gene_a -> gene_b``. The smallest
  communities are then merged until ``n_tokens`` remain (the paper: 11 communities grouped into 7).
- ``chromosome``: one token per chromosome (the paper's Table 1 alternative), from a gene -> chromosome table.

Genes that have no place (absent from the PPI, in it but without an edge to another gene of the table, or
of unknown chromosome) form one last token, ``remainder``; :attr:`GeneTokens.report` counts them.

Merge rule (``ppi``): while more than ``n_tokens`` communities remain, take the smallest one (ties: the
one whose first gene sorts first) and merge it into the community whose union with it loses the least
modularity -- the same modularity, at the same resolution, that Louvain maximised (directed ``Q_d`` on a
DiGraph). For an undirected graph of total edge weight ``m`` the change is
``w_st / m - resolution * D_s * D_t / (2 m^2)``, with ``w_st`` the edge weight between the two communities
and ``D`` their summed weighted degrees (directed: ``w_st / m - resolution * (out_s in_t + in_s out_t) / m^2``,
``w_st`` counting both directions). Ties go to the smaller community, then the first gene. So a community
joins the one it interacts with most *relative to chance*; one with no edge to any other (a separate
component) joins the least connected one. Merging by raw shared weight instead would feed every small
community to the largest (on the whole STRING graph: tokens of 8260 ... 940 genes instead of 3048 ... 1687,
the paper's being 3182 ... 1514). Final tokens are ordered largest first and named ``ppi-0``, ``ppi-1`` ...;
genes within a token are sorted.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Literal

import networkx as nx
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from gliotype.cohort.tables import read_ppi

log = logging.getLogger(__name__)

REMAINDER = "remainder"
CHROMOSOMES = tuple(str(i) for i in range(1, 23)) + ("X", "Y", "MT")
_FORMAT = "gliotype-gene-tokens"


@dataclass(frozen=True)
class GeneTokens:
    """Named groups of genes; ``remainder``, when present, is last.

    Attributes:
        names: token names, e.g. ``("ppi-0", ..., "ppi-6", "remainder")``.
        genes: the genes of each token, sorted.
        source: ``"ppi"`` or ``"chromosome"``.
        report: counts behind the grouping (genes, in PPI, isolated, communities, remainder ...).
    """

    names: tuple[str, ...]
    genes: tuple[tuple[str, ...], ...]
    source: str
    report: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        if len(self.names) != len(self.genes) or len(set(self.names)) != len(self.names):
            raise ValueError(f"gene tokens need one unique name per gene group; got names {self.names!r} "
                             f"for {len(self.genes)} groups")
        seen: dict[str, str] = {}
        for name, genes in zip(self.names, self.genes):
            if not genes:
                raise ValueError(f"gene token {name!r} is empty; every token needs at least one gene")
            for gene in genes:
                if gene in seen:
                    raise ValueError(f"gene {gene!r} is in two tokens, {seen[gene]!r} and {name!r}; "
                                     "a gene belongs to exactly one token")
                seen[gene] = name

    @property
    def sizes(self) -> tuple[int, ...]:
        """The number of genes of each token."""
        return tuple(len(g) for g in self.genes)

    def index(self, genes_in_table: Sequence[str]) -> list[np.ndarray]:
        """Column indices of each token's genes in ``genes_in_table``, in the token's (sorted) gene order.

        The order follows the token, not the table, so a table with its columns shuffled yields the same
        sub-vectors. Table genes in no token are ignored; a token gene missing from the table is an error.

        Shapes:
            one int64 array of shape ``(sizes[k],)`` per token ``k``.
        """
        position = {g: i for i, g in enumerate(genes_in_table)}
        missing = [g for token in self.genes for g in token if g not in position]
        if missing:
            raise ValueError(f"{len(missing)} of the {sum(self.sizes)} token genes are not among the table's "
                             f"{len(position)} genes, e.g. {missing[:5]}; build the tokens from this table's "
                             "genes (after the same filtering) or filter the table the same way")
        return [np.array([position[g] for g in token], dtype=np.int64) for token in self.genes]

    def summary(self) -> str:
        """One line: how many tokens, their sizes and the remainder."""
        rest = self.sizes[-1] if self.names and self.names[-1] == REMAINDER else 0
        sizes = self.sizes[:-1] if rest else self.sizes
        return (f"{len(sizes)} {self.source} tokens of {sum(sizes)} genes (sizes {', '.join(map(str, sizes))}); "
                f"remainder {rest} genes")

    def to_json(self) -> str:
        """The tokens as JSON, to save next to a model."""
        payload = {"format": _FORMAT, "version": 1, "source": self.source,
                   "tokens": {n: list(g) for n, g in zip(self.names, self.genes)}, "report": self.report}
        return json.dumps(payload, indent=1)

    @classmethod
    def from_json(cls, text: str) -> GeneTokens:
        """Read what :meth:`to_json` wrote."""
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError(f"not a gene-token file: expected a JSON object with format {_FORMAT!r} "
                             "(written by GeneTokens.to_json)")
        tokens = data["tokens"]
        return cls(tuple(tokens), tuple(tuple(g) for g in tokens.values()), data["source"], data.get("report", {}))


class TokenConfig(BaseModel):
    """How genes become tokens: ``ppi`` (Louvain on the PPI) or ``chromosome``; ``n_tokens`` is for ``ppi``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    grouping: Literal["ppi", "chromosome"] = "ppi"
    n_tokens: int = Field(7, ge=1)
    seed: int = 0
    resolution: float = Field(1.0, gt=0)
    directed: bool = False
    weight: str | None = "score"


def build_tokens(genes: Iterable[str], config: TokenConfig, ppi=None,
                 chromosome_of: Mapping[str, str] | None = None) -> GeneTokens:
    """Tokens as ``config`` says: ``ppi`` needs ``ppi`` (edges or a file), ``chromosome`` needs ``chromosome_of``."""
    if config.grouping == "chromosome":
        if chromosome_of is None:
            raise ValueError("grouping 'chromosome' needs a gene -> chromosome table (chromosome_of=...); "
                             "give one, or use grouping 'ppi' with a PPI file")
        return chromosome_tokens(genes, chromosome_of)
    if ppi is None:
        raise ValueError("grouping 'ppi' needs protein interactions (ppi=: a ppi.csv path or read_ppi's frame); "
                         "give them, or use grouping 'chromosome' with a gene -> chromosome table")
    return ppi_tokens(genes, ppi, config.n_tokens, config.seed, config.resolution, config.directed, config.weight)


def cohort_tokens(cohort, genes: list[str], config: TokenConfig, ppi: str | None = None,
                  chromosomes: str | None = None, method: str = "") -> tuple[GeneTokens, str]:
    """A method's tokens for a cohort's genes and where they came from (a file name): the ``ppi`` file, else the
    cohort's ``ppi.csv`` (``grouping="ppi"``), or the ``chromosomes`` table (``grouping="chromosome"``)."""
    if config.grouping == "chromosome":
        if chromosomes is None:
            raise ValueError(f"{method}: groups=chromosome needs a gene -> chromosome table; give --set "
                             "chromosomes=PATH (CSV/TSV with 'gene' and 'chromosome' columns), or use groups=ppi")
        return build_tokens(genes, config, chromosome_of=read_gene_chromosomes(chromosomes)), Path(chromosomes).name
    if ppi is not None:
        if not Path(ppi).is_file():
            raise FileNotFoundError(f"{method}: ppi={ppi!r} is not a file; give the path of a PPI edge list "
                                    "(e.g. STRING: symbol_1, symbol_2, combined_score)")
        return build_tokens(genes, config, ppi=ppi), Path(ppi).name
    if cohort.ppi_path is None:
        raise ValueError(f"{cohort.root}: {method} groups genes by PPI communities but the cohort has no ppi.csv "
                         "and no ppi= was given; give --set ppi=PATH (a PPI edge list such as STRING's), put "
                         "ppi.csv in the cohort folder, or use --set groups=chromosome --set chromosomes=PATH")
    return build_tokens(genes, config, ppi=cohort.ppi), cohort.ppi_path.name


def ppi_tokens(genes: Iterable[str], edges: pd.DataFrame | str | Path, n_tokens: int = 7, seed: int = 0,
               resolution: float = 1.0, directed: bool = False, weight: str | None = "score") -> GeneTokens:
    """Louvain communities of the PPI among ``genes``, the smallest merged until ``n_tokens`` remain.

    Args:
        genes: the expression table's genes (symbols), e.g. ``table.columns[1:]`` of ``read_rnaseq``.
        edges: a PPI file (read by :func:`~gliotype.cohort.tables.read_ppi`), its frame (``gene_a, gene_b,
            score``) or a raw STRING frame (``symbol_1, symbol_2, combined_score``).
        n_tokens: tokens wanted (fewer when Louvain finds fewer communities), remainder not counted.
        seed: Louvain's seed; the same seed and inputs give the same tokens.
        resolution: Louvain's resolution (above 1: smaller communities).
        directed: a ``DiGraph`` (directed modularity) with edges ``gene_a -> gene_b``.
        weight: the edge-weight column (``"combined_score"`` is read as ``"score"``), ``None``: unweighted.
    """
    genes = _unique(genes)
    if isinstance(n_tokens, bool) or not isinstance(n_tokens, int) or n_tokens < 1:
        raise ValueError(f"n_tokens must be a whole number >= 1, got {n_tokens!r}")
    if not resolution > 0:
        raise ValueError(f"resolution must be > 0 (1 is plain modularity, above 1 smaller communities), "
                         f"got {resolution!r}")
    frame = _edge_frame(edges, weight)
    graph = _graph(genes, frame, directed)
    if graph.number_of_edges() == 0:
        raise ValueError(_no_overlap_message(genes, frame))
    found = nx.community.louvain_communities(graph, weight="weight", resolution=resolution, seed=seed)
    kept = sorted(merge_smallest(graph, found, n_tokens, resolution), key=lambda c: (-len(c), min(c)))
    in_ppi = set(genes) & (set(frame["gene_a"]) | set(frame["gene_b"]))
    rest = [g for g in genes if g not in graph]
    report = {"genes": len(genes), "in_ppi": len(in_ppi), "not_in_ppi": len(genes) - len(in_ppi),
              "isolated": len(in_ppi) - graph.number_of_nodes(), "edges": graph.number_of_edges(),
              "communities": len(found), "tokens": len(kept), "remainder": len(rest),
              "modularity": round(nx.community.modularity(graph, kept, weight="weight"), 4), "seed": seed,
              "resolution": resolution, "directed": directed}
    return _tokens([f"ppi-{i}" for i in range(len(kept))], kept, rest, "ppi", report)


def merge_smallest(graph: nx.Graph, communities: Iterable[Iterable[str]], n_tokens: int,
                   resolution: float = 1.0) -> list[set[str]]:
    """Merge the smallest community into the one that costs the least modularity, until ``n_tokens`` remain.

    The rule and its formula are in the module docstring; ``graph`` has its edge weights under ``"weight"``.
    """
    groups = {i: set(c) for i, c in enumerate(communities)}
    label = {g: i for i, c in groups.items() for g in c}
    degree = _degrees(graph, groups)
    m = graph.size(weight="weight")
    order = lambda i: (len(groups[i]), min(groups[i]))  # noqa: E731 - smallest first, ties by first gene
    while len(groups) > n_tokens:
        small = min(groups, key=order)
        shared = _shared_weight(graph, groups[small], label)
        gain = {i: shared.get(i, 0.0) / m - resolution * _expected(degree[small], degree[i], m, graph.is_directed())
                for i in groups if i != small}
        target = min(gain, key=lambda i: (-gain[i], *order(i)))
        for gene in groups[small]:
            label[gene] = target
        groups[target] |= groups.pop(small)
        degree[target] = tuple(a + b for a, b in zip(degree[target], degree.pop(small)))
    return list(groups.values())


def chromosome_tokens(genes: Iterable[str], chromosome_of: Mapping[str, str]) -> GeneTokens:
    """One token per chromosome present (``chr1`` ... ``chr22``, ``chrX``, ``chrY``, ``chrMT``, then others).

    ``chromosome_of`` maps a gene to its chromosome (``"1"``, ``"chr1"``, ``1``, ``"X"``, ``"M"`` ...; a
    pandas Series works); genes it lacks or maps to nothing go to ``remainder``.
    """
    genes = _unique(genes)
    groups: dict[str, list[str]] = defaultdict(list)
    unknown = []
    for gene in genes:
        chromosome = _chromosome_name(chromosome_of.get(gene))
        (groups[chromosome] if chromosome else unknown).append(gene)
    if not groups:
        raise ValueError(f"none of the {len(genes)} genes (e.g. {genes[:3]}) is in the gene -> chromosome table "
                         f"({len(chromosome_of)} genes, e.g. {list(chromosome_of)[:3]}): check that both use "
                         "gene symbols")
    order = sorted(groups, key=lambda c: (CHROMOSOMES.index(c), "") if c in CHROMOSOMES else (99, c))
    report = {"genes": len(genes), "chromosomes": len(order), "unknown": len(unknown), "remainder": len(unknown)}
    return _tokens([f"chr{c}" for c in order], [groups[c] for c in order], unknown, "chromosome", report)


GENE_COLUMNS = ("gene", "symbol", "gene_symbol", "hgnc_symbol", "gene_name", "gene name", "external_gene_name",
                "genes")
CHROMOSOME_COLUMNS = ("chromosome", "chr", "chrom", "chromosome_name", "chromosome/scaffold name", "seqname",
                      "seqnames", "seqid")


def read_gene_chromosomes(path: str | Path) -> dict[str, str]:
    """A gene -> chromosome table (``.csv``/``.tsv``, optionally gzipped) as a dict for :func:`chromosome_tokens`.

    The gene column is the first of :data:`GENE_COLUMNS` (``gene``, ``symbol``, ``hgnc_symbol``, BioMart's
    ``Gene name`` ...) and the chromosome column the first of :data:`CHROMOSOME_COLUMNS` (``chromosome``,
    ``chr``, BioMart's ``Chromosome/scaffold name`` ...), in any case; a two-column table without such names
    is read as ``gene, chromosome``. A gene listed twice keeps its
    first chromosome; rows without a chromosome are left out.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no gene -> chromosome table there; give a CSV/TSV with columns "
                                "'gene' and 'chromosome' (e.g. from Ensembl BioMart)")
    name = path.name.lower().removesuffix(".gz")
    frame = pd.read_csv(path, sep="\t" if name.endswith((".tsv", ".txt")) else ",", dtype=str)
    lower = {str(c).strip().lower(): c for c in frame.columns}
    gene = next((lower[c] for c in GENE_COLUMNS if c in lower), None)
    chromosome = next((lower[c] for c in CHROMOSOME_COLUMNS if c in lower), None)
    if (gene is None or chromosome is None) and len(frame.columns) == 2:
        gene, chromosome = frame.columns
    if gene is None or chromosome is None:
        raise ValueError(f"{path.name}: cannot find the gene and chromosome columns among {list(frame.columns)}; "
                         f"name them 'gene' and 'chromosome' (accepted: {GENE_COLUMNS} and {CHROMOSOME_COLUMNS})")
    rows = frame[[gene, chromosome]].dropna()
    rows = rows[rows[chromosome].str.strip() != ""].drop_duplicates(gene)
    if rows.empty:
        raise ValueError(f"{path.name}: no row has both a gene ({gene!r}) and a chromosome ({chromosome!r})")
    return dict(zip(rows[gene].str.strip(), rows[chromosome].str.strip()))


def _chromosome_name(value) -> str | None:
    """``"chr1"``, ``1``, ``1.0`` -> ``"1"``; ``"x"`` -> ``"X"``; ``"M"``, ``"chrM"`` -> ``"MT"``; empty -> None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    name = str(value).strip()
    name = name[3:] if name.lower().startswith("chr") else name
    name = name.upper() if name.upper() in ("X", "Y", "M", "MT") else name
    return ("MT" if name == "M" else name) or None


def _degrees(graph: nx.Graph, groups: Mapping[int, set[str]]) -> dict[int, tuple[float, float]]:
    """Each community's summed (out, in) weighted degree; both the plain degree on an undirected graph."""
    if graph.is_directed():
        out, into = dict(graph.out_degree(weight="weight")), dict(graph.in_degree(weight="weight"))
    else:
        out = into = dict(graph.degree(weight="weight"))
    return {i: (sum(out[g] for g in c), sum(into[g] for g in c)) for i, c in groups.items()}


def _expected(s: tuple[float, float], t: tuple[float, float], m: float, directed: bool) -> float:
    """The edge weight expected by chance between two communities, over ``m`` (the null-model term of Q)."""
    if directed:
        return (s[0] * t[1] + s[1] * t[0]) / m**2
    return s[0] * t[0] / (2 * m**2)


def _shared_weight(graph: nx.Graph, members: set[str], label: Mapping[str, int]) -> dict[int, float]:
    """Edge weight between ``members`` and each other community (both directions on a DiGraph)."""
    edges = graph.edges(members, data="weight")
    if graph.is_directed():
        edges = chain(edges, graph.in_edges(members, data="weight"))
    shared: dict[int, float] = defaultdict(float)
    for u, v, w in edges:
        for gene in (u, v):
            if gene not in members:
                shared[label[gene]] += w
    return dict(shared)


def _tokens(names: list[str], groups: list, rest: list[str], source: str, report: dict) -> GeneTokens:
    genes = [tuple(sorted(g)) for g in groups]
    if rest:
        names, genes = [*names, REMAINDER], [*genes, tuple(sorted(rest))]
    tokens = GeneTokens(tuple(names), tuple(genes), source, report)
    log.info("%s", tokens.summary())
    return tokens


def _unique(genes: Iterable[str]) -> list[str]:
    genes = [str(g) for g in genes]
    if len(set(genes)) != len(genes):
        twice = sorted({g for g in genes if genes.count(g) > 1})
        raise ValueError(f"genes must be unique; repeated: {twice[:5]}; merge or drop duplicate columns first")
    return genes


def _edge_frame(edges: pd.DataFrame | str | Path, weight: str | None) -> pd.DataFrame:
    """``gene_a, gene_b, weight`` from a PPI path, read_ppi's frame or a raw STRING frame."""
    frame = read_ppi(edges) if isinstance(edges, (str, Path)) else edges
    if {"symbol_1", "symbol_2"} <= set(frame.columns) and "gene_a" not in frame.columns:
        frame = frame.rename(columns={"symbol_1": "gene_a", "symbol_2": "gene_b", "combined_score": "score"})
    if not {"gene_a", "gene_b"} <= set(frame.columns):
        raise ValueError(f"PPI edges need gene-symbol columns 'gene_a, gene_b' (as read_ppi returns) or STRING's "
                         f"'symbol_1, symbol_2'; got {list(frame.columns)}")
    column = weight if weight is None or weight in frame.columns else {"combined_score": "score"}.get(weight, weight)
    if column is not None and column not in frame.columns:
        raise ValueError(f"no edge-weight column {weight!r} in the PPI; columns: {list(frame.columns)} "
                         "(or weight=None for an unweighted graph)")
    values = 1.0 if column is None else frame[column].astype(float)
    return pd.DataFrame({"gene_a": frame["gene_a"], "gene_b": frame["gene_b"], "weight": values})


def _graph(genes: list[str], frame: pd.DataFrame, directed: bool) -> nx.Graph:
    """The PPI among ``genes``: no self-loops, duplicate pairs kept once at their highest weight."""
    keep = frame["gene_a"].isin(genes) & frame["gene_b"].isin(genes) & (frame["gene_a"] != frame["gene_b"])
    edges = frame[keep]
    bad = edges["weight"][~(np.isfinite(edges["weight"]) & (edges["weight"] > 0))]
    if len(bad):
        raise ValueError(f"PPI edge weights must be positive numbers; found {bad.iloc[0]!r} ({len(bad)} edges); "
                         "fix the score column or use weight=None")
    a, b = edges["gene_a"].to_numpy(), edges["gene_b"].to_numpy()
    if not directed:
        a, b = np.minimum(a, b), np.maximum(a, b)
    pairs = pd.DataFrame({"a": a, "b": b, "w": edges["weight"].to_numpy()}).groupby(["a", "b"])["w"].max()
    graph = nx.DiGraph() if directed else nx.Graph()
    graph.add_nodes_from(sorted(set(a) | set(b)))
    graph.add_weighted_edges_from((u, v, w) for (u, v), w in sorted(pairs.items()))
    return graph


def _no_overlap_message(genes: list[str], frame: pd.DataFrame) -> str:
    ppi_genes = set(frame["gene_a"].dropna()) | set(frame["gene_b"].dropna())
    shared = set(genes) & ppi_genes
    if shared:
        return (f"the PPI has no edge between two of the table's genes ({len(shared)} of its {len(genes)} genes "
                "are in the PPI, none interacting): Louvain has nothing to group; use more genes or "
                "grouping 'chromosome'")
    hint = " (the table's genes look like Ensembl ids; map them to symbols)" if sum(
        g.startswith("ENSG") for g in genes) > len(genes) / 2 else ""
    return (f"none of the {len(genes)} genes of the expression table (e.g. {genes[:3]}) is in the PPI "
            f"({len(ppi_genes)} genes, e.g. {sorted(map(str, ppi_genes))[:3]}): check that both use gene "
            f"symbols{hint}")
