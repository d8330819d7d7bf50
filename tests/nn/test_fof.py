"""The FoF network and loss (paper 004, eq. 1-6): terms recomputed by hand, and FRL's views on a planted quadrant."""

import pytest
import torch
from torch.nn import functional as F

from gliotype.explain.token_cam import token_gradcam, views_from_cam
from gliotype.losses import focus_consistency, supervised_contrastive
from gliotype.nn.fof import FoFLossConfig, FoFNetwork, fof_loss
from gliotype.nn.vit import ViTConfig

SMALL = dict(image_size=32, patch=8, embed=32, depth=3, heads=2)


def small_net(n_classes=3, markers=("idh", "cnv_EGFR")):
    torch.manual_seed(0)
    return FoFNetwork(ViTConfig(n_classes=n_classes, **SMALL), markers, projection_dim=8)


def test_network_has_a_background_output_and_returns_the_real_classes():
    net = small_net()
    images = torch.randn(2, 3, 32, 32)
    assert net.vit.head.out_features == 4 and net.background == 3
    assert torch.equal(net(images), net.vit(images)[:, :3])
    assert set(net.projections) == {"idh", "cnv_EGFR"}


def test_loss_is_the_sum_of_eq3_eq4_eq5_recomputed_by_hand():
    net = small_net().eval()  # no dropout: the recomputation sees the same activations
    images, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 1])
    markers = torch.tensor([[1, 2], [0, -1], [1, 4], [-1, 0]])  # -1 = unknown
    normal = torch.tensor([0, 2])
    loss, logits, parts = fof_loss(net, images, y, markers, normal, FoFLossConfig())

    vit = net.vit
    glb_logits, tokens = vit(images, return_tokens_of=-2)
    cam = token_gradcam(tokens, glb_logits.gather(1, y[:, None]).squeeze(1))
    pos_mask, neg_mask = views_from_cam(cam, 0.5)
    v_glb, v_pos, v_neg = vit.features(images), vit.features(images, pos_mask), vit.features(images, neg_mask)
    cls = (F.cross_entropy(glb_logits, y) + F.cross_entropy(vit.head(v_pos), y)
           + F.cross_entropy(vit.head(v_neg), torch.full_like(y, 3)))
    frl = focus_consistency(v_glb, v_pos, v_neg, 0.07)
    views = torch.cat([v_glb, v_pos, v_neg])
    mca = torch.stack([
        supervised_contrastive(net.projections[name](views), torch.cat([markers[:, j], markers[:, j],
                                                                         normal[j].repeat(4)]), 0.07)
        for j, name in enumerate(("idh", "cnv_EGFR"))]).mean()
    assert torch.allclose(parts["cam"], cam)
    assert torch.equal(parts["positive_mask"], pos_mask)
    assert torch.allclose(parts["cls"], cls, atol=1e-5)
    assert torch.allclose(parts["frl"], frl, atol=1e-5)
    assert torch.allclose(parts["mca"], mca, atol=1e-5)
    assert torch.allclose(loss, cls + 0.2 * frl + 0.2 * mca, atol=1e-5)
    assert torch.allclose(logits, glb_logits[:, :3])


def test_without_frl_and_mca_the_loss_is_the_plain_cross_entropy_of_the_real_classes():
    net = small_net().eval()
    images, y = torch.randn(3, 3, 32, 32), torch.tensor([0, 2, 1])
    weight = torch.tensor([1.0, 2.0, 0.5])
    loss, _, parts = fof_loss(net, images, y, None, None, FoFLossConfig(frl=False, mca=False), weight)
    assert torch.allclose(loss, F.cross_entropy(net(images), y, weight=weight), atol=1e-6)
    assert "cam" not in parts and float(parts["frl"]) == 0.0 and float(parts["mca"]) == 0.0


def test_the_loss_trains_the_mask_token_and_the_projection_heads():
    net = small_net().train()
    images, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    markers = torch.tensor([[1, 2], [0, 2], [1, 4], [0, 0]])
    loss, _, _ = fof_loss(net, images, y, markers, torch.tensor([0, 2]), FoFLossConfig())
    loss.backward()
    assert net.vit.mask_token.grad is not None and net.vit.mask_token.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.projections.parameters())


def quadrant_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """64-px images of noise; class 1 has a bright square texture in the top-left quadrant, class 0 none.

    The grid is 8 x 8 tokens of 8 px; the top-left quadrant is the 16 tokens of rows 0-3, columns 0-3.
    """
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, 64, 64, generator=g) * 0.5
    y = torch.arange(n) % 2
    for i in torch.nonzero(y).flatten():
        r, c = torch.randint(0, 20, (2,), generator=g)
        images[i, :, r:r + 12, c:c + 12] += 2.0
    return images, y


def top_left_tokens() -> torch.Tensor:
    grid = torch.zeros(8, 8, dtype=torch.bool)
    grid[:4, :4] = True
    return grid.flatten()


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_after_training_the_positive_view_keeps_mostly_the_quadrant_with_the_evidence():
    torch.manual_seed(0)
    net = FoFNetwork(ViTConfig(n_classes=2, image_size=64, patch=8, embed=48, depth=3, heads=3))
    optimiser = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.01)
    config = FoFLossConfig(mca=False)
    for step in range(150):
        images, y = quadrant_images(16, seed=step)
        loss, _, _ = fof_loss(net, images, y, None, None, config)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    net.eval()
    images, y = quadrant_images(32, seed=10_000)
    logits, tokens = net.vit(images, return_tokens_of=-2)
    assert (logits[:, :2].argmax(1) == y).float().mean() >= 0.9
    cam = token_gradcam(tokens, logits.gather(1, y[:, None]).squeeze(1))
    positive_mask, _ = views_from_cam(cam, 0.5)
    kept = ~positive_mask[y == 1]  # (n, 64) tokens kept by the positive views of the class-1 images
    in_quadrant = (kept & top_left_tokens()).sum() / kept.sum()
    assert in_quadrant >= 0.8, f"{float(in_quadrant):.2f} of the kept tokens lie in the quadrant (chance 0.25)"
