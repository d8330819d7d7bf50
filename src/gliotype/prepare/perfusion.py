"""DSC perfusion curves for paper 002 (HiPerfGNN): per-curve scaling, relative CBV, and VQ-VAE training.

Pure functions on arrays of time-intensity curves, one row per voxel:

* :func:`scale_curves`: negative values set to 0, then each curve divided by its own 99.5th percentile over
  time (author code, default) or z-scored over time (the paper's text).
* :func:`concentration_to_signal` and :func:`relative_cbv`: the standard DSC signal model, used to turn a
  digital reference object's concentration curves into signal curves and to check that a pipeline keeps
  the blood-volume information.
* :func:`train_vqvae`: fits :class:`gliotype.nn.vqvae.PerfusionVQVAE` on the curves of a set of patients
  (e.g. the training patients of one cross-validation fold).
"""

from __future__ import annotations

import logging
import time
from typing import Literal

import numpy as np
import torch
from scipy.integrate import trapezoid

from gliotype.nn.vqvae import PerfusionVQVAE, VQVAEConfig, check_curves, encode_voxels

__all__ = ["bolus_arrival", "concentration_to_signal", "relative_cbv", "scale_curves", "train_vqvae"]

log = logging.getLogger(__name__)

SCALINGS = ("p995", "zscore")
MIN_BASELINE = 5  # pre-bolus points that bolus detection always keeps


def scale_curves(curves: np.ndarray, mode: Literal["p995", "zscore"] = "p995") -> np.ndarray:
    """Scale each curve on its own: negatives set to 0, then divided by its 99.5th percentile or z-scored.

    Args:
        curves: time-intensity curves, one per row (a 1-D array is one curve).
        mode: ``"p995"`` (author code): divide by the curve's 99.5th percentile over time (linear
            interpolation between samples); a curve whose percentile is 0 (all zero) stays 0.
            ``"zscore"`` (the paper's text): subtract the curve's mean and divide by its standard
            deviation; a constant curve becomes 0. Negatives are zeroed first in both modes.

    Returns:
        The scaled curves, float32, same shape.

    Shapes:
        curves: (n, T) or (T,) -> same
    """
    if mode not in SCALINGS:
        raise ValueError(f"scale_curves: unknown mode {mode!r}; choose one of {SCALINGS}")
    x = np.clip(np.asarray(curves, dtype=np.float64), 0, None)
    if mode == "p995":
        ref = np.percentile(x, 99.5, axis=-1, keepdims=True)
        out = np.divide(x, ref, out=np.zeros_like(x), where=ref > 0)
    else:
        sd = x.std(axis=-1, keepdims=True)
        out = np.divide(x - x.mean(axis=-1, keepdims=True), sd, out=np.zeros_like(x), where=sd > 0)
    return out.astype(np.float32)


def concentration_to_signal(conc: np.ndarray, s0: float = 1000.0, k: float = 5.0) -> np.ndarray:
    """DSC signal from contrast-agent concentration: ``S = s0 * exp(-k * C)``.

    ``k = TE * r2*`` is the signal loss per unit of concentration at the echo time. The default 5.0 (per
    unit of the OSIPI DSC reference object's ``C_tis``) makes that object's deepest tissue curve (peak
    concentration 0.145) fall to ``exp(-0.72) = 49%`` of baseline, a typical first-pass drop; with
    ``TE = 30 ms`` it is ``r2* ~ 167 /s`` per unit.

    Shapes:
        conc: (n, T) or (T,) -> same (float64)
    """
    if not (s0 > 0 and k > 0):
        raise ValueError(f"concentration_to_signal: s0 and k must be > 0; got s0={s0!r}, k={k!r}")
    return s0 * np.exp(-k * np.asarray(conc, dtype=np.float64))


def bolus_arrival(signal: np.ndarray, min_baseline: int = MIN_BASELINE, n_sd: float = 4.0, sd_floor: float = 1e-3) -> np.ndarray:
    """Index of the first bolus point of each DSC signal curve (the end of its pre-bolus baseline).

    Rule: point ``t >= min_baseline`` is the arrival when it and the next point both lie more than
    ``n_sd`` standard deviations below the mean of the points before ``t`` (the running baseline). The SD is
    that of the points before ``t``, floored at ``sd_floor`` x the baseline mean so that a noiseless curve
    needs a drop of 0.4% (by default) rather than any rounding error. A curve with no such point gets
    ``T`` (no bolus found: all of it is baseline).

    Shapes:
        signal: (n, T) -> (n,) int64
    """
    s = np.asarray(signal, dtype=np.float64)
    n_before = np.arange(1, s.shape[1])  # points before t = 1..T-1
    mean = np.cumsum(s, axis=1)[:, :-1] / n_before
    var = np.cumsum(s * s, axis=1)[:, :-1] / n_before - mean ** 2
    sd = np.maximum(np.sqrt(np.clip(var, 0, None)), sd_floor * np.abs(mean))
    drop = s[:, 1:] < mean - n_sd * sd  # drop[:, t-1] is point t
    drop[:, : max(min_baseline - 1, 0)] = False
    confirmed = drop[:, :-1] & drop[:, 1:]
    return np.where(confirmed.any(axis=1), confirmed.argmax(axis=1) + 1, s.shape[1])


