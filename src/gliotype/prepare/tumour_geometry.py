"""The tumour geometry stage: the surface of the tumour mask as a normalised point cloud with normals.

Pipeline (paper 000, METHODS.md ``colearn``): seg -> binary region (RAS+ voxel grid, DESIGN.md region
rule, ``core`` falling back to ``whole``) -> crop to its bounding box with one voxel of zeros on every side,
so the surface closes even where the tumour touches the grid edge -> marching cubes at level 0.5 ->
candidate points on the surface -> farthest-point sampling to ``n_points`` -> centred and scaled into the
unit ball.

Design choices:
    * Frame: everything is in scanner (world) millimetres, RAS+, through the mask's affine as loaded
      (:func:`~gliotype.cohort.images.load_volume`). Marching cubes runs in voxel-index space and the
      vertices are mapped by the full affine; normals are mapped by the inverse transpose of its 3x3
      part and renormalised, which is exact for any spacing, direction or shear (skimage's ``spacing=``
      argument scales vertices but, measured on an anisotropic sphere, leaves normals less accurate).
    * Outward normals: ``gradient_direction="ascent"`` for a mask with inside = 1. With it the face
      winding is counter-clockwise seen from outside and skimage's normals point outward (checked
      on a sphere in the tests); ``"descent"`` gives an inside-out winding.
    * Candidates, ``sampling="vertices"`` (the paper): the mesh vertices. A mesh with fewer vertices
      than ``n_points`` (a tiny tumour) is topped up with area-weighted random points on its faces,
      whose normals are the face normals; meta ``topped_up`` records it. ``sampling="area"``:
      ``AREA_OVERSAMPLE * n_points`` area-weighted uniform points on the triangles (face normals).
      All randomness uses ``numpy.random.default_rng(SEED)``, so the cache is reproducible.
    * More than ``MAX_CANDIDATES`` candidates (a very large whole tumour) are first thinned to that many
      by a seeded uniform draw without replacement, which keeps farthest-point sampling well under a
      second on one core; the surface is dense enough that the 512 samples do not change in kind.
    * Farthest-point sampling (:func:`gliotype.nn.fps`) starts from the first candidate
      (``random_start=False``), so the result is deterministic; the points come in FPS order, so any
      prefix is itself a spread-out subsample.
    * Centre: the mean of the sampled points (not of the mask voxels), so the cloud has zero mean.
      Scale: the largest distance of a sampled point from that centre, so the points lie in the unit
      ball (max norm exactly 1) and every coordinate in [-1, 1]. ``centre_mm`` and ``scale_mm`` are
      saved, and :func:`to_world` / :func:`to_voxel` map points back to the patient's scan.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
from pydantic import Field

from gliotype.cohort import Case, region_mask
from gliotype.cohort.regions import mask_bounds
from gliotype.cohort.images import load_volume
from gliotype.prepare.stage import StageConfig, register_stage

log = logging.getLogger(__name__)

SEED = 0
"""Seed of every random draw of the stage (top-up and area points, candidate thinning)."""
AREA_OVERSAMPLE = 8
"""``sampling="area"`` draws this many candidates per requested point before farthest-point sampling."""
MAX_CANDIDATES = 100_000
"""Candidates above this many are thinned by a seeded uniform draw before farthest-point sampling."""


class TumourGeometryConfig(StageConfig):
    region: Literal["whole", "core", "enhancing"] = "core"
    n_points: int = Field(512, ge=8)
    sampling: Literal["vertices", "area"] = "vertices"


def padded_crop(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crop ``mask`` to its bounding box with one voxel of zeros on every side.

    Returns the crop and the voxel index of the original grid at crop index 0 (``start - 1``: it may be -1).

    Shapes:
        mask: (X, Y, Z) bool -> crop (x + 2, y + 2, z + 2) float32, offset (3,) int.
    """
    start, stop = mask_bounds(mask)
    box = mask[tuple(slice(a, b) for a, b in zip(start, stop))]
    return np.pad(box.astype(np.float32), 1), start - 1


