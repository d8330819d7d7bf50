"""Rendering H&E-like histology tiles: nuclei on eosin, halos, vessels, pseudopalisading necrosis.

Stains are composed in optical density (Beer-Lambert) with Ruifrok-Johnston H and E vectors, so
tiles deconvolve into plausible stain channels. The histology effect drives cellularity and atypia
(grade), perinuclear "fried-egg" halos (codeletion), glomeruloid microvascular proliferation and
pseudopalisading necrosis; a sample's lineage latent (shape (3,)) shifts nuclear size, cellularity
and eosin tint, which ties a sample's tiles to its RNA (see :mod:`~gliotype.cohort.synth.rnaseq`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

_H = np.array([0.65, 0.70, 0.29], np.float32)
_E = np.array([0.07, 0.99, 0.11], np.float32)
_H /= np.linalg.norm(_H)
_E /= np.linalg.norm(_E)
NUCLEUS_RADIUS_PX = 4.5
BASE_DENSITY = 7.0
"""Nuclei per 10,000 px^2 at grade 2."""


def _noise(size: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.normal(size=(size, size)).astype(np.float32), sigma)
    return field / (field.std() + 1e-6)


def _stamp(h: np.ndarray, e: np.ndarray, cy, cx, ry, rx, angle, od, halo: bool) -> None:
    """Draw one elliptical nucleus (and its clear halo) into the H and E density maps in place."""
    reach = int(np.ceil(max(ry, rx) * (2.0 if halo else 1.2))) + 1
    y0, y1 = max(int(cy) - reach, 0), min(int(cy) + reach + 1, h.shape[0])
    x0, x1 = max(int(cx) - reach, 0), min(int(cx) + reach + 1, h.shape[1])
    if y0 >= y1 or x0 >= x1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1]
    dy, dx = yy - cy, xx - cx
    c, s = np.cos(angle), np.sin(angle)
    r = np.sqrt(((c * dx + s * dy) / rx) ** 2 + ((-s * dx + c * dy) / ry) ** 2)
    body = np.clip(1.5 * (1.0 - r), 0, 1) ** 0.7
    h[y0:y1, x0:x1] = np.maximum(h[y0:y1, x0:x1], od * body)
    if halo:
        e[y0:y1, x0:x1] *= np.where(r < 1.9, 0.15, 1.0)


def _nuclei(h, e, centres, effect, latent, rng, radial=None) -> None:
    g = effect["grade"]
    for k, (cy, cx) in enumerate(centres):
        size = NUCLEUS_RADIUS_PX * (1 + 0.12 * latent[0]) * np.exp(rng.normal(0, 0.1 + 0.25 * g))
        halo = rng.random() < effect["halo"]
        elong = 1.0 if halo else np.exp(abs(rng.normal(0, 0.15 + 0.3 * g)))
        angle = rng.uniform(0, np.pi) if radial is None else radial[k]
        od = rng.uniform(0.7, 0.95) * (1 + 0.35 * g * rng.random())
        _stamp(h, e, cy, cx, size / np.sqrt(elong), size * np.sqrt(elong), angle, od, halo)


def _vessel(h, e, rng, size: int, latent) -> None:
    """A glomeruloid vessel: a ring of elongated endothelial nuclei around a lumen with red cells."""
    cy, cx = rng.uniform(0.1, 0.9, 2) * size
    radius = rng.uniform(12, 26)
    yy, xx = np.ogrid[:size, :size]
    dist = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
    e[dist < radius * 0.75] = 0.05
    for _ in range(int(radius * 1.2)):
        yr, xr = rng.uniform(-0.7, 0.7, 2) * radius
        if yr * yr + xr * xr < (0.65 * radius) ** 2:
            _stamp(e, e, cy + yr, cx + xr, 2.6, 2.6, 0.0, 1.1, False)
    for layer in range(3):
        n = int(2 * np.pi * radius / 7)
        for t in np.linspace(0, 2 * np.pi, n, endpoint=False) + rng.uniform(0, 1):
            rr = radius * (0.85 + 0.3 * layer) + rng.normal(0, 1.5)
            _stamp(h, e, cy + rr * np.sin(t), cx + rr * np.cos(t), 2.2, 6.5, t + np.pi / 2, 0.95, False)


def _necrosis(h, e, rng, size: int, effect, latent) -> tuple[np.ndarray, np.ndarray]:
    """Pale necrotic focus with debris; returns (mask, palisade band) for the nuclei placement."""
    cy, cx = rng.uniform(0.25, 0.75, 2) * size
    radius = size * rng.uniform(0.12, 0.2) * (0.5 + 0.5 * effect["necrosis"])
    yy, xx = np.ogrid[:size, :size]
    dist = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) + 6 * _noise(size, 10, rng)
    core = dist < radius
    e[core] = 0.18 + 0.05 * _noise(size, 2, rng)[core]
    debris = core & (rng.random((size, size)) < 0.02)
    h[ndimage.binary_dilation(debris)] = 0.6
    band = (dist >= radius) & (dist < radius + 14)
    return core, band


def render_tile(size: int, effect: dict[str, float], latent: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Render one RGB H&E tile.

    Args:
        size: Side length in pixels.
        effect: Mixed histology effect (``grade``, ``halo``, ``mvp``, ``necrosis``).
        latent: The sample's lineage latent, shape (3,).
        rng: Rendering generator.

    Returns:
        uint8 array of shape (size, size, 3).
    """
    e = np.clip(0.38 + 0.08 * _noise(size, 2.0, rng) + 0.06 * _noise(size, 12.0, rng), 0.05, None)
    e *= np.where(_noise(size, 3.0, rng) > 2.2, 0.2, 1.0)  # small vacuoles
    h = np.zeros((size, size), np.float32)
    necrotic, band = np.zeros((size, size), bool), np.zeros((size, size), bool)
    if rng.random() < effect["necrosis"]:
        necrotic, band = _necrosis(h, e, rng, size, effect, latent)
    for _ in range(rng.poisson(effect["mvp"] * 2.5 * (size / 256) ** 2)):
        _vessel(h, e, rng, size, latent)
    density = BASE_DENSITY * (1 + 1.6 * effect["grade"]) * np.exp(0.15 * latent[1]) * 1e-4
    n = rng.poisson(density * size * size)
    centres = rng.uniform(0, size, (n, 2))
    keep = ~necrotic[centres[:, 0].astype(int), centres[:, 1].astype(int)]
    _nuclei(h, e, centres[keep], effect, latent, rng)
    band_idx = np.argwhere(band)
    if len(band_idx):
        pick = band_idx[rng.choice(len(band_idx), min(len(band_idx) // 25, 400), replace=False)]
        centre = np.argwhere(necrotic).mean(0)
        angle = np.arctan2(pick[:, 0] - centre[0], pick[:, 1] - centre[1])
        _nuclei(h, e, pick.astype(float), effect, latent, rng, radial=angle)
    h += 0.06 * np.clip(_noise(size, 1.0, rng), 0, None) * (h > 0.2)
    tint = _E * np.array([1 + 0.08 * latent[2], 1.0, 1 - 0.08 * latent[2]], np.float32)
    od = h[..., None] * _H + e[..., None] * tint
    return np.clip(255.0 * np.exp(-od) + rng.normal(0, 2.0, od.shape), 0, 255).astype(np.uint8)


def tile_size(size: str) -> int:
    """Tile side: 256 px for ``small``, 1024 px for ``full``."""
    return 256 if size == "small" else 1024