def relative_cbv(signal: np.ndarray, tr_s: float, te_s: float = 0.03, baseline: int | None = None) -> np.ndarray:
    """Relative cerebral blood volume of DSC signal curves: the area under ``dR2*(t)``.

    ``S0`` is the mean of the pre-bolus points: the first ``baseline`` points, or, when ``baseline`` is
    None, those before :func:`bolus_arrival` (the first 5 when no bolus is detected); ``dR2*(t) = -ln(S(t) / S0) / TE``; the result is the
    trapezoid integral of ``dR2*`` over the whole series with spacing ``tr_s`` (dimensionless, and
    proportional to CBV for a fixed arterial input). Signal values <= 0 are clipped to ``1e-6 S0``.

    Args:
        signal: DSC signal curves (not concentrations), one per row (1-D: one curve).
        tr_s: time between points, seconds.
        te_s: echo time, seconds.
        baseline: number of pre-bolus points, or None to detect them per curve.

    Shapes:
        signal: (n, T) or (T,) -> (n,) (``n = 1`` for a 1-D input)
    """
    s = np.atleast_2d(np.asarray(signal, dtype=np.float64))
    if not (tr_s > 0 and te_s > 0):
        raise ValueError(f"relative_cbv: tr_s and te_s must be > 0 seconds; got tr_s={tr_s!r}, te_s={te_s!r}")
    if baseline is not None and not 1 <= baseline <= s.shape[1]:
        raise ValueError(f"relative_cbv: baseline must be 1..{s.shape[1]} points (the series length); "
                         f"got {baseline!r}")
    if baseline is None:
        end = bolus_arrival(s, MIN_BASELINE)
        end[end == s.shape[1]] = MIN_BASELINE  # no bolus found: the first points are the baseline
    else:
        end = np.full(len(s), baseline)
    before = np.arange(s.shape[1]) < end[:, None]
    s0 = (s * before).sum(axis=1) / before.sum(axis=1)
    ratio = np.clip(s / s0[:, None], 1e-6, None)
    return trapezoid(-np.log(ratio) / te_s, dx=tr_s, axis=1)


# ------------------------------------------------------------------------------------------ training


def train_vqvae(curve_sets: list[np.ndarray], config: VQVAEConfig | None = None, *, epochs: int = 5,
                batch_size: int = 512, lr: float = 1e-3, max_curves: int = 50_000, seed: int = 0,
                device: str | torch.device = "cpu") -> tuple[PerfusionVQVAE, dict]:
    """Train the perfusion VQ-VAE on the scaled curves of several patients; return it in eval mode.

    At most ``max_curves`` curves are drawn, as evenly across patients as their sizes allow; a batch holds
    curves of one length ``T`` (patients may differ). The codebooks and the decoder's output level are set
    from the first batch (:meth:`PerfusionVQVAE.init_from_batch`) and an entry unused during an epoch
    (but the last) is moved onto a random latent of that epoch's last batch
    (:meth:`PerfusionVQVAE.reseed_codes`). Adam.
    Paper values: ``lr=1e-5, batch_size=512, epochs=100``; the small defaults keep a fold under ~20 s of
    2 CPU cores for 50,000 curves.

    Args:
        curve_sets: one array of already-scaled curves per patient (:func:`scale_curves`).
        config: the architecture (default :class:`VQVAEConfig`).
        epochs, batch_size, lr: optimisation settings.
        max_curves: cap on the curves used in total.
        seed: seeds the draw, the initial weights, the batch order and the re-seeding: the same seed and
            inputs give the same model.
        device: where to train.

    Returns:
        ``(model, summary)``; ``summary`` holds ``loss``, ``reconstruction``, ``codebook``, ``commitment``
        (means over the last epoch), ``code_histogram`` (training curves per label ``1..K^N``),
        ``position_usage`` (N lists of K counts), ``reseeded`` (entries moved), ``epochs``, ``n_curves``,
        ``loss_history`` (per epoch) and ``seconds``.

    Shapes:
        curve_sets[p]: (n_p, T_p), 30 <= T_p <= 90
    """
    _check_training(curve_sets, epochs, batch_size, lr, max_curves)
    config, start = config or VQVAEConfig(), time.perf_counter()
    rng, gen = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    groups = _draw_curves(curve_sets, max_curves, rng)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = PerfusionVQVAE(config).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history, reseeded, terms = [], 0, {}
    for epoch in range(epochs):
        batches = [torch.as_tensor(b, device=device) for b in _batches(groups, batch_size, rng)]
        if epoch == 0:
            model.init_from_batch(batches[0], gen)
        terms, usage, last_z = _epoch(model, opt, batches)
        moved = model.reseed_codes(usage == 0, last_z, gen) if epoch < epochs - 1 else 0  # not after the last
        reseeded += moved
        history.append(terms["loss"])
        log.info("vqvae epoch %d/%d: %s; code usage %s; %d dead entries re-seeded", epoch + 1, epochs,
                 {k: round(v, 5) for k, v in terms.items()}, usage.tolist(), moved)
    model.eval()
    summary = _summary(model, groups, terms, history, reseeded, device)
    summary["seconds"] = time.perf_counter() - start
    return model, summary


