"""Tests for gliotype.nn.netgen: the self-supervised brain-network generator of paper 001 (small widths)."""

import numpy as np
import pytest
import torch

from gliotype.nn.netgen import EdgeEncoder, Generator, GeneratorConfig, NodeAutoencoder, mlp, train_generator


def low_rank_nodes(n_patients, seed, dim=64, rank=3, n=90):
    """Region vectors on a rank-3 subspace plus a little noise: an autoencoder can compress them."""
    basis = np.random.default_rng(99).normal(size=(rank, dim))
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(n, rank)) @ basis / np.sqrt(rank) + 0.05 * rng.normal(size=(n, dim))).astype(np.float16)
            for _ in range(n_patients)]


def planted_fa_edges(n_patients, seed, dim=64, n_nuisance=24, n=100):
    """Edges whose anatomy mixes a hidden factor ``h`` with 24 nuisance factors, and whose FA sees only ``h``.

    Returns per-patient anatomy (n, 64), FA (n, 8) = tanh(k h), tanh(-k h / 2) for k = 1..4 (+ noise), and ``h``.
    """
    loadings = np.random.default_rng(123).normal(size=(1 + n_nuisance, dim)) / np.sqrt(1 + n_nuisance)
    rng = np.random.default_rng(seed)
    anat, fa, hidden = [], [], []
    k = np.arange(1, 5)
    for _ in range(n_patients):
        h = rng.uniform(-1, 1, (n, 1))
        factors = np.c_[h, rng.normal(size=(n, n_nuisance))]
        anat.append((factors @ loadings + 0.1 * rng.normal(size=(n, dim))).astype(np.float32))
        fa.append((np.c_[np.tanh(h * k), np.tanh(-h * k / 2)] + 0.05 * rng.normal(size=(n, 8))).astype(np.float32))
        hidden.append(h[:, 0])
    return anat, fa, np.concatenate(hidden)


def held_out_r2(z_train, h_train, z_test, h_test):
    """R^2 on held-out edges of a ridge-regularised linear fit of ``h`` from standardised codes."""
    mu, sd = z_train.mean(0), z_train.std(0) + 1e-6
    x_train, x_test = (z_train - mu) / sd, (z_test - mu) / sd
    w = np.linalg.solve(x_train.T @ x_train + 1e-2 * len(x_train) * np.eye(x_train.shape[1]),
                        x_train.T @ (h_train - h_train.mean()))
    residual = x_test @ w + h_train.mean() - h_test
    return 1 - (residual ** 2).sum() / ((h_test - h_test.mean()) ** 2).sum()


SMALL = dict(node_hidden=(32,), edge_hidden=(32,), fa_hidden=(16,), proj=(16, 16), out=16, batch_size=50)


# ---------------------------------------------------------------------------------------- modules


def test_mlp_puts_relu_between_linear_layers_only():
    net = mlp([5, 4, 3])
    assert [type(m).__name__ for m in net] == ["Linear", "ReLU", "Linear"]
    assert [type(m).__name__ for m in mlp([5, 3], final_activation=True)] == ["Linear", "ReLU"]
    with pytest.raises(ValueError, match="at least two"):
        mlp([5])


def test_paper_widths_and_mirrored_decoders():
    ae = NodeAutoencoder()
    widths = [m.out_features for m in ae.encoder if isinstance(m, torch.nn.Linear)]
    assert widths == [2048, 1024, 512, 128, 32, 16]
    assert [m.out_features for m in ae.decoder if isinstance(m, torch.nn.Linear)] == [32, 128, 512, 1024, 2048, 4000]
    edge = EdgeEncoder()
    assert [m.out_features for m in edge.fa if isinstance(m, torch.nn.Linear)] == [1024, 512, 128, 32, 16]
    assert edge.contrastive and not EdgeEncoder(fa_dim=None, anat_hidden=(8,)).contrastive


def test_shapes_of_codes_projections_and_reconstructions():
    ae, edge = NodeAutoencoder(64, (32,), 16), EdgeEncoder(64, 8, (32,), (16,), 16, (16, 12))
    x, fa = torch.randn(5, 64), torch.randn(5, 8)
    assert ae.encode(x).shape == (5, 16) and ae(x).shape == (5, 64)
    assert edge.encode(x).shape == (5, 16) and [p.shape for p in edge.projections(x, fa)] == [(5, 12), (5, 12)]
    with pytest.raises(ValueError, match="no decoder"):
        edge.reconstruct(x)
    assert EdgeEncoder(64, None, (32,)).reconstruct(x).shape == (5, 64)


# ---------------------------------------------------------------------------------------- training


def test_node_autoencoder_reconstruction_loss_falls_more_than_five_fold():
    anat, _, _ = planted_fa_edges(1, seed=0)
    config = GeneratorConfig(epochs=30, lr=1e-2, **SMALL)
    generator, summary = train_generator(low_rank_nodes(4, seed=0), anat, None, config)
    history = summary["node_loss_history"]
    assert len(history) == 30 and summary["node_loss"] == history[-1]
    assert history[0] > 5 * history[-1]


