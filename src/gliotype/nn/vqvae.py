"""The perfusion VQ-VAE of paper 002 (HiPerfGNN, section 2.1): one habitat code per tumour voxel.

Each tumour voxel's DSC time-intensity curve (``T`` = 30 to 90 points, scaled per curve by
:func:`gliotype.prepare.perfusion.scale_curves`) is encoded to ``N`` latent vectors of ``d`` features
(paper: ``N = 3``, ``d = 256``). Position ``n`` has its own codebook of ``K`` entries (author code: three
codebooks of ``K = 2``); each latent vector is replaced by its nearest entry (eq. 1), with the
straight-through gradient. The decoder maps the quantised sequence back to a fixed-length curve. The code
sequence ``(k_0, ..., k_{N-1})`` becomes one label ``sum_n k_n K^(N-1-n) + 1`` (1..8 for ``N = 3, K = 2``).

Loss (eq. 2): L1 reconstruction (``+ l2_weight`` x MSE; the author code adds an L2 term) of the input curve
brought to ``decoder_length`` points (as the encoder's ``time_axis``), plus the codebook and commitment terms of
:func:`gliotype.losses.vq_losses` (``beta`` = 0.25; squared distances summed over the ``d`` features
and the ``N`` positions, averaged over the batch), both multiplied by :attr:`VQVAEConfig.vq_weight`
(1.0 for the lean encoder; ``1 / (N d)`` for the paper encoder, i.e. the per-element mean that the
author code uses, there with a further weight of 0.01).

Encoders (``VQVAEConfig.encoder``):

* ``"paper"``: the authors' style at the curve's own resolution (their encoder: 8.65 M parameters,
  ~140 MFLOP per curve at T = 60). Ours: ``Conv1d(1, 128)``, a residual block at 128 channels, a strided
  conv to 256 and a residual block, a strided conv to 512 and two residual blocks (GroupNorm + SiLU,
  kernel 3), ``AdaptiveAvgPool1d(N)`` and a 1x1 projection to ``d``: 4.3 M parameters and ~147 MFLOP per
  curve at T = 60, the same class of cost (the pooling absorbs any ``T``).
* ``"lean"`` (default): the curve is brought to ``input_length`` (64) points, so any ``T`` costs the same:
  by default (``time_axis="pad"``) frame ``i`` stays frame ``i`` and a shorter series is extended with its
  last value, so a model trained on 60-frame series reads 45-frame ones with the bolus where it was
  (``"resample"`` stretches every series over the same span, as the paper's adaptive pooling does); two strided ``Conv1d`` layers (16 and 32 channels, kernel 5, stride 2) with ReLU,
  ``AdaptiveAvgPool1d(N)``, and one ``Linear(32, d)`` per position: 28 k parameters and ~0.2 MFLOP per
  curve (the resampling and the first convolution run as one matrix product). The decoder only ever sees
  one of ``K^N`` quantised sequences, so the reconstruction is one of ``K^N`` prototype curves whichever
  encoder is used; ``benchmarks/bench_vqvae.py`` measures both encoders' reconstruction error.

Codebook collapse (an entry of a ``K = 2`` codebook that no curve chooses) is the main failure mode.
Three defences, used by :func:`gliotype.prepare.perfusion.train_vqvae`:

* :meth:`PerfusionVQVAE.init_from_batch` sets each position's codebook from the first training batch's
  ``z_e`` (k-means++ seeds refined by k-means, so both entries start inside the data);
* it also sets the decoder's output bias to the batch's mean level: otherwise the early reconstruction
  error is mostly the curves' level, and the commitment term pulled every latent onto one entry before
  the decoder learned to use the codes (seen on the OSIPI DSC reference object);
* :meth:`PerfusionVQVAE.reseed_codes` moves an entry that no curve chose during an epoch onto a randomly
  drawn ``z_e`` of that position.

What the codes capture: each position must split the curves in two. A position whose time window holds
no structure (a flat baseline) therefore splits on noise; and the codes follow the split that best
*reconstructs* the curves (mostly depth and width of the drop), which need not be the physiological
quantity of interest: on the OSIPI reference object they do not reliably separate CBV 2 from CBV 4
(``tests/prepare/test_dsc_reference.py``).
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from torch import Tensor, nn
from torch.nn import functional as F

from gliotype.losses.vq import vq_losses
from gliotype.nn.curve_encoders import MAX_T, MIN_T, LeanEncoder, PaperEncoder, check_curves, decoder, resample_curves

__all__ = ["MAX_T", "MIN_T", "PerfusionVQVAE", "VQVAEConfig", "check_curves", "code_labels", "encode_voxels",
           "resample_curves"]

log = logging.getLogger(__name__)


class VQVAEConfig(BaseModel):
    """Architecture and loss weights of the perfusion VQ-VAE (paper values where the paper gives them)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    positions: int = Field(3, ge=1)  # N
    latent_dim: int = Field(256, ge=1)  # d
    codebook_size: int = Field(2, ge=2)  # K, per position
    beta: float = Field(0.25, ge=0)
    encoder: Literal["lean", "paper"] = "lean"
    input_length: int = Field(64, ge=8)  # lean encoder: every curve is brought to this length first
    time_axis: Literal["pad", "resample"] = "pad"  # how: frames kept, last value repeated (or cropped); or stretched
    decoder_length: int = Field(64, ge=8)  # the reconstruction target: the input resampled to this length
    lean_channels: tuple[int, int] = (16, 32)
    paper_channels: tuple[int, int, int] = (128, 256, 512)
    decoder_hidden: int = Field(256, ge=1)
    l2_weight: float = Field(0.0, ge=0)  # author code adds an L2 reconstruction term
    codebook_weight: float | None = Field(None, ge=0)  # multiplies codebook + commitment; None: vq_weight

    @property
    def vq_weight(self) -> float:
        """``codebook_weight``, or when None the encoder's default: 1.0 (lean; eq. 2 as written) or
        ``1 / (N d)`` (paper: the per-element mean of the author code, whose weight 0.01 on that mean is
        ``0.01 / (N d)`` here). Measured (``bench_vqvae``, 160 steps, 3 seeds): at 1.0 the paper encoder's
        latents collapsed (held-out L1 0.054, the mean curve's 0.057); at ``1 / (N d)`` it reached 0.043.
        The lean encoder reached 0.041 at 1.0; at ``1 / (N d)`` one seed in three collapsed onto one code,
        and on the DSC reference object its codes separated CBV 2 from 4 for 0 of 10 seeds (4 of 10 at
        1.0)."""
        if self.codebook_weight is not None:
            return self.codebook_weight
        return 1.0 if self.encoder == "lean" else 1.0 / (self.positions * self.latent_dim)

    @field_validator("paper_channels", "lean_channels")
    @classmethod
    def _positive_channels(cls, value: tuple[int, ...], info: ValidationInfo) -> tuple[int, ...]:
        step = 32 if info.field_name == "paper_channels" else 1  # GroupNorm(32, c) in the paper encoder
        if any(c < step or c % step for c in value):
            raise ValueError(f"{info.field_name} must be positive multiples of {step}; got {value!r}")
        return value


