"""Tests for gliotype.nn.pointgnn: the geometric learner of paper 000 and its NNConv."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch_geometric.nn import NNConv

from gliotype.nn import radius_graph
from gliotype.nn.pointgnn import FactorizedNNConv, GeometricLearner, PointConvStage, flatten_clouds
from gliotype.nn.rotate import random_rotations, rotate_points


def sphere_points(n, points=128, seed=0):
    """``n`` clouds of points on the unit sphere, (n, points, 3)."""
    d = torch.randn(n, points, 3, generator=torch.Generator().manual_seed(seed))
    return d / d.norm(dim=-1, keepdim=True)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return GeometricLearner().eval()


# ------------------------------------------------------------------------------------ batching


def test_flatten_clouds_concatenates_and_numbers_the_clouds():
    points = torch.arange(12.0).view(2, 2, 3)
    pos, batch = flatten_clouds(points)
    assert pos.tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]]
    assert batch.tolist() == [0, 0, 1, 1]


def test_shapes_for_three_clouds_of_512_points(net):
    clouds = sphere_points(3, points=512)
    with torch.no_grad():
        assert net(clouds).shape == (3, 2)
        assert net.encode(clouds).shape == (3, 128)
        assert torch.equal(net.head(net.encode(clouds)), net(clouds))


def test_flat_and_batched_inputs_agree(net):
    clouds = sphere_points(3)
    pos, batch = flatten_clouds(clouds)
    with torch.no_grad():
        assert torch.equal(net(clouds), net(pos, batch))
        assert torch.equal(net(clouds[0]), net(clouds[:1]))  # (N, 3) without batch: one example


def test_eval_mode_is_deterministic(net):
    clouds = sphere_points(3)
    with torch.no_grad():
        assert torch.equal(net(clouds), net(clouds))


def test_one_cloud_does_not_change_another_clouds_output(net):
    clouds = sphere_points(2)
    changed = clouds.clone()
    changed[1] = sphere_points(1, seed=5)[0] * torch.tensor([1.0, 0.5, 0.3])
    with torch.no_grad():
        a, b = net(clouds), net(changed)
    assert torch.allclose(a[0], b[0], atol=1e-5)
    assert not torch.allclose(a[1], b[1], atol=1e-3)


# ------------------------------------------------------------------------- node features vs geometry


def test_x_defaults_to_the_coordinates(net):
    clouds = sphere_points(2)
    with torch.no_grad():
        assert torch.equal(net(clouds), net(clouds, x=clouds))


def test_x_is_the_node_feature_and_pos_the_geometry(net):
    """A GNNExplainer node mask multiplies x; the graph stays that of pos, and the mask gets a gradient."""
    pos, batch = flatten_clouds(sphere_points(2))
    mask = torch.ones(pos.shape[0], 1, requires_grad=True)
    out = net(pos, batch, x=pos * mask)
    assert torch.equal(out.detach(), net(pos, batch).detach())
    out[:, 1].sum().backward()
    assert mask.grad is not None and mask.grad.abs().sum() > 0
    with torch.no_grad():
        assert not torch.allclose(net(pos, batch, x=pos * 0.5), out)


def test_edge_attribute_is_source_minus_target():
    # two points 0.1 apart on x: edges 1 -> 0 and 0 -> 1, stored as [source; target]
    stage = PointConvStage(3, 4, radius=0.5, ratio=1.0)
    seen = {}
    stage.conv.register_forward_pre_hook(lambda mod, args: seen.update(edge_index=args[1], attr=args[2]))
    pos = torch.tensor([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0]])
    stage.eval()(pos, pos, torch.zeros(2, dtype=torch.long))
    assert seen["edge_index"].tolist() == [[1, 0], [0, 1]]
    assert torch.allclose(seen["attr"], torch.tensor([[0.1, 0.0, 0.0], [-0.1, 0.0, 0.0]]))


def test_each_stage_keeps_half_of_the_points():
    stage = PointConvStage(3, 8, radius=0.5).eval()
    pos, batch = flatten_clouds(sphere_points(2, points=10))
    x, pos_out, batch_out = stage(pos, pos, batch)
    assert x.shape == (10, 8) and pos_out.shape == (10, 3)
    assert batch_out.tolist() == [0] * 5 + [1] * 5


# ------------------------------------------------------------------------------ FactorizedNNConv


def edge_net(cin, cout, hidden=8):
    return nn.Sequential(nn.Linear(3, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, cin * cout))


@pytest.mark.parametrize("aggr", ["add", "mean", "max"])
def test_factorized_nnconv_equals_pyg_nnconv(aggr):
    torch.manual_seed(0)
    pos = torch.rand(200, 3) * 2 - 1
    edge_index = radius_graph(pos, 0.4, max_num_neighbors=16)
    attr = pos[edge_index[0]] - pos[edge_index[1]]
    conv = FactorizedNNConv(5, 7, edge_net(5, 7), aggr=aggr)
    x = torch.randn(200, 5, requires_grad=True)
    ours, theirs = conv(x, edge_index, attr), NNConv.forward(conv, x, edge_index, attr)
    assert torch.allclose(ours, theirs, atol=1e-5)
    last = conv.nn[-1].weight
    g_ours = torch.autograd.grad(ours.square().sum(), [x, last])
    g_theirs = torch.autograd.grad(theirs.square().sum(), [x, last])
    for a, b in zip(g_ours, g_theirs):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4 * b.abs().max())


def test_factorized_nnconv_isolated_node_gets_only_its_root_term():
    conv = FactorizedNNConv(2, 3, edge_net(2, 3)).eval()
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    edge_index = torch.tensor([[1], [0]])  # 1 -> 0; node 2 has no neighbour
    out = conv(x, edge_index, torch.ones(1, 3))
    assert torch.allclose(out[2], conv.lin(x[2]) + conv.bias)
    assert torch.allclose(out, NNConv.forward(conv, x, edge_index, torch.ones(1, 3)), atol=1e-6)


def test_factorized_nnconv_needs_a_final_linear_of_in_times_out():
    with pytest.raises(ValueError, match=r"Linear\(hidden, in \* out\) = Linear\(hidden, 35\)"):
        FactorizedNNConv(5, 7, nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 30)))


# ---------------------------------------------------------------------------------------- errors


def test_errors_say_what_shape_was_expected(net):
    with pytest.raises(ValueError, match=r"x must have shape \(N, in_channels\) = \(4, 3\)"):
        net(torch.zeros(4, 3), x=torch.zeros(4, 2))
    with pytest.raises(ValueError, match="carries its own batch"):
        net(torch.zeros(1, 4, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="same"):
        GeometricLearner(radii=(0.5, 1.0), channels=(8,))
    with pytest.raises(ValueError, match="aggr must be one of"):
        GeometricLearner(aggr="sum")


# ---------------------------------------------------------------------------------- planted signal


def shapes(n, lobed, g, points=512):
    """Clouds on a sphere (class 0) or a lobulated one, r = 1 + 0.3 sin(5 theta) cos(4 phi) (class 1).

    Randomly rotated, centred and scaled into [-1, 1]; (n, points, 3).
    """
    d = torch.randn(n, points, 3, generator=g)
    d = d / d.norm(dim=-1, keepdim=True)
    theta, phi = torch.arccos(d[..., 2].clamp(-1, 1)), torch.atan2(d[..., 1], d[..., 0])
    r = 1 + 0.3 * torch.sin(5 * theta) * torch.cos(4 * phi) if lobed else torch.ones_like(theta)
    p = rotate_points(d * r[..., None], random_rotations(n, 180.0, g))
    p = p - p.mean(1, keepdim=True)
    return p / p.abs().amax((1, 2), keepdim=True)


def labelled(n_per_class, g):
    clouds = torch.cat([shapes(n_per_class, False, g), shapes(n_per_class, True, g)])
    return clouds, torch.arange(2).repeat_interleave(n_per_class)


def test_learns_smooth_versus_lobulated_surfaces():
    """64 training clouds, 8 epochs of batch 8 (about 12 s on one core), then 32 held-out clouds."""
    g = torch.Generator().manual_seed(0)
    train_x, train_y = labelled(32, g)
    test_x, test_y = labelled(16, g)
    torch.manual_seed(0)
    net = GeometricLearner()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(8):
        net.train()
        for idx in torch.randperm(64).split(8):
            opt.zero_grad()
            F.cross_entropy(net(train_x[idx]), train_y[idx]).backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        accuracy = (net(test_x).argmax(1) == test_y).float().mean().item()
    assert accuracy >= 0.9
