"""The brain-voxels stage: MRI intensities sampled in the 90 AAL regions (nodes) and the white-matter
pathways between them (edges), after registration to MNI152, plus the pathways that the tumour touches.

Pipeline (paper: brain networks from anatomical MRI for glioma IDH prediction): t1n, t1c, t2w, t2f ->
each z-scored on its own brain voxels (non-zero voxels: the images are skull-stripped; the same rule as
``tumour_image``) -> t1n registered to the brain-masked 2 mm MNI152 template with ANTs
(:mod:`gliotype.atlas.register`; SyN by default) -> the four z-scored sequences (and FA, unnormalised,
when the patient has it) warped onto the template grid (linear) -> sampled at fixed template positions.

Design choices:
    * Template: nilearn's MNI152 at 2 mm (99 x 117 x 95); AAL labels 1-90 resampled onto it
      (:mod:`gliotype.atlas.aal`).
    * Edges: by default the tube approximation of the paper's 2,309-pathway tractography atlas (a
      documented deviation, :func:`~gliotype.atlas.pathways.tube_pathways`: 456 pathways with the
      defaults); ``tract_atlas`` + ``tract_pairs`` load the real one
      (:func:`~gliotype.atlas.pathways.load_tract_atlas`).
    * Fixed sample positions: ``n_voxels`` template voxels per region and per pathway, drawn once per
      configuration with ``numpy.random.default_rng(seed)`` (without replacement when the region or
      pathway has at least ``n_voxels`` voxels, else with replacement) and shared by every patient, so
      column ``j`` of a node vector is the same brain location in every patient. The table is cached
      in-process per configuration. ``seed`` also seeds ANTs' metric sampling.
    * Vectors: sequence-major, ``[t1n x n_voxels, t1c x n_voxels, t2w x n_voxels, t2f x n_voxels]`` (the
      paper's 4000-long vectors with ``n_voxels=1000``); FA edge vectors are ``n_voxels`` long and are
      only written when the patient has FA (a missing modality stays missing, never zeros).
    * Tumour: the surface points of the ``tumour_geometry`` stage (same ``region``, ``n_points``,
      ``sampling``, hence the same points), mapped to template space through the registration; a point
      whose rounded template voxel lies in a pathway gives a (point, pathway) pair in ``point_edges``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, model_validator
from scipy import sparse

from gliotype.atlas.aal import Atlas, load_aal
from gliotype.atlas.pathways import Pathways, load_tract_atlas, membership, tube_pathways
from gliotype.atlas.register import (Registration, register, registration_arrays, registration_meta,
                                     points_to_template, to_template)
from gliotype.atlas.template import Template, load_template
from gliotype.cohort import Case
from gliotype.cohort.images import load_volume
from gliotype.cohort.layout import MRI_SEQUENCES
from gliotype.prepare.stage import StageConfig, register_stage
from gliotype.prepare.tumour_geometry import TumourGeometryConfig, to_world, tumour_geometry
from gliotype.prepare.tumour_image import zscore_brain

log = logging.getLogger(__name__)


class BrainVoxelsConfig(StageConfig):
    transform: Literal["SyN", "Affine", "Rigid"] = "SyN"
    min_dice: float = Field(0.8, ge=0.0, le=1.0)
    max_distance_mm: float = Field(40.0, gt=0)
    radius_mm: float = Field(4.0, gt=0)
    n_voxels: int = Field(1000, ge=1)
    tract_atlas: str | None = None
    tract_pairs: str | None = None
    region: Literal["whole", "core", "enhancing"] = "core"
    n_points: int = Field(512, ge=8)
    sampling: Literal["vertices", "area"] = "vertices"
    seed: int = 0

    @model_validator(mode="after")
    def _atlas_pair(self):
        if (self.tract_atlas is None) != (self.tract_pairs is None):
            raise ValueError("give both tract_atlas (the 4-D NIfTI) and tract_pairs (its region_a,region_b CSV), "
                             "or neither (tube pathways)")
        return self


@dataclass(frozen=True)
class Network:
    """The fixed part of the stage, shared by all patients of one configuration.

    Shapes:
        nodes (90, n_voxels) and edges (E, n_voxels): flat template-grid indices; incidence (V, E) CSR.
    """

    pathways: Pathways
    nodes: np.ndarray
    edges: np.ndarray
    incidence: sparse.csr_matrix


_NETWORKS: dict[tuple, Network] = {}


def sample_positions(groups: list[np.ndarray], n_voxels: int, rng: np.random.Generator) -> np.ndarray:
    """``n_voxels`` members of each group (without replacement when it has enough, else with).

    Shapes:
        groups: R arrays of flat indices -> (R, n_voxels) int64.
    """
    if any(len(g) == 0 for g in groups):
        raise ValueError("a region or pathway has no voxel on the template grid")
    return np.stack([rng.choice(g, n_voxels, replace=len(g) < n_voxels) for g in groups]).astype(np.int64)


def pathways_for(config: BrainVoxelsConfig, atlas: Atlas, template: Template) -> Pathways:
    """The configuration's pathways: the user's tract atlas, or tubes."""
    if config.tract_atlas is None:
        return tube_pathways(atlas, template, config.max_distance_mm, config.radius_mm)
    missing = [p for p in (config.tract_atlas, config.tract_pairs) if not Path(p).is_file()]
    if missing:
        raise ValueError(f"tract atlas file(s) not found: {missing}; check tract_atlas and tract_pairs")
    return load_tract_atlas(config.tract_atlas, config.tract_pairs, atlas, template)


def network(config: BrainVoxelsConfig, template: Template) -> Network:
    """The pathways and sample positions of ``config`` (built once per configuration and process)."""
    key = (config.n_voxels, config.seed, config.max_distance_mm, config.radius_mm, config.tract_atlas,
           config.tract_pairs, template.shape, template.affine.tobytes())
    if key not in _NETWORKS:
        atlas = load_aal(template)
        pathways = pathways_for(config, atlas, template)
        rng = np.random.default_rng(config.seed)
        regions = [np.flatnonzero(atlas.labels == k + 1) for k in range(len(atlas.names))]
        nodes = sample_positions(regions, config.n_voxels, rng)
        edges = sample_positions(list(pathways.voxels), config.n_voxels, rng)
        _NETWORKS[key] = Network(pathways, nodes, edges, membership(pathways, int(np.prod(template.shape))))
    return _NETWORKS[key]


def sample(volumes: list[np.ndarray], positions: np.ndarray) -> np.ndarray:
    """Sequence-major vectors: each row holds every volume's values at that row's positions, volume by volume.

    Shapes:
        volumes: C arrays (X, Y, Z); positions (R, n) -> (R, C * n) float16.
    """
    return np.concatenate([v.ravel()[positions] for v in volumes], axis=1).astype(np.float16)


def point_edges(points_mni: np.ndarray, template: Template, incidence: sparse.csr_matrix) -> np.ndarray:
    """(point, pathway) pairs for the points whose rounded template voxel lies in a pathway.

    Shapes:
        points_mni (N, 3) MNI mm -> (K, 2) int32, sorted by point then pathway.
    """
    inverse = np.linalg.inv(template.affine)
    ijk = np.rint(points_mni @ inverse[:3, :3].T + inverse[:3, 3]).astype(np.int64)
    inside = np.flatnonzero(np.all((ijk >= 0) & (ijk < template.shape), axis=1))
    flat = np.ravel_multi_index(tuple(ijk[inside].T), template.shape)
    hits = incidence[flat].tocoo()
    pairs = np.stack([inside[hits.row], hits.col], 1).astype(np.int32)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def _register(case: Case, config: BrainVoxelsConfig, template: Template) -> tuple[Registration, np.ndarray, tuple]:
    path = case.images["t1n"]
    t1, affine = load_volume(path)
    try:
        reg = register(t1, affine, template, config.transform, config.seed, config.min_dice)
    except ValueError as err:
        raise ValueError(f"{path.name}: {err}") from err
    return reg, affine, t1.shape


def _warped(case: Case, modality: str, reg: Registration, template: Template, normalise: bool) -> np.ndarray:
    path = case.images[modality]
    volume, affine = load_volume(path)
    if normalise:
        try:
            volume = zscore_brain(volume)
        except ValueError as err:
            raise ValueError(f"{path.name}: {err}; check that this is a skull-stripped image") from err
    return to_template(reg, volume, affine, template)


def _tumour_points(case: Case, config: BrainVoxelsConfig) -> tuple[np.ndarray, dict]:
    """The tumour_geometry stage's surface points, in the patient's world millimetres (RAS+)."""
    geometry = TumourGeometryConfig(region=config.region, n_points=config.n_points, sampling=config.sampling)
    arrays, meta = tumour_geometry(case, geometry)
    return to_world(arrays["points"], meta), meta


@register_stage("brain_voxels", needs=("mri", "seg"), config_type=BrainVoxelsConfig, optional=("fa",), version=2)
def brain_voxels(case: Case, config: BrainVoxelsConfig) -> tuple[dict[str, np.ndarray], dict]:
    """Build one patient's brain-network inputs.

    Shapes:
        returns ``nodes`` (90, 4 * n_voxels) float16, ``edges`` (E, 4 * n_voxels) float16, ``edges_fa``
        (E, n_voxels) float16 (only with FA), ``pairs`` (E, 2) int16 (0-based AAL region indices),
        ``point_edges`` (K, 2) int32 (tumour point index, pathway index), ``points_mni`` (n_points, 3)
        float32 (the tumour points in MNI mm) and the ``reg_*`` transform bytes (uint8).
    """
    template = load_template()
    net = network(config, template)
    points, geometry = _tumour_points(case, config)
    reg, affine, shape = _register(case, config, template)
    volumes = [_warped(case, seq, reg, template, normalise=True) for seq in MRI_SEQUENCES]
    arrays = {"nodes": sample(volumes, net.nodes), "edges": sample(volumes, net.edges),
              "pairs": net.pathways.pairs.astype(np.int16)}
    has_fa = "fa" in case.images
    if has_fa:
        arrays["edges_fa"] = sample([_warped(case, "fa", reg, template, normalise=False)], net.edges)
    points_mni = points_to_template(reg, points)
    arrays["point_edges"] = point_edges(points_mni, template, net.incidence)
    arrays["points_mni"] = points_mni.astype(np.float32)
    arrays.update(registration_arrays(reg))
    meta = {"dice": reg.dice, "transform": reg.transform, "n_edges": len(net.pathways), "has_fa": has_fa,
            "pathway_source": net.pathways.source, "n_voxels": config.n_voxels,
            "n_points_in_pathways": int(len(np.unique(arrays["point_edges"][:, 0]))),
            "affine": affine, "original_shape": tuple(int(s) for s in shape), "region": geometry["region"],
            "region_fell_back": geometry["region_fell_back"], "template_shape": template.shape,
            "template_affine": template.affine, **registration_meta(reg)}
    log.debug("%s: Dice %.3f, %d tumour points in pathways", case.patient_id, reg.dice, meta["n_points_in_pathways"])
    return arrays, meta
