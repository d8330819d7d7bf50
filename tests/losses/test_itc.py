"""Image-RNA contrastive loss and hard-negative mining on matrices small enough to check by hand."""

import math

import pytest
import torch

from gliotype.losses.itc import hard_negatives, itc_loss, multi_positive_cross_entropy

E1, E2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])


def test_two_by_two_by_hand():
    """Patches e1, e2 (lineages 0, 1); RNA e1, (e1 + e2)/sqrt 2 (lineages 0, 1); tau = 1, c = 1/sqrt 2.
    Logits s = [[1, c], [0, c]].
    patch -> RNA: row 0: -log(e / (e + e^c)); row 1: -log(e^c / (1 + e^c)).
    RNA -> patch: column 0 over patches [1, 0]: -log(e / (e + 1)); column 1 over [c, c]: log 2.
    L = (mean of the two rows + mean of the two columns) / 2."""
    c, e = 1 / math.sqrt(2), math.e
    z_patch = torch.stack([E1, E2])
    z_rna = torch.stack([E1, (E1 + E2) / math.sqrt(2)])
    p2r = (-math.log(e / (e + math.exp(c))) - math.log(math.exp(c) / (1 + math.exp(c)))) / 2
    r2p = (-math.log(e / (e + 1)) + math.log(2)) / 2
    loss = itc_loss(z_patch, z_rna, torch.tensor([0, 1]), torch.tensor([0, 1]), temperature=1.0)
    assert float(loss) == pytest.approx((p2r + r2p) / 2, rel=1e-6)
    # tau = 0.5 doubles the logits: row 0 becomes -log(e^2 / (e^2 + e^(2c)))
    halved = itc_loss(z_patch, z_rna, torch.tensor([0, 1]), torch.tensor([0, 1]), temperature=0.5)
    p2r_half = (-math.log(e ** 2 / (e ** 2 + math.exp(2 * c))) - math.log(math.exp(2 * c) / (1 + math.exp(2 * c)))) / 2
    r2p_half = (-math.log(e ** 2 / (e ** 2 + 1)) + math.log(2)) / 2
    assert float(halved) == pytest.approx((p2r_half + r2p_half) / 2, rel=1e-6)


def test_multi_positive_by_hand():
    """One patch e1 (lineage 0); RNA rows e1, e1, e2 (lineages 0, 0, 1); tau = 1. Patch -> RNA: logits
    [1, 1, 0], two positives: -1/2 (2 log(e / (2e + 1))) = log(2e + 1) - 1. RNA -> patch: columns 0 and 1
    have one candidate (log-softmax 0); column 2 has no patch of its lineage and is no anchor. L = half."""
    loss = itc_loss(E1[None], torch.stack([E1, E1, E2]), torch.tensor([0]), torch.tensor([0, 0, 1]), 1.0)
    assert float(loss) == pytest.approx((math.log(2 * math.e + 1) - 1) / 2, rel=1e-6)


def test_rows_without_positives_give_zero_in_the_graph():
    logits = torch.randn(2, 3, requires_grad=True)
    loss = multi_positive_cross_entropy(logits, torch.zeros(2, 3, dtype=torch.bool))
    assert loss.item() == 0.0 and loss.requires_grad


def test_aligned_embeddings_have_lower_loss():
    ids = torch.tensor([0, 1, 2])
    z = torch.eye(3)
    aligned = itc_loss(z, z, ids, ids, 0.1)
    shuffled = itc_loss(z, z[[1, 2, 0]], ids, ids, 0.1)
    assert float(aligned) < 0.01 < 10 < float(shuffled)


SIMILARITY = torch.tensor([[0.90, 0.50, 0.70, 0.10],
                           [0.80, 0.95, 0.20, 0.30],
                           [0.40, 0.60, 0.99, 0.98]])
ROW_IDS, COL_IDS = torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2, 2])


def test_argmax_negatives_by_hand():
    """Row 0 (lineage 0): other lineages' columns 1, 2, 3 at 0.5, 0.7, 0.1 -> column 2 (not column 0 at 0.9,
    its own lineage). Row 1: columns 0, 2, 3 at 0.8, 0.2, 0.3 -> 0. Row 2: columns 0, 1 at 0.4, 0.6 -> 1.
    Transposed (each RNA's hardest patch): column 0: rows 1, 2 at 0.8, 0.4 -> 1; column 1: rows 0, 2 at
    0.5, 0.6 -> 2; column 2: rows 0, 1 at 0.7, 0.2 -> 0; column 3: rows 0, 1 at 0.1, 0.3 -> 1."""
    index, valid = hard_negatives(SIMILARITY, ROW_IDS, COL_IDS, mode="argmax")
    assert index.tolist() == [2, 0, 1] and valid.all()
    index, valid = hard_negatives(SIMILARITY.T, COL_IDS, ROW_IDS, mode="argmax")
    assert index.tolist() == [1, 2, 0, 1] and valid.all()


def test_row_without_negative_is_flagged():
    index, valid = hard_negatives(torch.tensor([[0.3, 0.9], [0.1, 0.2]]), torch.tensor([5, 6]),
                                  torch.tensor([5, 5]), mode="softmax", generator=torch.Generator().manual_seed(0))
    assert valid.tolist() == [False, True] and index.tolist() == [0, 0]


def test_softmax_draw_follows_the_weights_and_never_picks_the_own_lineage():
    """Row of lineage 0 over columns of lineages 0, 1, 2 with logits 5, log 1, log 3: the own lineage's
    column 0 is never drawn; columns 1 and 2 come with probabilities 1/4 and 3/4."""
    logits = torch.tensor([[5.0, 0.0, math.log(3.0)]]).expand(4000, -1)
    rows, cols = torch.zeros(4000, dtype=torch.long), torch.tensor([0, 1, 2])
    index, valid = hard_negatives(logits, rows, cols, generator=torch.Generator().manual_seed(0))
    assert valid.all() and (index != 0).all()
    assert float((index == 2).float().mean()) == pytest.approx(0.75, abs=0.03)
    again, _ = hard_negatives(logits, rows, cols, generator=torch.Generator().manual_seed(0))
    assert torch.equal(index, again)  # replayable
    sharp, _ = hard_negatives(SIMILARITY / 0.001, ROW_IDS, COL_IDS, generator=torch.Generator().manual_seed(1))
    assert sharp.tolist() == [2, 0, 1]  # a low temperature draws the arg-max


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="temperature must be > 0"):
        itc_loss(torch.eye(2), torch.eye(2), torch.tensor([0, 1]), torch.tensor([0, 1]), temperature=0.0)
    with pytest.raises(ValueError, match="must share D"):
        itc_loss(torch.eye(2), torch.eye(3), torch.tensor([0, 1]), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="'softmax' or 'argmax'"):
        hard_negatives(SIMILARITY, ROW_IDS, COL_IDS, mode="roll")
