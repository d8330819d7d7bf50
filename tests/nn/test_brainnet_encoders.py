"""Tests for gliotype.nn.brainnet: the encoders and hierarchical attention of paper 001 (small widths)."""

import pytest
import torch
from torch import nn

from gliotype.nn.brainnet import (AttentiveGeometricEncoder, BrainNetworkEncoder, ImageEncoder, ProjectionHead,
                                  edge_attention)


def sphere_points(n, points=64, seed=0):
    d = torch.randn(n, points, 3, generator=torch.Generator().manual_seed(seed))
    return d / d.norm(dim=-1, keepdim=True)


# A 6-region chain with one chord: 6 undirected pathways.
EDGES = torch.tensor([[0, 1, 2, 3, 4, 0], [1, 2, 3, 4, 5, 3]])


def small_brain_net(additions=False):
    """The paper's encoder, or with ``additions`` the region embedding and the per-pathway readout."""
    torch.manual_seed(0)
    extra = dict(n_nodes=6, n_edges=6, identity_dim=3, pathway_dim=2) if additions else {}
    return BrainNetworkEncoder(channels=(8, 8), fc=(16, 4), attention_dim=8, **extra).eval()


def node_embeddings(net, nodes, edges, attention=None):
    """(B, N, C) node embeddings after the GAT layers, through the batched form."""
    x, directed, attr = net.batched_graph(nodes, edges, EDGES, attention)
    return net.embed(x, directed, attr).view(nodes.shape[0], nodes.shape[1], -1)


def graph_inputs(n_graphs=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n_graphs, 6, 16, generator=g), torch.randn(n_graphs, 6, 16, generator=g)


# ------------------------------------------------------------------------------------ image encoder


def test_image_encoder_takes_32_cubes_and_gives_32_d():
    net = ImageEncoder(channels=(2, 4, 4, 8, 8), fc=(16, 8, 32)).eval()
    assert net(torch.randn(2, 4, 32, 32, 32)).shape == (2, 32)
    assert isinstance(net.last_conv, nn.ReLU) and net.last_conv is net.conv[-2]
    with pytest.raises(ValueError, match="every side >= 32"):
        net(torch.randn(1, 4, 16, 32, 32))


def test_paper_widths():
    net = ImageEncoder()
    assert [m.out_channels for m in net.conv if isinstance(m, nn.Conv3d)] == [64, 128, 128, 256, 256]
    assert [m.out_features for m in net.fc if isinstance(m, nn.Linear)] == [512, 256, 32]
    brain = BrainNetworkEncoder()
    assert [c.out_channels for c in brain.convs] == [64, 128, 128, 256, 256, 256]
    assert [m.out_features for m in brain.node_head.net if isinstance(m, nn.Linear)] == [64, 128, 128]


def test_projection_head_has_relu_between_layers_only():
    head = ProjectionHead((32, 64, 128, 128))
    assert [type(m).__name__ for m in head.net] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert head(torch.randn(3, 32)).shape == (3, 128)


# ------------------------------------------------------------------------------------ geometric encoder


@pytest.fixture(scope="module")
def geometric():
    torch.manual_seed(0)
    return AttentiveGeometricEncoder(radii=(0.4, 0.8, 1.2), channels=(8, 8, 8), fc=(16, 32))


def test_point_attention_is_in_0_1_with_max_1_per_cloud(geometric):
    u, attention = geometric.eval()(sphere_points(3))
    assert u.shape == (3, 32) and attention.shape == (3, 64)
    assert bool((attention >= 0).all()) and bool((attention <= 1).all())
    assert torch.allclose(attention.amax(dim=1), torch.ones(3))


def test_point_attention_has_a_gradient_for_the_gate(geometric):
    geometric.train().zero_grad()
    _, attention = geometric(sphere_points(2))
    weights = torch.linspace(0, 1, attention.numel()).view_as(attention)
    (attention * weights).sum().backward()
    assert geometric.gate.weight.grad is not None and geometric.gate.weight.grad.abs().sum() > 0


