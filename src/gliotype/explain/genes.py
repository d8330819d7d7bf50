"""Gene importance of image -> RNA retrievals (paper 003, section 3.4): gradient x input on the gene values.

For a query patch ``p`` that retrieved RNA sample ``r``, the score is their cosine similarity
``s = <z_p, z_r>`` (both L2-normalised projections). The importance of gene ``g`` is
``|ds/dx_rg * x_rg|`` on the scaled expression ``x_r`` — the Grad-CAM idea applied to the input layer,
where the "feature map" is the gene vector itself. Each retrieval votes for its ``k`` most important genes
(:func:`retrieval_top_genes`, :func:`gene_votes`); genes are ranked by how many retrievals voted for them,
summed over folds (:func:`rank_genes`; ties: by mean importance), as the paper's top-15 table. Only the RNA
side is differentiated: the patch embedding is a constant.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import torch

from gliotype.nn.image_rna import MultimodalModel


def retrieval_gene_importance(model: MultimodalModel, expression: np.ndarray, patch_embeddings: np.ndarray,
                              batch: int = 256) -> np.ndarray:
    """``|d cos(z_patch, z_rna) / d x * x|`` for each (retrieved RNA row, query patch) pair.

    Args:
        model: a fitted model in eval mode.
        expression: the scaled expression of the retrieved sample of each query.
        patch_embeddings: each query's patch projection (unit norm).

    Shapes:
        expression: (Q, G), patch_embeddings: (Q, D) -> (Q, G) float64
    """
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(expression), batch):
        x = torch.as_tensor(expression[i:i + batch], dtype=torch.float32, device=device).requires_grad_(True)
        z = torch.as_tensor(patch_embeddings[i:i + batch], dtype=torch.float32, device=device)
        (model.embed_rna(x) * z).sum().backward()  # rows are independent in eval mode: one backward for all
        out.append((x.grad * x).abs().detach().cpu().double().numpy())
    return np.concatenate(out) if out else np.zeros((0, expression.shape[1]))


def retrieval_top_genes(importance: np.ndarray, genes: list[str], k: int = 15) -> list[list[str]]:
    """Each retrieval's ``k`` most important genes, most important first (ties to the earlier gene).

    Shapes:
        importance: (Q, G) -> Q lists of min(k, G)
    """
    order = np.argsort(-importance, axis=1, kind="stable")[:, :min(k, len(genes))]
    return [[genes[j] for j in row] for row in order]


def gene_votes(importance: np.ndarray, genes: list[str], top: list[list[str]]) -> pd.DataFrame:
    """How many retrievals list each gene in ``top`` (:func:`retrieval_top_genes`, the lists retrievals.csv
    holds, so the votes are recomputable from it), and each gene's summed importance.

    Shapes:
        importance: (Q, G), top: Q lists -> frame of G rows: ``gene, retrievals, importance_sum, queries``
        (Q on every row).
    """
    if importance.shape[1] != len(genes) or len(top) != len(importance):
        raise ValueError(f"importance is {importance.shape} for {len(genes)} gene names and {len(top)} top lists")
    listed = Counter(gene for row in top for gene in row)
    return pd.DataFrame({"gene": genes, "retrievals": [listed[g] for g in genes],
                         "importance_sum": importance.sum(axis=0), "queries": len(importance)})


def rank_genes(votes: list[pd.DataFrame], k: int = 15) -> pd.DataFrame:
    """The ``k`` genes with the most votes over several :func:`gene_votes` frames (e.g. one per fold).

    Ties are broken by mean importance. Returns ``rank, gene, retrievals, fraction, mean_importance``, where
    ``fraction`` is the share of all retrievals that voted for the gene.
    """
    queries = sum(int(v.queries.iloc[0]) for v in votes if len(v))
    if not queries:
        raise ValueError("no retrieval to rank genes over")
    total = pd.concat(votes).groupby("gene")[["retrievals", "importance_sum"]].sum()
    total["mean_importance"] = total.importance_sum / queries
    total = total.sort_values(["retrievals", "mean_importance"], ascending=False).head(k)
    return pd.DataFrame({"rank": np.arange(1, len(total) + 1), "gene": total.index,
                         "retrievals": total.retrievals.to_numpy(),
                         "fraction": np.round(total.retrievals.to_numpy() / queries, 4),
                         "mean_importance": total.mean_importance.to_numpy()})
