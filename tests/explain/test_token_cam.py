"""Token Grad-CAM and the FRL views: hand-computed maps, the mask convention, bilinear upsampling, a ViT."""

import pytest
import torch

from gliotype.explain.token_cam import cam_to_image, token_gradcam, views_from_cam
from gliotype.nn.vit import ViTConfig, VisionTransformer


def test_only_token_3_channel_0_matters():
    """score = 4 * v[3, 0]: the gradient is 4 at (token 3, channel 0), so w = (4 / 5, 0, 0) and
    cam = ReLU(0.8 * v[:, 0]) = ReLU(0.8 * [1, -1, 2, 5, 0]) = [0.8, 0, 1.6, 4, 0] -> / 4 -> [0.2, 0, 0.4, 1, 0]."""
    tokens = torch.zeros(1, 5, 3)
    tokens[0, :, 0] = torch.tensor([1.0, -1.0, 2.0, 5.0, 0.0])
    tokens[0, :, 1:] = torch.randn(5, 2)  # channels with zero weight do not count
    tokens.requires_grad_(True)
    cam = token_gradcam(tokens, 4 * tokens[:, 3, 0])
    torch.testing.assert_close(cam, torch.tensor([[0.2, 0.0, 0.4, 1.0, 0.0]]))
    assert int(cam.argmax()) == 3
    assert not cam.requires_grad


def test_min_is_subtracted_and_images_are_independent():
    """Image 0: score = v[:, 0].sum() -> w = (1, 0) and cam = ReLU([2, 3, 4]) -> [0, 0.5, 1].
    Image 1: score = -v[:, 1].sum() -> w = (0, -1): cam = ReLU(-[1, 1, 1]) = 0 everywhere -> all zeros."""
    tokens = torch.tensor([[[2.0, 0.0], [3.0, 0.0], [4.0, 0.0]],
                           [[0.0, 1.0], [0.0, 1.0], [0.0, 1.0]]], requires_grad=True)
    score = torch.stack([tokens[0, :, 0].sum(), -tokens[1, :, 1].sum()])
    cam = token_gradcam(tokens, score)
    torch.testing.assert_close(cam, torch.tensor([[0.0, 0.5, 1.0], [0.0, 0.0, 0.0]]))


def test_graph_survives_for_the_training_loss():
    weight = torch.randn(4, requires_grad=True)
    tokens = torch.randn(2, 6, 4) * weight
    score = (tokens ** 2).sum(dim=(1, 2))
    token_gradcam(tokens, score)
    score.sum().backward()  # would fail had the graph been freed
    assert weight.grad is not None and weight.grad.abs().sum() > 0


def test_views_follow_the_token_mask_convention():
    cam = torch.tensor([[0.2, 0.5, 0.7, 1.0], [0.0, 0.0, 0.0, 0.0]])
    positive_mask, negative_mask = views_from_cam(cam, theta=0.5)
    # True = replaced by the mask token: the positive view masks cam < 0.5, the negative view the rest
    assert positive_mask.tolist() == [[True, False, False, False], [True, True, True, True]]
    assert negative_mask.tolist() == [[False, True, True, True], [False, False, False, False]]


def test_cam_to_image_bilinear_by_hand():
    """Width 2 -> 4 with align_corners=False samples source x = (x' + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25,
    clamped to [0, 1]: values 0, 0.25, 0.75, 1 for the columns [0, 1]."""
    cam = torch.tensor([[0.0, 1.0, 0.0, 1.0]])  # grid 2 x 2: both rows [0, 1]
    image = cam_to_image(cam, grid_hw=(2, 2), image_hw=(4, 4))
    torch.testing.assert_close(image, torch.tensor([[0.0, 0.25, 0.75, 1.0]]).expand(4, 4)[None])


def test_on_a_vision_transformer():
    torch.manual_seed(0)
    model = VisionTransformer(ViTConfig(n_classes=3, image_size=32, patch=8, embed=16, depth=3, heads=2))
    images, labels = torch.randn(2, 3, 32, 32), torch.tensor([0, 2])
    logits, tokens = model(images, return_tokens_of=-2)
    cam = token_gradcam(tokens, logits.gather(1, labels[:, None]).squeeze(1))
    assert cam.shape == (2, 16)
    assert float(cam.min()) >= 0.0 and cam.amax(dim=1).tolist() == [1.0, 1.0]
    positive_mask, negative_mask = views_from_cam(cam)
    assert model(images, token_mask=positive_mask).shape == (2, 3)
    assert model(images, token_mask=negative_mask).shape == (2, 3)


def test_errors_say_how_to_fix():
    tokens = torch.randn(2, 4, 3, requires_grad=True)
    with pytest.raises(ValueError, match=r"shape \(2,\).*gather"):
        token_gradcam(tokens, tokens.sum(dim=-1))
    with pytest.raises(ValueError, match="torch.no_grad"):
        token_gradcam(tokens.detach(), tokens.detach().sum(dim=(1, 2)))
    other = torch.randn(2, requires_grad=True)
    with pytest.raises(ValueError, match="does not depend on tokens"):
        token_gradcam(tokens, other * 2)
    with pytest.raises(ValueError, match=r"\(B, 6\) for grid_hw \(2, 3\)"):
        cam_to_image(torch.zeros(1, 4), (2, 3), (16, 24))
    with pytest.raises(ValueError, match=r"theta must be in \[0, 1\]"):
        views_from_cam(torch.zeros(1, 4), theta=1.5)
