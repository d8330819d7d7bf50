"""Gene votes and ranking of retrievals (hand-computed), and gradient x input on a linear RNA embedding."""

import numpy as np
import pytest
import torch

from gliotype.explain.genes import gene_votes, rank_genes, retrieval_gene_importance, retrieval_top_genes


def test_votes_and_ranking_by_hand():
    importance = np.array([[5.0, 1.0, 0.0, 3.0],
                           [4.0, 0.0, 2.0, 1.0],
                           [0.0, 9.0, 1.0, 8.0]])
    top = retrieval_top_genes(importance, ["a", "b", "c", "d"], 2)
    assert top == [["a", "d"], ["a", "c"], ["b", "d"]]
    votes = gene_votes(importance, ["a", "b", "c", "d"], top)
    # top-2 per row: {a, d}, {a, c}, {b, d}
    assert votes.set_index("gene").retrievals.to_dict() == {"a": 2, "b": 1, "c": 1, "d": 2}
    other = np.array([[0.0, 0.0, 7.0, 1.0]])
    other_fold = gene_votes(other, ["a", "b", "c", "d"], retrieval_top_genes(other, ["a", "b", "c", "d"], 1))
    ranked = rank_genes([votes, other_fold], k=3)
    # votes a 2, d 2, c 2, b 1; mean importance over 4 retrievals: a 9/4, d 13/4, c 10/4 -> d, c, a
    assert ranked.gene.tolist() == ["d", "c", "a"]
    assert ranked.retrievals.tolist() == [2, 2, 2]
    assert ranked.fraction.tolist() == [0.5, 0.5, 0.5]
    assert ranked.mean_importance.tolist() == pytest.approx([13 / 4, 10 / 4, 9 / 4])


def test_a_tie_at_the_cut_goes_to_the_earlier_gene_and_the_votes_count_the_listed_genes():
    importance = np.array([[2.0, 1, 1, 0, 0, 0, 0, 0, 0, 2, 1, 2, 1, 1, 2, 2, 1, 1, 1, 2]])  # 14 above zero
    genes = [f"g{j}" for j in range(20)]
    listed = retrieval_top_genes(importance, genes, 15)[0]
    assert listed[-1] == "g3"  # the 15th is a tie among the zeros: the earliest gene
    votes = gene_votes(importance, genes, [listed]).set_index("gene").retrievals
    assert votes[votes > 0].index.tolist() == sorted(listed, key=genes.index)


class Linear(torch.nn.Module):
    """embed_rna(x) = normalize(x @ W): the importance of a gene is |d cos / d x * x|."""

    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(torch.as_tensor(w, dtype=torch.float32))

    def embed_rna(self, x):
        return torch.nn.functional.normalize(x @ self.w, dim=1)


def test_gradient_times_input_of_a_linear_embedding():
    # genes 0 and 1 feed output 0, gene 2 feeds output 1; the patch sits on output 0
    model = Linear([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    x = np.array([[3.0, 1.0, 0.0]], np.float32)  # the RNA embedding is (1, 0): cos = 1, gradient 0 on the sphere
    assert np.allclose(retrieval_gene_importance(model, x, np.array([[1.0, 0.0]])), 0, atol=1e-6)
    x = np.array([[1.0, 0.0, 1.0]], np.float32)  # u = (1, 1): cos = u0 / |u|; d/du0 = 1/(2 sqrt 2), d/du1 = -1/(2 sqrt 2)
    got = retrieval_gene_importance(model, x, np.array([[1.0, 0.0]]))
    c = 1 / (2 * np.sqrt(2))
    assert np.allclose(got, [[c * 1.0, 0.0, c * 1.0]], atol=1e-6)  # gene 1 is zero: gradient x input is 0