def surface_mesh(mask: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The closed surface of a binary mask, in world millimetres, with unit outward normals.

    Args:
        mask: binary mask with at least one voxel, inside = True.
        affine: voxel-index -> world (mm) affine of ``mask``'s grid.

    Shapes:
        mask: (X, Y, Z), affine: (4, 4) -> verts (V, 3) float64 mm, faces (F, 3) int, normals (V, 3) float64.

    Raises:
        ValueError: marching cubes finds no usable surface.
    """
    crop, offset = padded_crop(mask)
    from skimage.measure import marching_cubes

    try:
        verts, faces, normals, _ = marching_cubes(crop, level=0.5, gradient_direction="ascent")
    except (ValueError, RuntimeError) as err:
        raise ValueError(f"marching cubes found no surface ({err})") from err
    if len(verts) < 4 or len(faces) < 4:
        raise ValueError(f"the surface mesh is degenerate ({len(verts)} vertices, {len(faces)} faces)")
    linear = np.asarray(affine, float)[:3, :3]
    world = (verts + offset) @ linear.T + np.asarray(affine, float)[:3, 3]
    return world, faces.astype(np.int64), unit(normals @ np.linalg.inv(linear))


def unit(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (zero rows stay zero). Shapes: (N, 3) -> (N, 3)."""
    norm = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norm, 1e-12)