# ------------------------------------------------------------------------------------------ the model


class PerfusionVQVAE(nn.Module):
    """Encoder, ``N`` codebooks of ``K`` entries (one per latent position), straight-through, decoder.

    Args:
        config: architecture and loss weights (default :class:`VQVAEConfig`).

    Shapes:
        curves: (B, T), 30 <= T <= 90 -> :meth:`encode`: z_e (B, N, d); :meth:`quantize`: z_q (B, N, d) and
        indices (B, N); :meth:`forward`: ``recon`` and ``target`` (B, L) with ``L = decoder_length``.
    """

    def __init__(self, config: VQVAEConfig | None = None):
        super().__init__()
        self.config = config = config or VQVAEConfig()
        self.encoder = LeanEncoder(config) if config.encoder == "lean" else PaperEncoder(config)
        self.codebooks = nn.Parameter(torch.randn(config.positions, config.codebook_size, config.latent_dim) * 0.1)
        self.decoder = decoder(config)

    def encode(self, curves: Tensor) -> Tensor:
        """Continuous latents ``z_e`` (before quantisation) of a batch of scaled curves."""
        check_curves(curves)
        return self.encoder(curves.to(self.codebooks.dtype))

    def quantize(self, z_e: Tensor) -> tuple[Tensor, Tensor]:
        """Nearest entry of each position's codebook (eq. 1); ``z_q`` carries no straight-through gradient.

        Returns:
            ``(z_q, indices)``: the chosen entries (gradient reaches the codebooks only) and their int64
            indices in ``0..K-1``.
        """
        e = self.codebooks.to(z_e.dtype)
        dist = e.pow(2).sum(-1) - 2 * torch.einsum("bnd,nkd->bnk", z_e, e)  # ||z_e||^2 is the same for every k
        indices = dist.argmin(-1)
        z_q = torch.gather(e.unsqueeze(0).expand(z_e.shape[0], -1, -1, -1), 2,
                           indices[..., None, None].expand(-1, -1, 1, e.shape[-1])).squeeze(2)
        return z_q, indices

    def decode(self, z_q: Tensor) -> Tensor:
        """Reconstructed curves of ``decoder_length`` points from quantised latents (B, N, d)."""
        return self.decoder(z_q)

    def forward(self, curves: Tensor) -> dict[str, Tensor]:
        """Encode, quantise (straight-through), decode, and the loss of eq. 2.

        Returns:
            A dict with ``recon`` and ``target`` (the input resampled to ``decoder_length``), ``z_e``,
            ``indices``, and the scalar terms ``reconstruction`` (L1 + ``l2_weight`` x MSE), ``codebook``,
            ``commitment`` (``beta`` included) and ``loss`` = reconstruction + ``config.vq_weight`` x
            (codebook + commitment).
        """
        cfg = self.config
        z_e = self.encode(curves)
        z_q, indices = self.quantize(z_e)
        recon = self.decode(z_e + (z_q - z_e).detach())
        target = resample_curves(curves, cfg.decoder_length, cfg.time_axis)
        reconstruction = F.l1_loss(recon, target)
        if cfg.l2_weight:
            reconstruction = reconstruction + cfg.l2_weight * F.mse_loss(recon, target)
        codebook, commitment = vq_losses(z_e, z_q, cfg.beta)
        loss = reconstruction + cfg.vq_weight * (codebook + commitment)
        return dict(recon=recon, target=target, z_e=z_e, indices=indices, loss=loss,
                    reconstruction=reconstruction, codebook=codebook, commitment=commitment)

    @torch.no_grad()
    def init_from_batch(self, curves: Tensor, generator: torch.Generator) -> None:
        """Start training from data: the decoder's output bias at the batch's mean level, and
        :meth:`init_codebooks` on the batch's latents.

        Without the first, the early reconstruction error is dominated by the curves' level (~1 after
        ``p995`` scaling) and the commitment term can pull every latent onto one entry before the decoder
        learns to use the codes (seen on the OSIPI DSC reference object: all curves in one code).

        Shapes:
            curves: (B, T)
        """
        self.decoder[-1].bias.fill_(float(resample_curves(curves, self.config.decoder_length,
                                                          self.config.time_axis).mean()))
        self.init_codebooks(self.encode(curves), generator)

    @torch.no_grad()
    def init_codebooks(self, z_e: Tensor, generator: torch.Generator, iterations: int = 20) -> None:
        """Set each position's codebook from data: k-means++ seeds, then ``iterations`` of k-means.

        k-means++: the first seed is a random latent, each next one is drawn with probability proportional
        to its squared distance from the nearest seed so far; Lloyd iterations then move the seeds to the
        means of their clusters (an empty cluster keeps its centre). Deterministic given ``generator``.

        Shapes:
            z_e: (M, N, d), M >= K
        """
        k = self.config.codebook_size
        if z_e.shape[0] < k:
            raise ValueError(f"init_codebooks: needs at least K={k} latents; got {z_e.shape[0]}")
        for n in range(z_e.shape[1]):
            self.codebooks[n] = _kmeans(z_e[:, n].float().cpu(), k, iterations, generator).to(self.codebooks)

    @torch.no_grad()
    def reseed_codes(self, dead: Tensor, z_e: Tensor, generator: torch.Generator) -> int:
        """Move every dead entry (``dead[n, k]`` true) onto a randomly drawn latent of position ``n``.

        Returns:
            The number of entries moved.

        Shapes:
            dead: (N, K) bool, z_e: (M, N, d)
        """
        pos, ent = torch.nonzero(dead.cpu(), as_tuple=True)
        if len(pos):
            log.debug("re-seeding %d dead codebook entries (position, entry): %s", len(pos),
                      list(zip(pos.tolist(), ent.tolist())))
            rows = torch.randint(z_e.shape[0], (len(pos),), generator=generator)
            self.codebooks[pos, ent] = z_e[rows, pos].to(self.codebooks)
        return len(pos)


