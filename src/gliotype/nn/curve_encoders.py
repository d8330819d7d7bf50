"""The perfusion VQ-VAE's curve handling and networks: length checks, bringing a curve to a fixed length,
the lean and the paper-sized encoders, and the decoder (see :mod:`gliotype.nn.vqvae` for the model)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

if TYPE_CHECKING:
    from gliotype.nn.vqvae import VQVAEConfig

MIN_T, MAX_T = 30, 90  # time points a curve may have


# ------------------------------------------------------------------------------------------ curves


def check_curves(curves: Tensor | np.ndarray, name: str = "curves") -> None:
    """Raise ``ValueError`` unless ``curves`` is a finite (B, T) batch with ``MIN_T <= T <= MAX_T``."""
    if curves.ndim != 2:
        raise ValueError(f"{name} must be a (B, T) batch of time-intensity curves; got shape {tuple(curves.shape)}")
    t = curves.shape[1]
    if not MIN_T <= t <= MAX_T:
        raise ValueError(f"{name} has {t} time points; the VQ-VAE accepts {MIN_T} to {MAX_T}: crop or resample "
                         "the series")
    finite = torch.isfinite(curves).all() if isinstance(curves, Tensor) else np.isfinite(curves).all()
    if not finite:
        bad = int((~(torch.isfinite(curves) if isinstance(curves, Tensor) else np.isfinite(curves))).any(1).sum())
        raise ValueError(f"{name} holds non-finite values (NaN or inf) in {bad} of {curves.shape[0]} curves; "
                         "drop or repair those voxels before encoding")


def _cached_outside_inference(fn):
    """``functools.lru_cache`` whose tensors are made outside inference mode: a matrix first built inside
    ``encode_voxels`` (``torch.inference_mode``) could not be used later by a training step."""
    cached = functools.lru_cache(maxsize=64)(fn)

    @functools.wraps(fn)
    def wrapper(*args):
        with torch.inference_mode(False):
            return cached(*args)

    return wrapper


@_cached_outside_inference
def _resample_matrix(t_in: int, t_out: int, time_axis: str = "resample") -> Tensor:
    """(t_in, t_out) matrix bringing a curve to ``t_out`` points.

    ``"resample"``: linear interpolation between evenly spaced samples, end points kept (a 45-point and a
    60-point series are both stretched over the same span). ``"pad"``: frame ``i`` stays frame ``i`` (the
    same time after injection at a common TR); a shorter series is extended with its last value, a longer
    one cropped. Stretching moves the bolus: a model trained on 60 frames then misreads 45 ones.
    """
    if time_axis == "pad":
        m = torch.zeros(t_in, t_out)
        n = min(t_in, t_out)
        m[torch.arange(n), torch.arange(n)] = 1.0
        m[t_in - 1, n:] = 1.0
        return m
    pos = torch.linspace(0, t_in - 1, t_out, dtype=torch.float64)
    lo = pos.floor().long().clamp(max=t_in - 2)
    frac = pos - lo
    m = torch.zeros(t_in, t_out, dtype=torch.float64)
    m[lo, torch.arange(t_out)] = 1 - frac
    m[lo + 1, torch.arange(t_out)] += frac
    return m.float()


def resample_curves(curves: Tensor, length: int, time_axis: str = "resample") -> Tensor:
    """Each curve brought to ``length`` points: linear resampling (first and last points kept), or with
    ``time_axis="pad"`` padded with its last value / cropped (see :func:`_resample_matrix`).

    Shapes:
        curves: (B, T) -> (B, length)
    """
    if curves.shape[1] == length:
        return curves
    m = _resample_matrix(curves.shape[1], length, time_axis).to(device=curves.device, dtype=curves.dtype)
    return curves @ m


# ------------------------------------------------------------------------------------------ networks


class LeanEncoder(nn.Module):
    """Resample to ``input_length``, two strided convs, pool to ``N`` positions, one Linear per position.

    The resampling and the first convolution are both linear, so they run as one matrix product: the
    first convolution is applied to the ``T`` rows of the resampling matrix (the resampled unit impulses),
    giving a ``(T, c1 * input_length / 2)`` matrix that the curves multiply. This is exactly
    ``conv1(resample(curves))`` and ~10x faster than a 1-channel ``Conv1d`` on CPU. The average pooling
    is a ``(L/4, N)`` matrix with the bins of ``nn.AdaptiveAvgPool1d``.

    Shapes:
        curves: (B, T) -> z_e: (B, N, d)
    """

    def __init__(self, config: VQVAEConfig):
        super().__init__()
        c1, c2 = config.lean_channels
        self.length, self.positions, self.time_axis = config.input_length, config.positions, config.time_axis
        self.conv1 = nn.Conv1d(1, c1, 5, stride=2, padding=2)
        self.conv2 = nn.Conv1d(c1, c2, 5, stride=2, padding=2)
        self.weight = nn.Parameter(torch.empty(config.positions, c2, config.latent_dim))
        self.bias = nn.Parameter(torch.zeros(config.positions, 1, config.latent_dim))
        nn.init.uniform_(self.weight, -c2 ** -0.5, c2 ** -0.5)  # as nn.Linear(c2, d)

    def forward(self, curves: Tensor) -> Tensor:
        b, t = curves.shape
        impulses = _resample_matrix(t, self.length, self.time_axis).to(curves).unsqueeze(1)  # (T, 1, L)
        first = F.conv1d(impulses, self.conv1.weight, stride=2, padding=2)  # (T, c1, L/2)
        bias = self.conv1.bias.repeat_interleave(first.shape[-1])
        h = F.relu(torch.addmm(bias, curves, first.flatten(1))).view(b, -1, first.shape[-1])
        h = F.relu(self.conv2(h))  # (B, c2, L/4)
        pool = _pool_matrix(h.shape[-1], self.positions).to(h)
        h = (h.reshape(-1, h.shape[-1]) @ pool).view(b, -1, self.positions)  # (B, c2, N)
        return torch.baddbmm(self.bias, h.permute(2, 0, 1), self.weight).transpose(0, 1)


@_cached_outside_inference
def _pool_matrix(length: int, positions: int) -> Tensor:
    """(length, positions) averaging matrix with the bins of ``nn.AdaptiveAvgPool1d(positions)``."""
    m = torch.zeros(length, positions)
    for i in range(positions):
        lo, hi = (i * length) // positions, -((-(i + 1) * length) // positions)
        m[lo:hi, i] = 1.0 / (hi - lo)
    return m


class _ResBlock(nn.Module):
    """GroupNorm-SiLU-Conv1d twice, plus the input (the authors' taming-style residual block)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.GroupNorm(32, channels), nn.SiLU(), nn.Conv1d(channels, channels, 3, padding=1),
                                  nn.GroupNorm(32, channels), nn.SiLU(), nn.Conv1d(channels, channels, 3, padding=1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class PaperEncoder(nn.Module):
    """The authors' style: wide Conv1d stack at the curve's own resolution, pooled to ``N`` positions.

    Shapes:
        curves: (B, T) -> z_e: (B, N, d)
    """

    def __init__(self, config: VQVAEConfig):
        super().__init__()
        c1, c2, c3 = config.paper_channels
        self.net = nn.Sequential(
            nn.Conv1d(1, c1, 3, padding=1), _ResBlock(c1),
            nn.Conv1d(c1, c2, 3, stride=2, padding=1), _ResBlock(c2),
            nn.Conv1d(c2, c3, 3, stride=2, padding=1), _ResBlock(c3), _ResBlock(c3),
            nn.GroupNorm(32, c3), nn.SiLU(), nn.AdaptiveAvgPool1d(config.positions),
            nn.Conv1d(c3, config.latent_dim, 1))

    def forward(self, curves: Tensor) -> Tensor:
        return self.net(curves.unsqueeze(1)).transpose(1, 2)


def decoder(config: VQVAEConfig) -> nn.Sequential:
    n_in = config.positions * config.latent_dim
    return nn.Sequential(nn.Flatten(), nn.Linear(n_in, config.decoder_hidden), nn.ReLU(),
                         nn.Linear(config.decoder_hidden, config.decoder_length))
