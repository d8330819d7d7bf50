"""Rendering the structural sequences (T1, T1c, T2, FLAIR) and the FA map of one patient.

Healthy tissue: grey/white/CSF fractions times a per-sequence contrast (T1: WM > GM > CSF;
T2: CSF > GM > WM; FLAIR: GM > WM > CSF, CSF dark), blended with the template's T1 detail.
Lesion: class-wise intensities (non-enhancing core, necrosis, enhancing rim, oedema) with soft
edges; the texture effect adds T2-FLAIR mismatch, calcification-like speckle and heterogeneity
inside the lesion only. Then remote white-matter disruption (network), bias field, Rician noise and
the site's scale; skull-stripped (zero outside the brain), stored as int16.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from gliotype.cohort.synth.anatomy import Tissue
from gliotype.cohort.synth.fields import bias_field, smooth_noise
from gliotype.cohort.synth.grids import Grid
from gliotype.cohort.synth.tumour import ENHANCING, NECROSIS, OEDEMA, Lesion

SEQUENCES: tuple[str, ...] = ("t1n", "t1c", "t2w", "t2f")
# Sequence -> (GM, WM, CSF) contrast and weight of the template T1 (negative: inverted).
_TISSUE = {
    "t1n": ((0.60, 0.88, 0.20), 0.35),
    "t1c": ((0.63, 0.88, 0.22), 0.35),
    "t2w": ((0.62, 0.46, 1.00), -0.20),
    "t2f": ((0.66, 0.52, 0.10), -0.10),
}
# Sequence -> (non-enhancing core, necrosis, enhancing rim, oedema).
_LESION = {
    "t1n": (0.48, 0.33, 0.55, 0.66),
    "t1c": (0.50, 0.33, 1.35, 0.68),
    "t2w": (0.84, 0.96, 0.74, 0.78),
    "t2f": (0.80, 0.55, 0.72, 0.84),
}
# Sequence -> effect of remote white-matter disruption (relative change at full disruption).
_NETWORK = {"t1n": -0.10, "t1c": -0.10, "t2w": 0.14, "t2f": 0.16}
SITE_SCANNER = {"SITE-A": (900.0, 0.015), "SITE-B": (1200.0, 0.025), "SITE-C": (700.0, 0.02)}


def _lesion_box(seg: np.ndarray, pad: int = 3) -> tuple[slice, ...]:
    idx = np.argwhere(seg > 0)
    lo, hi = idx.min(0) - pad, idx.max(0) + pad + 1
    return tuple(slice(max(a, 0), min(b, n)) for a, b, n in zip(lo, hi, seg.shape))


def lesion_weights(lesion: Lesion, sigma_vox: float = 0.6) -> tuple[tuple[slice, ...], np.ndarray]:
    """Soft class weights in the lesion box: (box, array (4, *box) for core, necrosis, rim, oedema)."""
    box = _lesion_box(lesion.seg)
    seg, nec = lesion.seg[box], lesion.necrosis[box]
    hard = np.stack(
        [(seg == NECROSIS) & ~nec, (seg == NECROSIS) & nec, seg == ENHANCING, seg == OEDEMA]
    ).astype(np.float32)
    soft = np.stack([ndimage.gaussian_filter(h, sigma_vox) for h in hard])
    return box, soft


def _texture(box_shape, lesion_box_rho, texture, fields):
    """Multiplicative texture maps per sequence inside the lesion box."""
    coarse, fine, spots = fields
    amp = 0.04 + 0.14 * texture["heterogeneity"]
    hetero = 1.0 + amp * coarse + 0.5 * amp * fine
    calc = spots > np.quantile(spots, 1.0 - 0.07 * texture["speckle"]) if texture["speckle"] > 0 else None
    inner = lesion_box_rho < 0.85
    out = {}
    for seq in SEQUENCES:
        sign = -1.0 if seq in ("t1n", "t1c") else 1.0
        mult = 1.0 + sign * (hetero - 1.0)
        if calc is not None:
            mult = np.where(calc, mult * (1.12 if sign < 0 else 0.45), mult)
        out[seq] = mult.astype(np.float32)
    return out, inner


def _sequence(seq: str, tissue: Tissue, disrupt: np.ndarray) -> np.ndarray:
    (gm, wm, csf), w_t1 = _TISSUE[seq]
    base = gm * tissue.gm + wm * tissue.wm + csf * tissue.csf
    detail = tissue.t1 if w_t1 > 0 else (1.0 - tissue.t1)
    img = (1 - abs(w_t1)) * base + abs(w_t1) * detail * tissue.brain
    return img * (1.0 + _NETWORK[seq] * disrupt)


def render_structural(
    grid: Grid,
    tissue: Tissue,
    lesion: Lesion,
    disrupt: np.ndarray,
    texture: dict[str, float],
    site: str,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Render the four structural sequences.

    Args:
        grid: Structural grid.
        tissue: Tissue maps on ``grid``.
        lesion: The rendered lesion on ``grid``.
        disrupt: Remote white-matter disruption in [0, 1], ``grid.shape``.
        texture: Mixed texture effect (``mismatch``, ``speckle``, ``heterogeneity``).
        site: Acquisition site (intensity scale and noise level).
        rng: Rendering generator.

    Returns:
        Sequence name (``t1n``, ``t1c``, ``t2w``, ``t2f``) -> int16 array of ``grid.shape``.
    """
    box, weights = lesion_weights(lesion)
    sub = Grid(tuple(s.stop - s.start for s in box), grid.affine)
    fields = (smooth_noise(sub, 6.0, rng), smooth_noise(sub, 2.5, rng), smooth_noise(sub, 1.5, rng))
    mults, inner = _texture(sub.shape, lesion.rho[box], texture, fields)
    scale, noise = SITE_SCANNER[site]
    out = {}
    for seq in SEQUENCES:
        img = _sequence(seq, tissue, disrupt)
        values = np.array(_LESION[seq], np.float32)
        if seq == "t2f":
            core_value = np.where(inner, values[0] * (1 - 0.5 * texture["mismatch"]), values[0])
        else:
            core_value = values[0] + (0.08 * texture["mismatch"] if seq == "t2w" else 0.0)
        lesion_img = core_value * weights[0] + np.tensordot(values[1:], weights[1:], axes=1)
        total = weights.sum(0)
        patch = img[box] * (1 - np.clip(total, 0, 1)) + lesion_img * mults[seq]
        img[box] = np.where(tissue.brain[box], patch, 0.0)
        img = img * bias_field(grid, 0.08, rng)
        sigma = noise * 1.0
        real = img + np.float32(sigma) * rng.standard_normal(grid.shape, dtype=np.float32)
        imag = np.float32(sigma) * rng.standard_normal(grid.shape, dtype=np.float32)
        img = np.sqrt(real * real + imag * imag) * tissue.brain
        out[seq] = np.clip(np.round(img * scale), 0, 32767).astype(np.int16)
    return out


def render_fa(
    grid: Grid, tissue: Tissue, lesion: Lesion, disrupt: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """FA map: WM about 0.4-0.7, GM 0.15, CSF 0.05; lowered in the lesion and by remote disruption.

    Returns:
        float32 array of ``grid.shape`` in [0, 1], zero outside the brain.
    """
    fa_wm = np.clip(0.56 + 0.07 * smooth_noise(grid, 10.0, rng), 0.4, 0.72)
    fa = tissue.wm * fa_wm + 0.15 * tissue.gm + 0.05 * tissue.csf
    fa = fa * (1.0 - 0.4 * disrupt)
    box, weights = lesion_weights(lesion)
    factors = np.array([0.25, 0.1, 0.3, 0.6], np.float32)
    total = np.clip(weights.sum(0), 0, 1)
    fa[box] = fa[box] * (1 - total) + fa[box] * np.tensordot(factors, weights, axes=1)
    fa = fa + np.float32(0.02) * rng.standard_normal(grid.shape, dtype=np.float32)
    return (np.clip(fa, 0, 1) * tissue.brain).astype(np.float32)
