import math

import numpy as np
import pytest
import torch

from gliotype.losses import lineage_infonce, supervised_contrastive
from gliotype.nn.rna import RNAEncoder, RNAEncoderConfig, sample_token_mask, sample_value_mask

SIZES = (7, 8, 5)  # 20 genes: token 0 = columns 0-6, token 1 = 7-14, token 2 = 15-19
INDEX = [np.arange(0, 7), np.arange(7, 15), np.arange(15, 20)]


def encoder(**config) -> RNAEncoder:
    torch.manual_seed(0)
    return RNAEncoder(RNAEncoderConfig(token_sizes=SIZES, **config), INDEX)


def test_shapes_and_unit_projection():
    model = encoder().eval()
    cls, tokens = model(torch.randn(5, 20))
    assert cls.shape == (5, 128) and tokens.shape == (5, 3, 128)  # token states without the CLS
    z = model.project(cls)
    assert z.shape == (5, 64)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(5))


def test_index_must_match_config():
    with pytest.raises(ValueError, match=r"sizes \(7, 8\)"):
        RNAEncoder(RNAEncoderConfig(token_sizes=SIZES), INDEX[:2])
    with pytest.raises(ValueError, match="multiple of heads"):
        RNAEncoderConfig(token_sizes=SIZES, dim=100, heads=8)


def test_token_embedder_sees_only_its_genes():
    model = encoder().eval()
    x = torch.randn(5, 20)
    changed = x.clone()
    changed[:, 15:20] += 3.0  # the genes of token 2
    before, after = model.embed(x), model.embed(changed)
    torch.testing.assert_close(after[:, :2], before[:, :2])  # tokens 0 and 1 unchanged
    assert (after[:, 2] - before[:, 2]).abs().max() > 0.1


def test_token_mask_reproducible_and_hides_the_masked_genes():
    first = sample_token_mask(5, 3, torch.Generator().manual_seed(7))
    again = sample_token_mask(5, 3, torch.Generator().manual_seed(7))
    assert torch.equal(first, again) and first.min() >= 0 and first.max() <= 2
    assert first.tolist() == [0, 1, 1, 2, 1]  # measured with torch's CPU generator, seed 7
    model = encoder().eval()
    x = torch.randn(5, 20)
    mask = torch.tensor([0, 1, 2, 1, 0])
    changed = x.clone()
    for i, k in enumerate(mask.tolist()):  # change only each sample's masked token
        changed[i, INDEX[k]] += 5.0
    for a, b in zip(model(x, token_mask=mask), model(changed, token_mask=mask)):
        torch.testing.assert_close(a, b)


def test_token_reconstruction_loss_by_hand():
    model = encoder().eval()
    for k, decoder in enumerate(model.decoders):  # the decoder predicts the constant k + 1
        torch.nn.init.zeros_(decoder.weight)
        torch.nn.init.constant_(decoder.bias, k + 1.0)
    x = torch.arange(100, dtype=torch.float32).reshape(5, 20) / 50  # x[i, g] = (20 i + g) / 50
    mask = sample_token_mask(5, 3, torch.Generator().manual_seed(7))
    loss, cls = model.reconstruction_loss(x, mask)
    expected = 0.0
    for i, k in enumerate(mask.tolist()):  # mean over the masked token's genes, then over the samples
        genes = INDEX[k]
        expected += sum(((20 * i + g) / 50 - (k + 1)) ** 2 for g in genes) / len(genes) / 5
    assert len(set(mask.tolist())) >= 2  # the draw covers more than one token
    assert cls.shape == (5, 128)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_value_mask_and_loss_by_hand():
    mask = sample_value_mask(5, 20, 0.3, torch.Generator().manual_seed(3))
    assert mask.shape == (5, 20) and mask.sum(dim=1).tolist() == [6] * 5  # 30% of 20 genes
    assert torch.equal(mask, sample_value_mask(5, 20, 0.3, torch.Generator().manual_seed(3)))
    model = encoder(masking="values").eval()
    for decoder in model.decoders:  # predict 0 everywhere: the loss is the mean of x^2 over the masked values
        torch.nn.init.zeros_(decoder.weight)
        torch.nn.init.zeros_(decoder.bias)
    x = torch.arange(100, dtype=torch.float32).reshape(5, 20) / 50
    loss, _ = model.reconstruction_loss(x, mask)
    expected = sum(((20 * i + g) / 50) ** 2 for i in range(5) for g in range(20) if mask[i, g]) / 30
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert model.sample_mask(5).shape == (5, 20)
    with pytest.raises(ValueError, match="value_mask must be bool"):
        model.reconstruction_loss(x, mask[:, :10])


def _unit(angle: float) -> list[float]:
    return [math.cos(angle), math.sin(angle)]