def face_normals(verts: np.ndarray, faces: np.ndarray, normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Area and unit normal of each triangle, oriented like its vertices' (outward) normals.

    Shapes:
        verts (V, 3), faces (F, 3), normals (V, 3) -> areas (F,), face normals (F, 3).
    """
    a, b, c = (verts[faces[:, i]] for i in range(3))
    cross = np.cross(b - a, c - a)
    flip = np.einsum("ij,ij->i", cross, normals[faces].sum(1)) < 0  # winding flips under a mirroring affine
    cross[flip] *= -1
    return 0.5 * np.linalg.norm(cross, axis=1), unit(cross)


def sample_faces(verts: np.ndarray, faces: np.ndarray, normals: np.ndarray, n: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points drawn uniformly by area on the triangles, each with its face's outward normal.

    Shapes:
        verts (V, 3), faces (F, 3), normals (V, 3) -> points (n, 3), normals (n, 3).
    """
    areas, fnormals = face_normals(verts, faces, normals)
    chosen = rng.choice(len(faces), size=n, p=areas / areas.sum())
    r1, r2 = np.sqrt(rng.random(n))[:, None], rng.random(n)[:, None]
    a, b, c = (verts[faces[chosen, i]] for i in range(3))
    return (1 - r1) * a + r1 * (1 - r2) * b + r1 * r2 * c, fnormals[chosen]


def farthest_points(points: np.ndarray, n: int) -> np.ndarray:
    """Indices of ``n`` farthest-point samples of ``points``, starting from point 0 (deterministic).

    Shapes:
        points (N, 3) with N >= n -> (n,) int, in sampling order.
    """
    import torch

    from gliotype.nn.fps import fps

    ratio = min(1.0, (n + 0.5) / len(points))  # +0.5: float32 rounding can never leave fewer than n
    idx = fps(torch.as_tensor(points, dtype=torch.float32), ratio=ratio, random_start=False)
    return idx[:n].numpy()


def sample_surface(verts: np.ndarray, faces: np.ndarray, normals: np.ndarray, n_points: int,
                   sampling: str = "vertices", seed: int = SEED) -> tuple[np.ndarray, np.ndarray, int]:
    """``n_points`` spread-out surface points and their outward normals (see the module's design notes).

    Returns the points, their normals and the number of area points added to top up too few vertices.

    Shapes:
        verts (V, 3), faces (F, 3), normals (V, 3) -> points (n_points, 3), normals (n_points, 3), int.
    """
    rng = np.random.default_rng(seed)
    added = 0
    if sampling == "area":
        cand, cand_n = sample_faces(verts, faces, normals, AREA_OVERSAMPLE * n_points, rng)
    elif sampling == "vertices":
        cand, cand_n = verts, normals
        if len(verts) < n_points:
            added = n_points - len(verts)
            extra, extra_n = sample_faces(verts, faces, normals, added, rng)
            cand, cand_n = np.concatenate([verts, extra]), np.concatenate([normals, extra_n])
    else:
        raise ValueError(f"unknown surface sampling {sampling!r}; choose 'vertices' or 'area'")
    if len(cand) > MAX_CANDIDATES:
        keep = np.sort(rng.choice(len(cand), MAX_CANDIDATES, replace=False))
        cand, cand_n = cand[keep], cand_n[keep]
    idx = farthest_points(cand, n_points)
    return cand[idx], cand_n[idx], added


def normalise(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Centre points on their mean and scale by their largest radius (into the unit ball).

    Shapes:
        points (N, 3) mm -> normalised (N, 3), centre (3,) mm, scale (mm, float).
    """
    centre = points.mean(0)
    scale = float(np.linalg.norm(points - centre, axis=1).max())
    if not scale > 0:
        raise ValueError("all surface points coincide: the surface has no extent")
    return (points - centre) / scale, centre, scale


def to_world(points: np.ndarray, meta: dict) -> np.ndarray:
    """Normalised points back to scanner (world, RAS+) millimetres, using a stage output's meta.

    Shapes:
        points (..., 3) -> (..., 3) mm.
    """
    return np.asarray(points, float) * float(meta["scale_mm"]) + np.asarray(meta["centre_mm"], float)


def to_voxel(points: np.ndarray, meta: dict) -> np.ndarray:
    """Normalised points to (fractional) voxel indices of the mask's RAS+ grid, via the inverse affine.

    Round them to index the arrays that :func:`~gliotype.cohort.images.load_volume` returns.

    Shapes:
        points (..., 3) -> (..., 3) float voxel indices.
    """
    inverse = np.linalg.inv(np.asarray(meta["affine"], float))
    return to_world(points, meta) @ inverse[:3, :3].T + inverse[:3, 3]


def _problem(source: str, region: str, what: str, fix: str) -> ValueError:
    return ValueError(f"{source}: the {region} tumour region {what}; {fix}")


def geometry_from_mask(mask: np.ndarray, affine: np.ndarray, config: TumourGeometryConfig,
                       source: str = "mask", region: str | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """The stage's arrays and meta for a binary mask already in memory (``source`` names it in errors).

    Shapes:
        mask (X, Y, Z) bool, affine (4, 4) -> points (n_points, 3) float32, normals (n_points, 3) float32.
    """
    region = region or config.region
    n_voxels = int(mask.sum())
    if n_voxels == 0:
        raise _problem(source, region, "is empty", "check the segmentation, or choose region='whole'")
    if n_voxels < 2:
        raise _problem(source, region, "has a single voxel",
                       "a single-voxel mask has no surface: check the segmentation")
    try:
        verts, faces, normals = surface_mesh(mask, affine)
        points, point_normals, added = sample_surface(verts, faces, normals, config.n_points, config.sampling)
        points, centre, scale = normalise(points)
    except ValueError as err:
        raise _problem(source, region, f"({n_voxels} voxels) gives no usable surface: {err}",
                       "check the segmentation for stray voxels or a broken mask") from err
    meta = {"centre_mm": centre, "scale_mm": scale, "affine": np.asarray(affine, float),
            "original_shape": tuple(int(s) for s in mask.shape), "region": region, "n_voxels": n_voxels,
            "n_vertices": int(len(verts)), "n_faces": int(len(faces)), "sampling": config.sampling,
            "topped_up": bool(added), "n_topped_up": int(added)}
    return {"points": points.astype(np.float32), "normals": point_normals.astype(np.float32)}, meta


@register_stage("tumour_geometry", needs=("seg",), config_type=TumourGeometryConfig)
def tumour_geometry(case: Case, config: TumourGeometryConfig) -> tuple[dict[str, np.ndarray], dict]:
    """Build the tumour surface point cloud of one patient (only the segmentation is read).

    Shapes:
        returns ``points`` (n_points, 3) float32 in the unit ball and ``normals`` (n_points, 3) float32
        unit outward normals in the world (RAS+) frame.
    """
    path = case.images["seg"]
    seg, affine = load_volume(path)
    region = region_mask(seg, config.region)
    if region.fell_back and not region.mask.any():
        raise _problem(path.name, f"{config.region} (and so the whole)", "is empty",
                       "check that this is the right segmentation: it has no tumour voxels")
    arrays, meta = geometry_from_mask(region.mask, affine, config, source=path.name, region=region.region)
    meta["region_fell_back"] = region.fell_back
    log.debug("%s: %s surface, %d vertices -> %d points", case.patient_id, region.region,
              meta["n_vertices"], config.n_points)
    return arrays, meta
