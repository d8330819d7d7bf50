"""Tests for gliotype.nn.vqvae: the perfusion VQ-VAE of paper 002 (codes, shapes, straight-through, losses)."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from gliotype.losses import vq_losses
from gliotype.nn.vqvae import resample_curves, PerfusionVQVAE, VQVAEConfig, code_labels, encode_voxels
from gliotype.prepare.perfusion import train_vqvae


def test_code_labels_on_hand_written_indices():
    indices = [[0, 0, 0], [1, 0, 1], [1, 1, 1], [0, 1, 0]]  # 4 k0 + 2 k1 + k2 + 1
    assert code_labels(torch.tensor(indices)).tolist() == [1, 6, 8, 3]
    assert code_labels(np.array(indices)).tolist() == [1, 6, 8, 3]
    assert code_labels(np.array([[2, 0], [1, 2]]), codebook_size=3).tolist() == [7, 6]  # 3 k0 + k1 + 1


@pytest.mark.parametrize("encoder", ["lean", "paper"])
def test_any_length_from_30_to_90_gives_three_latents_of_256(encoder):
    model = PerfusionVQVAE(VQVAEConfig(encoder=encoder))
    for t in (30, 45, 60, 81, 90):
        z_e = model.encode(torch.rand(2, t))
        assert z_e.shape == (2, 3, 256)
        out = model(torch.rand(2, t))
        assert out["recon"].shape == out["target"].shape == (2, 64) and out["indices"].dtype == torch.int64


@pytest.mark.parametrize(("t", "words"), [(29, "has 29 time points"), (91, "has 91 time points"),
                                          (161, "accepts 30 to 90: crop or resample")])
def test_lengths_outside_30_to_90_are_rejected(t, words):
    with pytest.raises(ValueError, match=words):
        PerfusionVQVAE().encode(torch.rand(2, t))


def test_non_finite_curves_are_rejected():
    curves = torch.rand(3, 60)
    curves[1, 5] = float("nan")
    with pytest.raises(ValueError, match="non-finite values .* in 1 of 3 curves"):
        PerfusionVQVAE()(curves)
    with pytest.raises(ValueError, match="non-finite"):
        encode_voxels(PerfusionVQVAE(), curves.numpy())


@pytest.mark.parametrize("time_axis", ["pad", "resample"])
def test_lean_encoder_is_resample_then_convolutions(time_axis):
    """The fused first layer equals conv1(the curve brought to 64 points), and the pooling AdaptiveAvgPool1d."""
    torch.manual_seed(0)
    enc = PerfusionVQVAE(VQVAEConfig(time_axis=time_axis)).encoder
    x = torch.rand(4, 45)
    if time_axis == "pad":  # the 45 frames, then the last one repeated
        r = torch.cat([x, x[:, -1:].expand(4, 19)], 1).unsqueeze(1)
    else:
        r = F.interpolate(x.unsqueeze(1), size=64, mode="linear", align_corners=True)
    h = F.adaptive_avg_pool1d(F.relu(enc.conv2(F.relu(enc.conv1(r)))), 3)  # (4, 32, 3)
    expected = torch.einsum("bcn,ncd->bnd", h, enc.weight) + enc.bias.squeeze(1)
    assert torch.allclose(enc(x), expected, atol=1e-5)


def test_padding_keeps_each_frame_at_its_time():
    x = torch.arange(1.0, 46.0).unsqueeze(0)  # 45 frames
    padded = resample_curves(x, 64, "pad")
    assert padded[0, :45].tolist() == x[0].tolist() and (padded[0, 45:] == 45).all()
    assert resample_curves(torch.arange(90.0).unsqueeze(0), 64, "pad")[0].tolist() == list(range(64))


def test_quantize_picks_the_nearest_entry_of_each_position():
    model = PerfusionVQVAE(VQVAEConfig(positions=2, latent_dim=2))
    with torch.no_grad():
        model.codebooks.copy_(torch.tensor([[[0.0, 0.0], [1.0, 1.0]], [[0.0, 2.0], [2.0, 0.0]]]))
    z_e = torch.tensor([[[0.9, 0.8], [0.1, 1.5]], [[0.2, 0.1], [1.9, 0.3]]])
    z_q, indices = model.quantize(z_e)
    assert indices.tolist() == [[1, 0], [0, 1]]
    assert z_q.tolist() == [[[1.0, 1.0], [0.0, 2.0]], [[0.0, 0.0], [2.0, 0.0]]]


def test_vq_losses_on_a_hand_made_pair():
    # sample 0: ||(1, 0) - (0, 0)||^2 + ||(0, 2) - (0, 0)||^2 = 1 + 4 = 5; sample 1: distance 0
    z_e = torch.tensor([[[1.0, 0.0], [0.0, 2.0]], [[3.0, 3.0], [3.0, 3.0]]], requires_grad=True)
    z_q = torch.tensor([[[0.0, 0.0], [0.0, 0.0]], [[3.0, 3.0], [3.0, 3.0]]], requires_grad=True)
    codebook, commitment = vq_losses(z_e, z_q, beta=0.25)
    assert codebook.item() == pytest.approx(2.5) and commitment.item() == pytest.approx(0.625)
    codebook.backward()
    assert z_e.grad is None and z_q.grad[0, 1].tolist() == [0.0, -2.0]  # d/dz_q of ||z_e - z_q||^2 / B, B = 2


def test_straight_through_gradients_reach_the_encoder_and_not_the_codebooks():
    torch.manual_seed(0)
    model = PerfusionVQVAE()
    out = model(torch.rand(8, 60))
    out["reconstruction"].backward()
    assert model.encoder.conv1.weight.grad.abs().sum() > 0 and model.encoder.weight.grad.abs().sum() > 0
    assert model.codebooks.grad is None  # the reconstruction bypasses the quantiser's choice
    model.zero_grad()
    out = model(torch.rand(8, 60))
    out["codebook"].backward()
    assert model.codebooks.grad.abs().sum() > 0 and model.encoder.conv1.weight.grad is None


def gamma_drop(depth, t, t0=8.0, alpha=2.0, beta=8.0):
    """1 - depth * gamma-variate / its peak: a DSC signal drop that lasts over the whole 60-point window."""
    s = np.clip(t - t0, 0, None)
    g = s ** alpha * np.exp(-s / beta)
    return 1 - depth * g / g.max()


def test_two_planted_curve_shapes_get_their_own_codes():
    rng = np.random.default_rng(0)
    t = np.arange(60.0)
    shallow = gamma_drop(0.2, t) + rng.normal(0, 0.02, (300, 60))
    deep = gamma_drop(0.6, t) + rng.normal(0, 0.02, (300, 60))
    model, summary = train_vqvae([shallow.astype(np.float32), deep.astype(np.float32)], VQVAEConfig(),
                                 epochs=5, batch_size=64, seed=0)
    codes, latents = encode_voxels(model, np.concatenate([shallow, deep]))
    code_a, code_b = np.bincount(codes[:300]).argmax(), np.bincount(codes[300:]).argmax()
    assert code_a != code_b
    assert (codes[:300] == code_a).mean() >= 0.95 and (codes[300:] == code_b).mean() >= 0.95
    assert sum(summary["code_histogram"]) == 600 and latents.shape == (600, 3, 256)


def test_encode_voxels_in_batches_equals_one_batch():
    torch.manual_seed(0)
    model = PerfusionVQVAE().eval()
    curves = np.random.default_rng(1).random((50, 60))
    with torch.no_grad():
        model.init_codebooks(model.encode(torch.as_tensor(curves, dtype=torch.float32)), torch.Generator())
    codes, latents = encode_voxels(model, curves, batch_size=7)
    codes_1, latents_1 = encode_voxels(model, curves, batch_size=50)
    assert codes.dtype == np.uint8 and latents.dtype == np.float16 and latents.shape == (50, 3, 256)
    assert np.array_equal(codes, codes_1) and np.allclose(latents, latents_1, atol=1e-3)
    assert set(np.unique(codes)) <= set(range(1, 9)) and len(np.unique(codes)) > 1


def test_encoding_in_inference_mode_does_not_break_a_later_training_step():
    model = PerfusionVQVAE()
    encode_voxels(model, np.random.default_rng(0).random((8, 37), dtype=np.float32))  # fills the caches
    model(torch.rand(4, 37))["loss"].backward()  # the cached matrices are normal tensors
    assert model.encoder.conv1.weight.grad is not None
