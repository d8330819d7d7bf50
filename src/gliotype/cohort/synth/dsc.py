"""Rendering the DSC perfusion series: a gamma-variate bolus per voxel, recirculation, T1 leakage.

Per voxel, the relaxation-rate change is

    dR2*(t) = k * CBV * (g(t; t0, alpha, beta) + r * g(t; t0 + dt, alpha, 1.5 beta)) - K2 * int_0^t g

with ``g`` a gamma variate normalised to peak 1, CBV relative to normal white matter (= 1), and
``K2`` a T1-leakage rate that makes the signal overshoot the baseline after the bolus in leaky
tumour. The signal is ``S(t) = S0 * exp(-dR2*(t))`` plus noise, with S0 about 1000. Tumour CBV is
the perfusion effect's ``rcbv`` (IDH-wildtype high, IDH-mutant low); necrosis has almost none.
"""

from __future__ import annotations

import numpy as np

from gliotype.cohort.synth.anatomy import Tissue
from gliotype.cohort.synth.fields import bias_field, smooth_noise
from gliotype.cohort.synth.grids import Grid
from gliotype.cohort.synth.mri import lesion_weights
from gliotype.cohort.synth.tumour import Lesion

TR_S = 1.5
K_DR2 = 0.22
"""dR2* at the bolus peak per unit relative CBV: normal WM peaks at a 20% signal drop."""
NOISE = 12.0
_CBV = (2.2, 1.0, 0.05)  # GM, WM, CSF
_S0 = (1000.0, 900.0, 1400.0)  # GM, WM, CSF
_S0_LESION = (1150.0, 1250.0, 1100.0, 1080.0)  # core, necrosis, rim, oedema


def gamma_variate(t: np.ndarray, t0: np.ndarray, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Gamma variate normalised to a peak of 1 at ``t0 + alpha * beta``.

    Shapes:
        t: (T,); t0, alpha, beta: (N, 1) or scalars; returns (N, T).
    """
    s = np.clip((t - t0) / (alpha * beta), 1e-12, None, dtype=np.float32)
    return np.exp(alpha * (np.log(s) + 1.0 - s)).astype(np.float32, copy=False)


def _maps(grid: Grid, tissue: Tissue, lesion: Lesion, rcbv: float, leak: float, rng) -> tuple:
    """Per-voxel CBV, S0, leakage and bolus-width factor on ``grid``."""
    fractions = (tissue.gm, tissue.wm, tissue.csf)
    cbv = sum(c * f for c, f in zip(_CBV, fractions))
    s0 = sum(c * f for c, f in zip(_S0, fractions))
    k2 = np.zeros(grid.shape, np.float32)
    width = np.ones(grid.shape, np.float32)
    box, w = lesion_weights(lesion)
    sub = Grid(tuple(s.stop - s.start for s in box), grid.affine)
    hetero = np.clip(1.0 + 0.3 * smooth_noise(sub, 5.0, rng), 0.3, None)
    tumour = w[0] + w[2]
    total = np.clip(w.sum(0), 0, 1)
    cbv[box] = cbv[box] * (1 - total) + rcbv * hetero * tumour + 0.1 * w[1] + 0.9 * cbv[box] * w[3]
    s0[box] = s0[box] * (1 - total) + np.tensordot(np.array(_S0_LESION, np.float32), w, axes=1)
    k2[box] = leak * tumour * hetero
    width[box] = 1.0 + 0.35 * tumour
    return cbv, s0, k2, width


def render_dsc(
    grid: Grid,
    tissue: Tissue,
    lesion: Lesion,
    perfusion: dict[str, float],
    n_timepoints: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Render the 4-D DSC series on ``grid``.

    Args:
        grid: DSC grid.
        tissue: Tissue maps on ``grid``.
        lesion: The lesion rendered on ``grid``.
        perfusion: Mixed perfusion effect (``rcbv``, ``leakage``).
        n_timepoints: Number of time points T.
        rng: Rendering generator.

    Returns:
        int16 array of shape ``(*grid.shape, T)``, zero outside the brain.
    """
    cbv, s0, k2, width = _maps(grid, tissue, lesion, perfusion["rcbv"], perfusion["leakage"], rng)
    s0 = s0 * bias_field(grid, 0.05, rng)
    idx = np.flatnonzero(tissue.brain.ravel(order="F"))
    n = len(idx)

    def voxels(volume: np.ndarray) -> np.ndarray:
        return volume.ravel(order="F")[idx][:, None].astype(np.float32)

    t = np.arange(n_timepoints, dtype=np.float32) * np.float32(TR_S)
    t0 = np.float32(rng.uniform(12.0, 18.0)) + np.float32(0.4) * rng.standard_normal((n, 1), dtype=np.float32)
    alpha = np.float32(rng.uniform(2.6, 3.4))
    beta = np.float32(rng.uniform(1.2, 1.6)) * voxels(width)
    first = gamma_variate(t, t0, alpha, beta)
    second = gamma_variate(t, t0 + np.float32(rng.uniform(7.0, 9.0)), alpha, 1.5 * beta)
    dr2 = first + np.float32(rng.uniform(0.08, 0.15)) * second
    dr2 *= np.float32(K_DR2) * voxels(cbv)
    np.cumsum(first, axis=1, out=first)
    first *= voxels(k2) * np.float32(TR_S)
    dr2 -= first
    np.exp(-dr2, out=dr2)
    dr2 *= voxels(s0)
    dr2 += np.float32(NOISE) * rng.standard_normal((n, n_timepoints), dtype=np.float32)
    out = np.zeros((*grid.shape, n_timepoints), np.int16, order="F")
    out.reshape(-1, n_timepoints, order="F")[idx] = np.clip(np.rint(dr2), 0, 32767).astype(np.int16)
    return out
