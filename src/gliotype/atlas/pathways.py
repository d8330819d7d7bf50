"""White-matter pathway ROIs between pairs of AAL regions: the brain network's edges.

The paper's edges are the 2,309 pathway ROIs of a tractography atlas (probabilistic tracts between AAL
regions, built from diffusion MRI of healthy subjects). That atlas is not bundled anywhere we can read
without a download, so the default is a documented deviation, a **tube approximation**
(:func:`tube_pathways`): for every pair of regions whose centroids lie within ``max_distance_mm``, the
template voxels of white matter (probability >= ``wm_threshold``) inside a cylinder of ``radius_mm``
around the segment joining the two centroids. Pairs with fewer than ``min_voxels`` such voxels are
dropped. With the defaults on the 2 mm template, 468 centroid pairs are within 40 mm and a few hundred
of them keep a pathway. A user who has the real atlas loads it with :func:`load_tract_atlas` (one 4-D
NIfTI volume per pathway and a CSV naming each volume's two regions).

A pathway is a set of template voxels, kept as flat (C-order) indices into the template grid, so
membership tests, sampling and maps back to a volume are plain index operations.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import sparse

from gliotype.atlas.aal import Atlas
from gliotype.atlas.template import Template


@dataclass(frozen=True)
class Pathways:
    """Edges of the brain network: region pairs and their template voxels.

    Attributes:
        pairs: 0-based region indices ``(a, b)`` with ``a < b`` (label = index + 1).
        voxels: per pathway, sorted flat (C-order) indices into the template grid.
        source: ``"tubes"`` or the file name of the tract atlas.

    Shapes:
        pairs (E, 2) int64; voxels: E arrays (n_e,) int64.
    """

    pairs: np.ndarray
    voxels: tuple[np.ndarray, ...]
    source: str

    def __len__(self) -> int:
        return len(self.voxels)


def segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance of each point to the segment ``[a, b]``.

    Shapes:
        points (N, 3), a (3,), b (3,) -> (N,).
    """
    direction = b - a
    length2 = float(direction @ direction)
    t = np.clip((points - a) @ direction / length2, 0.0, 1.0) if length2 > 0 else np.zeros(len(points))
    return np.linalg.norm(points - (a + t[:, None] * direction), axis=1)


