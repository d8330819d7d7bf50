"""Rendering the lesion on a grid: tumour core (necrosis + enhancing), oedema and BraTS labels.

Shape is defined in world millimetres, so the same patient gives the same lesion on any grid.
The core is an ellipsoid whose radius varies with direction by von Mises-Fisher lobes and Fourier
ripples, both scaled by the geometry effect's ``irregularity`` (0: smooth ellipsoid); the oedema is
a lobulated margin around it. Necrosis and the enhancing rim follow the enhancement effect only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gliotype.cohort.synth.anatomy import Tissue
from gliotype.cohort.synth.fields import fourier_sum
from gliotype.cohort.synth.grids import Grid
from gliotype.cohort.synth.params import PatientParams, TumourShape

NECROSIS, OEDEMA, ENHANCING = 1, 2, 3


@dataclass
class Lesion:
    """A rendered lesion; arrays have the grid's shape.

    Attributes:
        seg: uint8 BraTS 2023 labels (1 necrosis/non-enhancing core, 2 oedema, 3 enhancing).
        rho: float32 normalised core radius (< 1 inside the core; large far away).
        necrosis: bool, necrotic centre (labelled 1).
        centre_mm: Tumour centre in patient world mm, shape (3,).
        centre_voxel: The same in (fractional) voxel indices, shape (3,).
    """

    seg: np.ndarray
    rho: np.ndarray
    necrosis: np.ndarray
    centre_mm: np.ndarray
    centre_voxel: np.ndarray


def _lobes(u: np.ndarray, dirs: np.ndarray, amps: np.ndarray, kappas: np.ndarray) -> np.ndarray:
    return np.exp(kappas.astype(np.float32) * (u @ dirs.T.astype(np.float32) - 1.0)) @ amps.astype(np.float32)


def _core_radius(shape: TumourShape, effect: dict[str, float]) -> float:
    return effect["core_radius_mm"] * shape.size_factor


def _bbox(grid: Grid, centre: np.ndarray, radius_mm: float) -> tuple[slice, ...]:
    lo = np.floor(grid.to_voxel(centre - radius_mm)).astype(int)
    hi = np.ceil(grid.to_voxel(centre + radius_mm)).astype(int) + 1
    return tuple(slice(max(a, 0), min(b, n)) for a, b, n in zip(lo, hi, grid.shape))


def _radial_fields(
    xyz: np.ndarray, centre: np.ndarray, shape: TumourShape, geo: dict[str, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Normalised core radius and oedema radius at points xyz (N, 3)."""
    v = xyz - centre.astype(np.float32)
    q = v @ (shape.rotation / (shape.axes * _core_radius(shape, geo))).astype(np.float32)
    r = np.linalg.norm(q, axis=1) + 1e-9
    u = q / r[:, None]
    irr = geo["irregularity"]
    lobes = 0.5 * irr * _lobes(u, shape.lobe_dirs, shape.lobe_amps, shape.lobe_kappas)
    ripple = 0.18 * irr * fourier_sum(v, shape.rough_freqs, shape.rough_phases, shape.rough_amps)
    rho = r / np.clip(1.0 + lobes + ripple, 0.35, None)
    margin = geo["oedema_margin_mm"] * shape.margin_factor / _core_radius(shape, geo)
    spread = 1.0 + (0.3 + 0.7 * irr) * _lobes(u, shape.oedema_dirs, shape.oedema_amps, shape.oedema_kappas)
    rho_oedema = rho / (1.0 + margin * np.clip(spread, 0.3, None))
    return rho, rho_oedema


def _enhancing(xyz: np.ndarray, rho: np.ndarray, shape: TumourShape, e: float) -> tuple[np.ndarray, np.ndarray]:
    """Necrotic centre and enhancing rim inside the core (rho < 1) for enhancement e in [0, 1]."""
    rho_n = 0.75 * np.clip((e - 0.25) / 0.6, 0.0, 1.0)
    necrosis = rho < rho_n
    patch = fourier_sum(xyz, shape.patch_freqs, shape.patch_phases)
    threshold = np.quantile(patch, np.clip((e - 0.15) / 0.7, 0.0, 1.0)) if e > 0.15 else -np.inf
    enhancing = (rho < 1.0) & ~necrosis & (patch <= threshold) & (e > 0.15)
    return necrosis, enhancing


def render_lesion(grid: Grid, params: PatientParams, tissue: Tissue) -> Lesion:
    """Render the patient's lesion on ``grid`` (world-mm shape, clipped to the brain).

    Args:
        grid: Target grid.
        params: The patient's draws and mixed effects.
        tissue: The patient's tissue maps on ``grid`` (brain mask and CSF).

    Returns:
        The :class:`Lesion`; its core is never empty (the voxel nearest the centre at least).
    """
    shape, geo = params.shape, params.effects["geometry"]
    e = params.effects["enhancement"]["enhancement"]
    centre = (np.linalg.inv(params.jitter) @ np.append(shape.centre_template_mm, 1.0))[:3]
    reach = _core_radius(shape, geo) * 2.2 + geo["oedema_margin_mm"] * shape.margin_factor * 2.5
    box = _bbox(grid, centre, reach)
    ijk = np.stack(np.meshgrid(*[np.arange(s.start, s.stop) for s in box], indexing="ij"), -1)
    xyz = grid.to_world(ijk.reshape(-1, 3).astype(np.float32)).astype(np.float32)
    rho_b, rho_e = _radial_fields(xyz, centre, shape, geo)
    necrosis_b, enhancing_b = _enhancing(xyz, rho_b, shape, e)
    brain = tissue.brain[box].reshape(-1)
    csf = tissue.csf[box].reshape(-1)
    seg_b = np.zeros(len(xyz), np.uint8)
    seg_b[(rho_e < 1.0) & (csf < 0.7)] = OEDEMA
    seg_b[rho_b < 1.0] = NECROSIS
    seg_b[enhancing_b] = ENHANCING
    seg_b[~brain] = 0
    seg = np.zeros(grid.shape, np.uint8)
    rho = np.full(grid.shape, 99.0, np.float32)
    necrosis = np.zeros(grid.shape, bool)
    seg[box] = seg_b.reshape(ijk.shape[:3])
    rho[box] = rho_b.reshape(ijk.shape[:3])
    necrosis[box] = (necrosis_b & brain).reshape(ijk.shape[:3])
    centre_voxel = grid.to_voxel(centre)
    if not np.isin(seg, (NECROSIS, ENHANCING)).any():
        seg[tuple(np.clip(np.round(centre_voxel).astype(int), 0, np.array(grid.shape) - 1))] = NECROSIS
    return Lesion(seg, rho, necrosis, centre, centre_voxel)
