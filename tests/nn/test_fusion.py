"""Fusion baselines of ``fof``: both inputs reach the output; the Kronecker product keeps unimodal terms."""

import torch

from gliotype.nn.fusion import ConcatFusion, KroneckerFusion
from gliotype.nn.vit import ViTConfig

VIT = ViTConfig(n_classes=3, image_size=32, patch=8, embed=32, depth=2, heads=2)


def test_both_fusions_read_the_image_and_the_genomics():
    images, genomics = torch.randn(2, 3, 32, 32), torch.zeros(2, 12)
    for kind in (ConcatFusion, KroneckerFusion):
        torch.manual_seed(0)
        net = kind(VIT, genomic_dim=12).eval()
        base = net(images, genomics)
        assert base.shape == (2, 3)
        assert not torch.allclose(base, net(images, genomics + torch.eye(12)[:2]))
        assert not torch.allclose(base, net(images.flip(-1), genomics))


def test_kronecker_product_holds_each_modality_alone_and_their_products():
    torch.manual_seed(0)
    net = KroneckerFusion(VIT, genomic_dim=12, width=4).eval()
    seen = {}
    net.classifier.register_forward_hook(lambda m, inp, out: seen.setdefault("outer", inp[0]))
    images, genomics = torch.randn(1, 3, 32, 32), torch.rand(1, 12)
    net(images, genomics)
    path, gen = net.features(images, genomics)
    both = torch.cat([path, gen], 1)
    o_path = torch.sigmoid(net.gate_path(both)) * torch.relu(net.h_path(path))
    o_gen = torch.sigmoid(net.gate_gen(both)) * torch.relu(net.h_gen(gen))
    outer = seen["outer"].reshape(5, 5)  # (width + 1) x (width + 1)
    assert float(outer[4, 4]) == 1.0
    assert torch.allclose(outer[:4, 4], o_path[0]) and torch.allclose(outer[4, :4], o_gen[0])
    assert torch.allclose(outer[:4, :4], o_path[0][:, None] * o_gen[0][None, :])