def tube_voxels(a: np.ndarray, b: np.ndarray, radius_mm: float, allowed: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Flat indices of the ``allowed`` voxels whose centres lie within ``radius_mm`` of the segment ``[a, b]``.

    Only the segment's bounding box (grown by the radius) is searched.

    Shapes:
        a, b (3,) world mm; allowed (X, Y, Z) bool; affine (4, 4) -> (n,) int64 sorted.
    """
    inverse = np.linalg.inv(affine)
    corners = np.array([[x, y, z] for x in (a[0], b[0]) for y in (a[1], b[1]) for z in (a[2], b[2])])
    grown = np.concatenate([corners + d for d in np.vstack([np.eye(3), -np.eye(3)]) * radius_mm])
    ijk = np.concatenate([corners, grown]) @ inverse[:3, :3].T + inverse[:3, 3]
    lo = np.clip(np.floor(ijk.min(0)).astype(int), 0, allowed.shape)
    hi = np.clip(np.ceil(ijk.max(0)).astype(int) + 1, 0, allowed.shape)
    box = np.stack(np.meshgrid(*[np.arange(l, h) for l, h in zip(lo, hi)], indexing="ij"), -1).reshape(-1, 3)
    box = box[allowed[tuple(box.T)]]
    world = box @ affine[:3, :3].T + affine[:3, 3]
    inside = box[segment_distance(world, a, b) <= radius_mm]
    return np.sort(np.ravel_multi_index(tuple(inside.T), allowed.shape)).astype(np.int64)


def tube_pathways(atlas: Atlas, template: Template, max_distance_mm: float = 40.0, radius_mm: float = 4.0,
                  wm_threshold: float = 0.5, min_voxels: int = 8) -> Pathways:
    """Tube approximation of the pathway atlas (see the module docstring).

    Shapes:
        returns pairs (E, 2) and E voxel index arrays, in (a, b) lexicographic order.
    """
    if radius_mm <= 0 or max_distance_mm <= 0:
        raise ValueError(f"radius_mm and max_distance_mm must be positive, got {radius_mm!r} and {max_distance_mm!r}")
    allowed = template.wm >= wm_threshold
    c = atlas.centroids_mm
    a_idx, b_idx = np.triu_indices(len(c), k=1)
    near = np.linalg.norm(c[a_idx] - c[b_idx], axis=1) <= max_distance_mm
    pairs, voxels = [], []
    for a, b in zip(a_idx[near], b_idx[near]):
        found = tube_voxels(c[a], c[b], radius_mm, allowed, template.affine)
        if len(found) >= min_voxels:
            pairs.append((a, b))
            voxels.append(found)
    return Pathways(np.array(pairs, np.int64).reshape(-1, 2), tuple(voxels), "tubes")


def read_pairs(path: Path, atlas: Atlas) -> np.ndarray:
    """The ``region_a,region_b`` rows of a tract-atlas CSV as 0-based region index pairs.

    Shapes:
        returns (rows, 2) int64, each row sorted (a < b).
    """
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"region_a", "region_b"} <= {h.strip() for h in reader.fieldnames}:
            raise ValueError(f"{path.name}: the header must name the columns region_a,region_b, "
                             f"found {reader.fieldnames!r}")
        rows = [{k.strip(): v for k, v in row.items() if k} for row in reader]
    pairs = []
    for n, row in enumerate(rows, start=2):
        try:
            a, b = atlas.index(row["region_a"] or ""), atlas.index(row["region_b"] or "")
        except ValueError as err:
            raise ValueError(f"{path.name}, line {n}: {err}") from err
        if a == b:
            raise ValueError(f"{path.name}, line {n}: the pathway joins region {row['region_a']!r} to itself; "
                             "a pathway needs two different regions")
        pairs.append(sorted((a, b)))
    return np.array(pairs, np.int64).reshape(-1, 2)


def resample_linear(volume: np.ndarray, affine: np.ndarray, template: Template) -> np.ndarray:
    """Trilinear resampling of one volume onto the template grid through world coordinates (0 outside).

    Shapes:
        volume (x, y, z) with ``affine`` (4, 4) -> template.shape float32.
    """
    from scipy import ndimage

    to_source = np.linalg.inv(affine) @ template.affine
    return ndimage.affine_transform(np.asarray(volume, np.float32), to_source[:3, :3], to_source[:3, 3],
                                    output_shape=template.shape, order=1, mode="constant", cval=0.0)


def load_tract_atlas(nifti: str | Path, csv_path: str | Path, atlas: Atlas, template: Template,
                     threshold: float = 0.5) -> Pathways:
    """A user-supplied pathway atlas: a 4-D NIfTI (one volume per pathway) and a CSV of region pairs.

    Each volume (probabilities or binary, on any grid with a correct affine) is resampled linearly onto
    the template grid and thresholded at ``threshold``. Row ``k`` of the CSV (columns ``region_a,region_b``:
    AAL names as in ``AAL.txt`` or label numbers 1-90) names the regions of volume ``k``. Volumes are read
    one at a time, so memory stays small; for thousands of pathways prefer an uncompressed ``.nii``
    (read by memory map) to a ``.nii.gz`` (decompressed again up to each volume).

    Shapes:
        returns pairs (E, 2) and E voxel index arrays, E = the number of volumes, in file order.

    Raises:
        ValueError: naming the file, the row or volume, and the fix.
    """
    import nibabel as nib

    nifti, csv_path = Path(nifti), Path(csv_path)
    pairs = read_pairs(csv_path, atlas)
    try:
        img = nib.load(str(nifti))
    except Exception as err:
        raise ValueError(f"{nifti.name}: not a readable NIfTI image ({err}); re-export it as .nii.gz") from err
    if len(img.shape) != 4:
        raise ValueError(f"{nifti.name}: a tract atlas must be 4-D (one volume per pathway), found shape "
                         f"{img.shape}; stack the pathway volumes along the 4th axis")
    if img.shape[3] != len(pairs):
        raise ValueError(f"{nifti.name} has {img.shape[3]} pathway volumes but {csv_path.name} has {len(pairs)} "
                         "rows; give one region_a,region_b row per volume, in volume order")
    voxels = []
    for k in range(img.shape[3]):
        volume = resample_linear(np.asarray(img.dataobj[..., k], np.float32), np.asarray(img.affine, float), template)
        found = np.flatnonzero(volume >= threshold).astype(np.int64)
        if len(found) == 0:
            raise ValueError(f"{nifti.name}: pathway volume {k} ({csv_path.name} row {k + 1}: "
                             f"{atlas.names[pairs[k, 0]]}-{atlas.names[pairs[k, 1]]}) has no voxel >= {threshold} on "
                             "the template grid; check the volume's affine (is it in MNI space?) or lower threshold")
        voxels.append(found)
    return Pathways(pairs, tuple(voxels), nifti.name)


def membership(pathways: Pathways, n_voxels: int) -> sparse.csr_matrix:
    """Voxel-by-pathway incidence: entry (v, e) is 1 when flat voxel ``v`` lies in pathway ``e``.

    Shapes:
        returns (n_voxels, E) float32 CSR.
    """
    empty = [np.zeros(0, np.int64)]
    cols = np.concatenate([np.full(len(v), e, np.int64) for e, v in enumerate(pathways.voxels)] or empty)
    rows = np.concatenate(list(pathways.voxels) or empty)
    data = np.ones(len(rows), np.float32)
    return sparse.csr_matrix((data, (rows, cols)), shape=(n_voxels, len(pathways)))


def pathway_map(pathways: Pathways, values: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """A volume in which each voxel holds the largest value of the pathways containing it (0 elsewhere).

    Used to export edge importances as a NIfTI on the template grid.

    Shapes:
        values (E,) -> ``shape`` float32.
    """
    values = np.asarray(values, np.float32).ravel()
    if len(values) != len(pathways):
        raise ValueError(f"got {len(values)} values for {len(pathways)} pathways; give one value per pathway")
    out = np.full(int(np.prod(shape)), -np.inf, np.float32)
    for e, v in enumerate(pathways.voxels):
        np.maximum.at(out, v, values[e])
    out[~np.isfinite(out)] = 0.0
    return out.reshape(shape)