def test_infonce_by_hand():
    # samples 0, 1 of lineage a near the x axis, samples 2, 3 of lineage b near the y axis
    angles = [0.0, 0.3, 1.4, 1.7]
    z = torch.tensor([_unit(a) for a in angles], dtype=torch.float64)
    tau = 0.5
    # l_i = -log( exp(z_i.z_p / tau) / sum_{j != i} exp(z_i.z_j / tau) ), p = i's lineage partner
    partner = {0: 1, 1: 0, 2: 3, 3: 2}
    dot = lambda i, j: math.cos(angles[i] - angles[j])  # noqa: E731
    expected = 0.0
    for i in range(4):
        denominator = sum(math.exp(dot(i, j) / tau) for j in range(4) if j != i)
        expected += -math.log(math.exp(dot(i, partner[i]) / tau) / denominator) / 4
    loss, anchors = lineage_infonce(z, ["a", "a", "b", "b"], tau, return_anchors=True)
    assert anchors.all()
    assert float(loss) == pytest.approx(expected, abs=1e-6)
    # on unit vectors it is SupCon's L_out
    assert float(supervised_contrastive(z, torch.tensor([0, 0, 1, 1]), tau)) == pytest.approx(expected, abs=1e-6)


def test_infonce_without_positives_and_partial_batches():
    z = torch.nn.functional.normalize(torch.randn(4, 2, requires_grad=True), dim=1)
    loss, anchors = lineage_infonce(z, torch.tensor([0, 1, 2, 3]), return_anchors=True)
    assert loss.item() == 0.0 and not anchors.any() and loss.requires_grad
    # ids [a, a, b, c]: only samples 0 and 1 are anchors; b and c stay negatives
    loss, anchors = lineage_infonce(z, ["a", "a", "b", "c"], 1.0, return_anchors=True)
    assert anchors.tolist() == [True, True, False, False]
    logits = z @ z.T
    by_hand = [-(logits[i, 1 - i] - torch.logsumexp(logits[i][torch.arange(4) != i], 0)) for i in (0, 1)]
    assert loss.item() == pytest.approx(sum(t.item() for t in by_hand) / 2, abs=1e-6)


def test_infonce_prefers_aligned_embeddings():
    e1, e2 = [1.0, 0.0], [0.0, 1.0]
    ids = [0, 0, 1, 1]
    aligned = lineage_infonce(torch.tensor([e1, e1, e2, e2]), torch.tensor(ids), 0.1)
    shuffled = lineage_infonce(torch.tensor([e1, e2, e1, e2]), torch.tensor(ids), 0.1)
    assert float(aligned) < float(shuffled)


def test_infonce_rejects_bad_input():
    with pytest.raises(ValueError, match="tau must be > 0"):
        lineage_infonce(torch.eye(2), [0, 0], tau=0)
    with pytest.raises(ValueError, match="one entry per row"):
        lineage_infonce(torch.eye(2), [0, 0, 1])


def _lineages(shift: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """16 samples of 20 genes, lineages 0 and 1 (8 each); lineage 1 has token 1's genes (7-14) shifted."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.arange(16) % 2
    x = torch.randn(16, 20, generator=g)
    x[:, 7:15] += shift * ids[:, None]
    return x, ids


def _margin(model: RNAEncoder, x: torch.Tensor, ids: torch.Tensor) -> float:
    """Mean same-lineage cosine similarity minus mean cross-lineage one (pairs i != j)."""
    with torch.no_grad():
        z = model.project(model(x)[0])
    sim, same = z @ z.T, ids[:, None] == ids[None, :]
    off = ~torch.eye(len(ids), dtype=torch.bool)
    return float(sim[same & off].mean() - sim[~same].mean())


def _train(shift: float) -> float:
    """100 Adam steps of the lineage InfoNCE on 16 samples; the margin on 16 fresh samples (held out)."""
    model = encoder(tau=0.1)
    x, ids = _lineages(shift, seed=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(100):
        loss = lineage_infonce(model.project(model(x)[0]), ids, model.config.tau)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return _margin(model.eval(), *_lineages(shift, seed=2))


def test_infonce_learns_a_planted_lineage_shift():
    planted, control = _train(shift=2.0), _train(shift=0.0)
    # measured (init seed 0): planted 0.289, control -0.019; init seeds 1-3: planted 0.21-0.43, control |.| < 0.04
    assert planted > 0.15
    assert abs(control) < 0.08


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda():
    model = encoder().cuda()
    x = torch.randn(6, 20, device="cuda")
    loss, cls = model.reconstruction_loss(x, model.sample_mask(6, torch.Generator().manual_seed(0)))
    total = loss + lineage_infonce(model.project(cls), torch.tensor([0, 0, 1, 1, 2, 2]))
    total.backward()
    assert cls.device.type == "cuda" and torch.isfinite(total)