def _check_training(curve_sets, epochs, batch_size, lr, max_curves) -> None:
    if not curve_sets:
        raise ValueError("train_vqvae: curve_sets is empty; pass one (n_i, T_i) array of scaled curves per patient")
    for i, curves in enumerate(curve_sets):
        check_curves(np.asarray(curves), name=f"curve_sets[{i}]")
    if sum(len(c) for c in curve_sets) < 2:
        raise ValueError("train_vqvae: needs at least 2 curves in all (K=2 codebook entries to set)")
    for name, value in dict(epochs=epochs, batch_size=batch_size, max_curves=max_curves).items():
        if value < 1:
            raise ValueError(f"train_vqvae: {name} must be >= 1; got {value!r}")
    if not lr > 0:
        raise ValueError(f"train_vqvae: lr must be > 0 (paper: 1e-5); got {lr!r}")


def _draw_curves(curve_sets: list[np.ndarray], max_curves: int, rng: np.random.Generator) -> dict[int, np.ndarray]:
    """At most ``max_curves`` curves, an equal share per patient (small patients give theirs to the rest).

    Returns the drawn curves grouped by length: ``{T: (n_T, T) float32}``.
    """
    sizes = [len(c) for c in curve_sets]
    take, left = [0] * len(sizes), max_curves
    for rank, p in enumerate(np.argsort(sizes, kind="stable")):
        take[p] = min(sizes[p], left // (len(sizes) - rank))
        left -= take[p]
    by_t: dict[int, list[np.ndarray]] = {}
    for curves, n in zip(curve_sets, take):
        rows = np.sort(rng.choice(len(curves), n, replace=False))
        by_t.setdefault(curves.shape[1], []).append(np.asarray(curves)[rows])
    return {t: np.concatenate(parts).astype(np.float32) for t, parts in sorted(by_t.items())}


def _batches(groups: dict[int, np.ndarray], batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The epoch's batches: each length group shuffled and cut, then all batches in a random order."""
    batches = []
    for curves in groups.values():
        order = rng.permutation(len(curves))
        batches += [curves[order[i:i + batch_size]] for i in range(0, len(curves), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _epoch(model: PerfusionVQVAE, opt: torch.optim.Optimizer, batches: list[torch.Tensor]):
    """One pass; returns the mean loss terms, the (N, K) code usage counts and the last batch's latents."""
    model.train()
    cfg = model.config
    usage = torch.zeros(cfg.positions, cfg.codebook_size, dtype=torch.long)
    sums = dict.fromkeys(("loss", "reconstruction", "codebook", "commitment"), 0.0)
    for batch in batches:
        out = model(batch)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        for key in sums:
            sums[key] += float(out[key].detach()) * len(batch)
        usage += torch.nn.functional.one_hot(out["indices"].cpu(), cfg.codebook_size).sum(0)
    n = sum(len(b) for b in batches)
    return {k: v / n for k, v in sums.items()}, usage, out["z_e"].detach()


def _summary(model, groups, terms, history, reseeded, device) -> dict:
    cfg = model.config
    hist = np.zeros(cfg.codebook_size ** cfg.positions, dtype=np.int64)
    usage = np.zeros((cfg.positions, cfg.codebook_size), dtype=np.int64)
    for curves in groups.values():
        codes, _ = encode_voxels(model, curves, device=device)
        hist += np.bincount(codes.astype(np.int64) - 1, minlength=len(hist))
        digits = (codes.astype(np.int64)[:, None] - 1) // cfg.codebook_size ** np.arange(cfg.positions)[::-1]
        for n in range(cfg.positions):
            usage[n] += np.bincount(digits[:, n] % cfg.codebook_size, minlength=cfg.codebook_size)
    return dict(terms, code_histogram=hist.tolist(), position_usage=usage.tolist(), reseeded=reseeded,
                epochs=len(history), n_curves=int(sum(len(c) for c in groups.values())), loss_history=history)