def test_contrastive_edge_encoder_learns_the_factor_that_fa_sees():
    anat, fa, h = planted_fa_edges(6, seed=0)
    test_anat, _, test_h = planted_fa_edges(4, seed=1)
    config = GeneratorConfig(epochs=30, lr=0.05, max_edges_per_epoch=None, **SMALL)
    generator, summary = train_generator(low_rank_nodes(1, seed=0), anat, fa, config, seed=0)
    assert summary["edge_training"] == "contrastive (FA)"
    assert summary["edge_loss_history"][-1] < summary["edge_loss_history"][0]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        untrained = Generator.from_config(config, 64, 64, 8).edge
    a, t = torch.from_numpy(np.concatenate(anat)), torch.from_numpy(np.concatenate(test_anat))
    with torch.no_grad():
        trained_r2 = held_out_r2(generator.edge.encode(a).numpy(), h, generator.edge.encode(t).numpy(), test_h)
        untrained_r2 = held_out_r2(untrained.encode(a).numpy(), h, untrained.encode(t).numpy(), test_h)
    assert trained_r2 > 0.8  # measured 0.94-0.96 over seeds 0-4
    assert untrained_r2 < 0.5  # measured 0.18-0.26: the nuisance factors dominate a random code


def test_without_fa_maps_the_edge_encoder_is_an_autoencoder():
    anat, _, _ = planted_fa_edges(2, seed=0)
    config = GeneratorConfig(epochs=5, lr=1e-2, **SMALL)
    generator, summary = train_generator(low_rank_nodes(1, seed=0), anat, None, config)
    assert summary["edge_training"] == "autoencoder (no FA maps)"
    assert not generator.edge.contrastive and hasattr(generator.edge, "decoder")
    assert summary["edge_loss_history"][-1] < summary["edge_loss_history"][0]


@pytest.mark.parametrize("limit, batches", [(120, [50, 50, 20]), (101, [50, 51]), (None, [50] * 6)])
def test_max_edges_per_epoch_limits_the_vectors_drawn(monkeypatch, limit, batches):
    """300 edges, batch 50: an epoch draws ``limit`` of them; a last batch of one joins the batch before."""
    anat, fa, _ = planted_fa_edges(3, seed=0)
    config = GeneratorConfig(epochs=1, lr=1e-2, max_edges_per_epoch=limit, **SMALL)
    generator = Generator.from_config(config, 64, 64, 8)
    monkeypatch.setattr(Generator, "from_config", classmethod(lambda cls, *args: generator))
    seen = []
    generator.edge.anat.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[0]))
    train_generator(low_rank_nodes(1, seed=0), anat, fa, config)
    assert seen == batches


def test_same_seed_same_weights_and_another_seed_differs():
    anat, fa, _ = planted_fa_edges(1, seed=0)
    config = GeneratorConfig(epochs=2, lr=1e-2, **SMALL)
    nodes = low_rank_nodes(1, seed=0)
    a, _ = train_generator(nodes, anat, fa, config, seed=3)
    b, _ = train_generator(nodes, anat, fa, config, seed=3)
    c, _ = train_generator(nodes, anat, fa, config, seed=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_generator_is_frozen_and_gives_16_d_attributes_for_batched_and_single_inputs():
    anat, fa, _ = planted_fa_edges(1, seed=0)
    config = GeneratorConfig(epochs=1, **SMALL)
    nodes = low_rank_nodes(2, seed=0)  # float16, cast to float32 inside
    generator, _ = train_generator(nodes, anat, fa, config)
    assert not generator.training and not any(p.requires_grad for p in generator.parameters())
    node_attr, edge_attr = generator(np.stack(nodes), np.stack([anat[0][:7], anat[0][7:14]]))
    assert node_attr.shape == (2, 90, 16) and edge_attr.shape == (2, 7, 16) and node_attr.dtype == torch.float32
    one_node, one_edge = generator(nodes[1], torch.from_numpy(anat[0][7:14]))
    assert one_node.shape == (90, 16)
    assert torch.allclose(one_node, node_attr[1]) and torch.allclose(one_edge, edge_attr[1])
    with pytest.raises(ValueError, match="64 samples per vector"):
        generator(nodes[0][:, :10], anat[0])


def test_mismatched_fa_rows_name_the_patient():
    anat, fa, _ = planted_fa_edges(2, seed=0)
    with pytest.raises(ValueError, match="patient 1"):
        train_generator(low_rank_nodes(1, seed=0), anat, [fa[0], fa[1][:-1]], GeneratorConfig(epochs=1, **SMALL))


def test_config_is_frozen_and_rejects_unknown_fields():
    config = GeneratorConfig()
    assert (config.epochs, config.lr_step, config.lr_gamma, config.temperature) == (50, 50, 0.9, 0.1)
    with pytest.raises(Exception):
        config.epochs = 3
    with pytest.raises(Exception, match="extra"):
        GeneratorConfig(epoch=3)