def test_carry_back_interpolates_the_gate_of_the_nearest_kept_points(geometric):
    # kept points at x = 0 and x = 2 with gates 0.2 and 0.6; k = 3 is capped at the 2 kept points.
    # point at 0: on a kept point -> 0.2; point at 1: equal weights -> 0.4; point at 1.5: weights
    # 1/1.5^2 and 1/0.5^2, i.e. 1 : 9 -> (0.2 + 9 * 0.6) / 10 = 0.56. Divided by the max (0.56).
    pos = torch.tensor([[[0.0, 0, 0], [1.0, 0, 0], [1.5, 0, 0]]])
    kept = torch.tensor([[[0.0, 0, 0], [2.0, 0, 0]]])
    got = geometric._carry_back(pos, kept, torch.tensor([[0.2, 0.6]]))
    assert torch.allclose(got, torch.tensor([[0.2, 0.4, 0.56]]) / 0.56)


# ------------------------------------------------------------------------------------ edge attention


def test_edge_attention_is_the_mean_over_the_points_of_each_pathway():
    # example 0: edge 0 holds points 0 and 1 -> (0.2 + 0.4) / 2 = 0.3; edge 1 holds points 1 and 2 -> 0.7
    # example 1: edge 0 holds points 0 and 2 -> (0.5 + 0.3) / 2 = 0.4; edge 1 holds no point -> floor 0.05
    attention = torch.tensor([[0.2, 0.4, 1.0], [0.5, 0.0, 0.3]], requires_grad=True)
    rows = torch.tensor([[0, 0, 0], [0, 1, 0], [0, 1, 1], [0, 2, 1], [1, 0, 0], [1, 2, 0]])
    got = edge_attention(attention, rows, n_edges=2, floor=0.05)
    assert torch.allclose(got, torch.tensor([[0.3, 0.7], [0.4, 0.05]]))
    got.sum().backward()  # each point passes 1 / (points in the pathway) to each pathway it lies in
    assert torch.allclose(attention.grad, torch.tensor([[0.5, 1.0, 0.5], [0.5, 0.0, 0.5]]))


def test_edge_attention_rejects_out_of_range_rows():
    with pytest.raises(ValueError, match="edge indices"):
        edge_attention(torch.ones(1, 3), torch.tensor([[0, 0, 2]]), n_edges=2)


# ------------------------------------------------------------------------------------ brain network


def test_zero_edge_attention_removes_the_edge_attributes():
    net = small_brain_net()
    nodes, edges = graph_inputs()
    zero = torch.zeros(2, 6)
    with torch.no_grad():
        a, _ = net(nodes, edges, EDGES, zero)
        b, _ = net(nodes, 5 * torch.randn(2, 6, 16), EDGES, zero)
        c, _ = net(nodes, edges, EDGES, torch.full((2, 6), 0.5))
        d, _ = net(nodes, 5 * torch.randn(2, 6, 16), EDGES, torch.full((2, 6), 0.5))
    assert torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(c, d, atol=1e-4)


def test_edge_attention_multiplies_the_attributes():
    net = small_brain_net()
    nodes, edges = graph_inputs()
    half = torch.full((2, 6), 0.5)
    with torch.no_grad():
        assert torch.allclose(net(nodes, edges, EDGES, half)[0], net(nodes, edges * 0.5, EDGES)[0], atol=1e-6)


