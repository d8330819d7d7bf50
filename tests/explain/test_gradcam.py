"""Grad-CAM: hand-checkable CAM networks, the class index, hook and mode hygiene, the project's learners."""

import pytest
import torch
from torch import nn

from gliotype.explain import default_layer, grad_cam, upsample_cam
from gliotype.nn.cnn3d import ImageLearner


class CamNet(nn.Module):
    """Conv3d -> global average pool -> linear: a class-activation-map network with fixed weights."""

    def __init__(self, conv_weight: torch.Tensor, fc_weight: torch.Tensor):
        super().__init__()
        out_ch, in_ch, k = conv_weight.shape[:3]
        self.conv = nn.Conv3d(in_ch, out_ch, k, padding=k // 2, bias=False)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(out_ch, fc_weight.shape[0])
        with torch.no_grad():
            self.conv.weight.copy_(conv_weight)
            self.fc.weight.copy_(fc_weight)
            self.fc.bias.zero_()

    def forward(self, x):
        return self.fc(self.pool(self.conv(x)).flatten(1))


def pointwise(weight):
    """A 1x1x1 convolution with the given (out, in) weights."""
    weight = torch.as_tensor(weight, dtype=torch.float32)
    return weight[:, :, None, None, None]


def blob(shape=(8, 8, 8), corner=(0, 0, 0), size=2):
    x = torch.zeros(shape)
    x[tuple(slice(c, c + size) for c in corner)] = 1.0
    return x


def test_cam_is_maximal_at_the_bright_blob():
    net = CamNet(torch.full((1, 1, 3, 3, 3), 1 / 27), torch.tensor([[1.0], [-1.0]]))
    x = blob(corner=(0, 0, 0))[None, None] + 0.01
    cam = grad_cam(net, net.conv, x, class_index=0)
    assert cam.shape == (1, 8, 8, 8)
    peak = torch.nonzero(cam[0] == cam[0].max())
    assert (peak <= 1).all()  # every maximum lies inside the 2x2x2 blob
    assert grad_cam(net, net.conv, x, class_index=1).max() == 0  # class 1 is evidence against: ReLU'd away
    up = upsample_cam(cam, 16)
    assert up.shape == (1, 16, 16, 16) and up.max() == 1 and up.min() >= 0
    assert (torch.nonzero(up[0] == 1) <= 3).all()


def test_grad_cam_of_a_gap_linear_network_is_the_class_activation_map_over_n():
    conv_w = torch.tensor([[1.0, 0.0], [0.5, -1.0], [0.0, 2.0]])  # (K=3, C=2)
    fc_w = torch.tensor([[1.0, -2.0, 0.5], [-1.0, 1.0, 2.0]])  # (classes=2, K=3)
    net = CamNet(pointwise(conv_w), fc_w)
    x = torch.randn(2, 2, 4, 5, 3, generator=torch.Generator().manual_seed(0))
    features = torch.einsum("kc,bcxyz->bkxyz", conv_w, x)
    for c in (0, 1):
        cam_by_hand = torch.relu(torch.einsum("k,bkxyz->bxyz", fc_w[c], features) / (4 * 5 * 3))
        torch.testing.assert_close(grad_cam(net, net.conv, x, c), cam_by_hand)


def test_class_index_selects_the_channel_each_class_looks_at():
    net = CamNet(pointwise([[1.0, 0.0], [0.0, 1.0]]), torch.eye(2))
    x = torch.stack([blob(corner=(0, 0, 0)), blob(corner=(6, 6, 6))])[None]
    for c, where in ((0, 0), (1, 6)):
        cam = grad_cam(net, net.conv, x, c)[0]
        assert cam[where:where + 2, where:where + 2, where:where + 2].min() == cam.max() > 0
        assert cam.sum() == cam[where:where + 2, where:where + 2, where:where + 2].sum()
    both = grad_cam(net, net.conv, torch.cat([x, x]), torch.tensor([0, 1]))
    torch.testing.assert_close(both[1], grad_cam(net, net.conv, x, 1)[0])
    assert not torch.equal(both[0], both[1])
    with pytest.raises(ValueError, match=r"class_index must be one int or one per input, in 0..1"):
        grad_cam(net, net.conv, x, 2)


def test_hooks_removed_modes_restored_and_no_parameter_gradients():
    net = CamNet(pointwise([[1.0]]), torch.tensor([[1.0]]))
    net.train()
    net.fc.eval()  # a deliberately frozen submodule stays as it was
    with torch.no_grad():
        cam = grad_cam(net, net.conv, torch.rand(1, 1, 3, 3, 3), 0)
    assert cam.shape == (1, 3, 3, 3) and not cam.requires_grad
    assert not net.conv._forward_hooks and not net.conv._backward_hooks
    assert net.training and net.conv.training and not net.fc.training
    assert all(p.grad is None for p in net.parameters())

    def broken(model, inputs):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        grad_cam(net, net.conv, torch.rand(1, 1, 3, 3, 3), 0, forward=broken)
    assert not net.conv._forward_hooks and net.training and not net.fc.training


def test_custom_forward_and_bad_inputs():
    net = CamNet(pointwise([[1.0]]), torch.tensor([[1.0], [2.0]]))
    x = torch.rand(1, 1, 3, 3, 3)
    doubled = grad_cam(net, net.conv, x, 0, forward=lambda model, inputs: 2 * model(inputs))
    torch.testing.assert_close(doubled, 2 * grad_cam(net, net.conv, x, 0))
    with pytest.raises(ValueError, match=r"\(B, C, X, Y, Z\).*cube\[None\]"):
        grad_cam(net, net.conv, x[0], 0)
    with pytest.raises(ValueError, match="ran 0 times"):
        grad_cam(net, nn.ReLU(), x, 0)


def test_upsample_keeps_an_all_zero_map_zero():
    cam = torch.zeros(2, 2, 2, 2)
    cam[1, 0, 0, 0] = 3.0
    up = upsample_cam(cam, (4, 6, 8))
    assert up.shape == (2, 4, 6, 8) and up[0].abs().max() == 0 and up[1].max() == 1


def test_image_learner_layer_is_the_last_relu_and_matches_a_manual_split():
    torch.manual_seed(0)
    net = ImageLearner(4, 2, channels=(4, 4, 4, 8), latent=8)
    layer = default_layer(net)
    assert layer is net.conv[-2] and isinstance(layer, nn.ReLU)  # conv, BN, ReLU <- here, max-pool
    x = torch.randn(2, 4, 32, 32, 32)
    cam = grad_cam(net, layer, x, 1)
    assert cam.shape == (2, 4, 4, 4)  # three pools before the last block: 32 / 8
    net.eval()
    features = net.conv[:-1](x).detach().requires_grad_(True)  # the ReLU output, before the max-pool
    logits = net.head(net.fc(net.pool(net.conv[-1](features))))
    (grads,) = torch.autograd.grad(logits[:, 1].sum(), features)
    by_hand = torch.relu((grads.mean((2, 3, 4), keepdim=True) * features).sum(1))
    torch.testing.assert_close(cam, by_hand.detach())


def test_densenet_layer_is_the_relu_after_norm5():
    from monai.networks.nets import DenseNet, DenseNet121

    big = DenseNet121(spatial_dims=3, in_channels=4, out_channels=2)
    assert default_layer(big) is big.class_layers.relu
    torch.manual_seed(0)  # the same architecture, narrow, so the numbers are quick to check
    net = DenseNet(spatial_dims=3, in_channels=4, out_channels=2, init_features=8, growth_rate=4,
                   block_config=(1, 1, 1, 1))
    layer = default_layer(net)
    assert layer is net.class_layers.relu
    x = torch.randn(2, 4, 32, 32, 32)
    cam = grad_cam(net, layer, x, 0)
    assert cam.shape == (2, 1, 1, 1)  # DenseNet shrinks the grid 32-fold
    net.eval()
    features = torch.relu(net.features(x)).detach().requires_grad_(True)
    (grads,) = torch.autograd.grad(net.class_layers[1:](features)[:, 0].sum(), features)
    torch.testing.assert_close(cam, torch.relu((grads.mean((2, 3, 4), keepdim=True) * features).sum(1)))


def test_default_layer_names_the_supported_models():
    with pytest.raises(ValueError, match="no Grad-CAM layer is known for 'Linear'.*ImageLearner.*DenseNet121"):
        default_layer(nn.Linear(2, 2))