def _kmeans(x: Tensor, k: int, iterations: int, generator: torch.Generator) -> Tensor:
    """(k, d) centres of ``x`` (M, d): k-means++ seeds refined by Lloyd iterations."""
    seeds = [int(torch.randint(len(x), (1,), generator=generator))]
    for _ in range(1, k):
        d2 = torch.cdist(x, x[seeds]).min(1).values.pow(2)
        seeds.append(int(torch.multinomial(d2 + 1e-12, 1, generator=generator)))
    centres = x[seeds].clone()
    for _ in range(iterations):
        assign = torch.cdist(x, centres).argmin(1)
        for j in range(k):
            if (assign == j).any():
                centres[j] = x[assign == j].mean(0)
    return centres


# ------------------------------------------------------------------------------------------ codes


def code_labels(indices: Tensor | np.ndarray, codebook_size: int = 2) -> Tensor | np.ndarray:
    """One habitat label per curve from its code sequence: ``sum_n k_n K^(N-1-n) + 1``.

    For ``N = 3, K = 2``: ``4 k_0 + 2 k_1 + k_2 + 1``, in 1..8.

    Shapes:
        indices: (B, N) -> (B,), same library (torch or NumPy) as the input.
    """
    n = indices.shape[-1]
    weights = [codebook_size ** (n - 1 - i) for i in range(n)]
    if isinstance(indices, Tensor):
        return (indices.long() * torch.tensor(weights, device=indices.device)).sum(-1) + 1
    return (np.asarray(indices, dtype=np.int64) * np.array(weights)).sum(-1) + 1