def test_node_attention_is_the_cosine_with_the_tumour_latent():
    net = small_brain_net()
    nodes, edges = graph_inputs()
    tumour = torch.randn(2, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        u, attention = net(nodes, edges, EDGES, tumour_latent=tumour)
        projected = net.node_head(node_embeddings(net, nodes, edges))  # (2, 6, 8)
        by_hand = (projected * tumour[:, None]).sum(-1) / (projected.norm(dim=-1) * tumour.norm(dim=-1)[:, None])
        weighted = node_embeddings(net, nodes, edges) * by_hand[..., None]
        assert attention.shape == (2, 6) and torch.allclose(attention, by_hand, atol=1e-6)
        assert torch.allclose(u, net.fc(weighted.mean(1)), atol=1e-6)
        assert net(nodes, edges, EDGES)[1] is None


@pytest.mark.parametrize("additions", [False, True])
def test_batching_two_graphs_equals_running_them_one_by_one(additions):
    net = small_brain_net(additions)
    nodes, edges = graph_inputs()
    attention, tumour = torch.rand(2, 6, generator=torch.Generator().manual_seed(1)), torch.randn(2, 8)
    with torch.no_grad():
        u, node_attention = net(nodes, edges, EDGES, attention, tumour)
        for i in range(2):
            u_i, a_i = net(nodes[i:i + 1], edges[i:i + 1], EDGES, attention[i:i + 1], tumour[i:i + 1])
            assert torch.allclose(u[i], u_i[0], atol=1e-5) and torch.allclose(node_attention[i], a_i[0], atol=1e-5)


@pytest.mark.parametrize("additions", [False, True])
def test_batched_form_embed_and_encode_serve_pyg_explainer(additions):
    from torch_geometric.explain import Explainer, GNNExplainer

    net = small_brain_net(additions)
    nodes, edges = graph_inputs()
    x, edge_index, edge_attr = net.batched_graph(nodes, edges, EDGES, None)
    assert edge_index.shape == (2, 2 * 2 * 6)  # two graphs, both directions of six pathways
    with torch.no_grad():
        unattended, _ = net.encode(x, edge_index, edge_attr, 2)
        assert torch.allclose(unattended, net(nodes, edges, EDGES)[0], atol=1e-6)

    class Graph(nn.Module):  # holds the encoder, so that the Explainer finds its message-passing layers to mask
        def __init__(self, encoder):
            super().__init__()
            self.encoder = encoder

        def forward(self, x, edge_index, edge_attr):
            return self.encoder.encode(x, edge_index, edge_attr, 1)[0]

    explainer = Explainer(Graph(net), GNNExplainer(epochs=5), explanation_type="model", edge_mask_type="object",
                          model_config=dict(mode="multiclass_classification", task_level="graph", return_type="raw"))
    explanation = explainer(x[:6], edge_index[:, :12], edge_attr=edge_attr[:12])
    assert explanation.edge_mask.shape == (12,)


def _relabelled(nodes, edges, order):
    """The same networks with region ``order[i]`` renamed ``i`` (nodes reordered, pairs renamed)."""
    rename = torch.empty_like(order)
    rename[order] = torch.arange(len(order))
    return nodes[:, order], edges, rename[EDGES]


def test_paper_encoder_ignores_region_names_and_additions_do_not():
    nodes, edges = graph_inputs()
    order = torch.tensor([5, 4, 3, 2, 1, 0])
    renamed_nodes, _, renamed_edges = _relabelled(nodes, edges, order)
    with torch.no_grad():
        paper = small_brain_net()
        assert torch.allclose(paper(nodes, edges, EDGES)[0], paper(renamed_nodes, edges, renamed_edges)[0],
                              atol=1e-5)  # a graph function: renaming the regions changes nothing
        ours = small_brain_net(additions=True)
        assert not torch.allclose(ours(nodes, edges, EDGES)[0], ours(renamed_nodes, edges, renamed_edges)[0],
                                  atol=1e-3)  # which region and which pathway carries a value matters


def test_pathway_readout_keeps_each_attended_pathway_projection_in_order():
    net = small_brain_net(additions=True)
    nodes, edges = graph_inputs()
    attention = torch.rand(2, 6, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        u, _ = net(nodes, edges, EDGES, attention)
        pooled = node_embeddings(net, nodes, edges, attention).mean(1)  # (2, 8)
        rows = net.pathways.lin(edges * attention[..., None])  # (2, 6 pathways, 2)
        assert torch.allclose(u, net.fc(pooled) + net.pathway_fc(rows.flatten(1)), atol=1e-6)
    assert net.pathway_fc.in_features == 6 * 2


def test_brain_network_shape_errors_say_what_is_expected():
    net = small_brain_net()
    nodes, edges = graph_inputs()
    with pytest.raises(ValueError, match=r"edge_attr must have shape \(B, E, edge_dim\) = \(2, 6, 16\)"):
        net(nodes, edges[:, :5], EDGES)
    with pytest.raises(ValueError, match=r"index the graph's 6 nodes \(0\.\.5\); got values in \[1, 6\]"):
        net(nodes, edges, EDGES + 1)
    with pytest.raises(ValueError, match="tumour_latent"):
        net(nodes, edges, EDGES, tumour_latent=torch.randn(2, 5))
    with pytest.raises(ValueError, match="built for 6 regions per network, given 5"):
        small_brain_net(additions=True)(nodes[:, :5], edges, EDGES % 5)


def test_incident_edge_mean_is_the_mean_of_the_arriving_edge_attributes():
    from gliotype.nn.brainnet import IncidentEdgeMean

    edge_index = torch.tensor([[0, 2], [1, 1]])  # 0 -> 1 and 2 -> 1
    attr = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    out = IncidentEdgeMean()(torch.zeros(3, 5), edge_index, attr)
    assert out.tolist() == [[0.0, 0.0], [2.0, 3.0], [0.0, 0.0]]
