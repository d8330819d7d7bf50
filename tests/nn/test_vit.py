"""VisionTransformer: parameter count by hand, shapes at 224 / 512 px, masking, block tokens, init, errors."""

import pytest
import torch

from gliotype.nn.vit import ViTConfig, VisionTransformer


def tiny(**overrides) -> VisionTransformer:
    """A 32 px, patch 8 (4 x 4 = 16 tokens), 16-wide, 3-block ViT: fast, same code paths as ViT-Tiny."""
    torch.manual_seed(0)
    config = dict(n_classes=3, image_size=32, patch=8, embed=16, depth=3, heads=2) | overrides
    return VisionTransformer(ViTConfig(**config)).eval()


def test_vit_tiny_parameter_count_by_hand():
    c, p, hidden, n_classes, tokens = 192, 16, 4 * 192, 1000, (224 // 16) ** 2
    patch_embed = 3 * p * p * c + c
    block = 2 * (2 * c) + (c * 3 * c + 3 * c) + (c * c + c) + (c * hidden + hidden) + (hidden * c + c)
    expected = patch_embed + tokens * c + c + 12 * block + 2 * c + (c * n_classes + n_classes)
    assert block == 444_864
    assert expected == 5_717_224  # timm's vit_tiny_patch16_224 (CLS token + its position): 5,717,416
    model = VisionTransformer(ViTConfig(n_classes=1000))
    assert sum(t.numel() for t in model.parameters()) == expected


@pytest.mark.parametrize("side, n_tokens", [(224, 196), (512, 1024)])
def test_shapes_at_224_and_512_px(side, n_tokens):
    torch.manual_seed(0)
    model = VisionTransformer(ViTConfig(n_classes=3, depth=2)).eval()  # ViT-Tiny widths, two blocks
    with torch.no_grad():
        logits, tokens = model(torch.randn(2, 3, side, side), return_tokens_of=-1)
        features = model.features(torch.randn(2, 3, side, side))
    assert logits.shape == (2, 3)
    assert tokens.shape == (2, n_tokens, 192)
    assert features.shape == (2, 192)


def test_position_embedding_is_resampled_for_another_size():
    model = tiny()
    assert model.position_embedding((4, 4)) is model.pos_embed  # the configured grid: unchanged
    with torch.no_grad():
        model.pos_embed.fill_(0.25)  # bicubic weights sum to 1: a constant field stays constant
    resampled = model.position_embedding((8, 6))
    assert resampled.shape == (1, 48, 16)
    torch.testing.assert_close(resampled, torch.full((1, 48, 16), 0.25))


def test_non_square_image_gives_row_major_tokens():
    model = tiny()
    with torch.no_grad():
        logits, tokens = model(torch.randn(1, 3, 16, 40), return_tokens_of=0)
    assert model.grid_size(16, 40) == (2, 5)
    assert logits.shape == (1, 3) and tokens.shape == (1, 10, 16)


def test_fully_masked_images_give_identical_outputs():
    model = tiny()
    images = torch.stack([torch.zeros(3, 32, 32), torch.randn(3, 32, 32) * 5])
    with torch.no_grad():
        logits = model(images, token_mask=torch.ones(2, 16, dtype=torch.bool))
        unmasked = model(images)
    torch.testing.assert_close(logits[0], logits[1], rtol=0, atol=1e-6)
    assert not torch.allclose(unmasked[0], unmasked[1])


def test_masking_one_patch_replaces_only_its_embedding_before_the_position():
    model, k = tiny(), 5
    images = torch.randn(1, 3, 32, 32)
    mask = torch.zeros(1, 16, dtype=torch.bool)
    mask[0, k] = True
    with torch.no_grad():
        plain, masked = model.embed(images), model.embed(images, token_mask=mask)
    changed = (plain - masked).abs().amax(dim=-1)[0] > 0
    assert changed.nonzero().flatten().tolist() == [k]
    torch.testing.assert_close(masked[0, k], model.mask_token + model.pos_embed[0, k])


def test_masked_patch_pixels_no_longer_matter():
    """Patch 5 (row 1, column 1: pixels 8..15 x 8..15) masked: its pixels cannot change the logits;
    the pixels of patch 0 still do."""
    model = tiny()
    mask = torch.zeros(1, 16, dtype=torch.bool)
    mask[0, 5] = True
    images = torch.randn(1, 3, 32, 32)
    in_patch_5, in_patch_0 = images.clone(), images.clone()
    in_patch_5[..., 8:16, 8:16] += 3.0
    in_patch_0[..., 0:8, 0:8] += 3.0
    with torch.no_grad():
        base, changed_5, changed_0 = (model(x, token_mask=mask) for x in (images, in_patch_5, in_patch_0))
    torch.testing.assert_close(changed_5, base, rtol=0, atol=0)
    assert not torch.allclose(changed_0, base)


def test_tokens_of_second_to_last_block_match_a_manual_pass():
    model = tiny()
    images = torch.randn(2, 3, 32, 32)
    logits, tokens = model(images, return_tokens_of=-2)
    x = model.embed(images)
    for block in model.blocks[:-1]:
        x = block(x)
    torch.testing.assert_close(tokens, x)
    torch.testing.assert_close(model(images, return_tokens_of=1)[1], x)  # -2 == 1 for depth 3
    (grad,) = torch.autograd.grad(logits[:, 0].sum(), tokens)  # still in the graph of the logits
    assert grad.shape == (2, 16, 16) and grad.abs().sum() > 0


def test_features_feed_the_head():
    model = tiny()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.head(model.features(images)), model(images))


def test_standard_initialisation():
    torch.manual_seed(0)
    model = VisionTransformer(ViTConfig(n_classes=1000))
    for name, tensor in [("pos_embed", model.pos_embed), ("mask_token", model.mask_token),
                         ("fc1", model.blocks[0].mlp[0].weight)]:
        values = tensor.detach().flatten()
        tolerance = 4 * 0.02 / values.numel() ** 0.5  # 4 standard errors of the sample mean
        assert abs(float(values.std()) - 0.02) < tolerance / 2 ** 0.5, name  # truncated at +-2 as in timm: no effect
        assert abs(float(values.mean())) < tolerance, name
    assert torch.equal(model.blocks[3].attn.qkv.bias.detach(), torch.zeros(3 * 192))
    assert torch.equal(model.norm.weight.detach(), torch.ones(192))
    assert torch.equal(model.norm.bias.detach(), torch.zeros(192))


def test_errors_say_how_to_fix():
    model = tiny()
    with pytest.raises(ValueError, match=r"multiples of the patch size 8; got 30 x 32.*24 x 32"):
        model(torch.randn(1, 3, 30, 32))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\).*image\[None\]"):
        model(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match="bool tensor.*mask > 0.5"):
        model(torch.randn(1, 3, 32, 32), token_mask=torch.zeros(1, 16))
    with pytest.raises(ValueError, match=r"\(1, 16\).*got \(1, 15\)"):
        model(torch.randn(1, 3, 32, 32), token_mask=torch.zeros(1, 15, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\[-3, 2\].*got 3"):
        model(torch.randn(1, 3, 32, 32), return_tokens_of=3)
    with pytest.raises(ValueError, match="multiple of heads"):
        ViTConfig(n_classes=2, embed=16, heads=3)
    with pytest.raises(ValueError, match="multiple of patch"):
        ViTConfig(n_classes=2, image_size=230)