@torch.inference_mode()
def encode_voxels(model: PerfusionVQVAE, curves: np.ndarray, batch_size: int = 4096,
                  device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Habitat code and continuous latents of every voxel's curve, in batches (memory bounded by a batch).

    Args:
        model: a trained VQ-VAE (it is used as is; put it in eval mode).
        curves: scaled curves, one row per voxel (any float dtype; cast per batch).
        batch_size: curves per forward pass.
        device: where to run the model (the model is moved there).

    Returns:
        ``(codes, latents)``: labels ``1..K^N`` (uint8 when they fit, else int32) and the pre-quantisation
        latents ``z_e`` as float16.

    Shapes:
        curves: (n, T) -> codes: (n,), latents: (n, N, d)
    """
    check_curves(curves)
    if batch_size < 1:
        raise ValueError(f"encode_voxels: batch_size must be >= 1; got {batch_size!r}")
    cfg = model.config
    model = model.to(device)
    n_codes = cfg.codebook_size ** cfg.positions
    codes = np.empty(len(curves), dtype=np.uint8 if n_codes <= 255 else np.int32)
    latents = np.empty((len(curves), cfg.positions, cfg.latent_dim), dtype=np.float16)
    for start in range(0, len(curves), batch_size):
        batch = torch.as_tensor(np.asarray(curves[start:start + batch_size], dtype=np.float32), device=device)
        z_e = model.encode(batch)
        _, indices = model.quantize(z_e)
        codes[start:start + len(batch)] = code_labels(indices, cfg.codebook_size).cpu().numpy()
        latents[start:start + len(batch)] = z_e.to(torch.float16).cpu().numpy()
    return codes, latents
