"""Tumour geometry stage: a sphere and an ellipsoid whose surfaces are known, bad masks, caching, real data."""

import shutil

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from gliotype.cohort import Case, Cohort
from gliotype.prepare import get_stage, load_prepared, run_stage
from gliotype.prepare.tumour_geometry import TumourGeometryConfig, normalise, surface_mesh, to_voxel, to_world

SPACING = np.array([1.0, 1.0, 2.0])
ORIGIN = np.array([-40.0, 25.0, 10.0])
AFFINE = np.diag([*SPACING, 1.0])
AFFINE[:3, 3] = ORIGIN


def grid_mm(shape) -> np.ndarray:
    """World (mm) coordinates of every voxel centre of a grid with ``AFFINE``. Shapes: -> (X, Y, Z, 3)."""
    index = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1)
    return index * SPACING + ORIGIN


def write_case(tmp_path, seg: np.ndarray, affine=AFFINE, name="P1") -> Case:
    path = tmp_path / f"{name}-seg.nii.gz"
    nib.save(nib.Nifti1Image(seg.astype(np.uint8), affine), str(path))
    return Case(name, tmp_path, images={"seg": path})


def build(case: Case, **config):
    return get_stage("tumour_geometry").fn(case, TumourGeometryConfig(**config))


SHAPE, CENTRE, RADIUS = (40, 40, 20), np.array([-20.0, 44.0, 29.0]), 12.0  # CENTRE = voxel (20, 19, 9.5)


@pytest.fixture
def sphere(tmp_path):
    seg = (np.linalg.norm(grid_mm(SHAPE) - CENTRE, axis=-1) <= RADIUS).astype(np.uint8)
    return seg, write_case(tmp_path, seg)


def test_sphere_points_lie_on_the_sphere_in_world_mm(sphere):
    seg, case = sphere
    arrays, meta = build(case, region="whole")
    points, normals = arrays["points"], arrays["normals"]
    assert points.shape == normals.shape == (512, 3) and points.dtype == np.float32
    radii = np.linalg.norm(points, axis=1)
    assert np.all(np.abs(points) <= 1) and radii.max() == pytest.approx(1.0, abs=1e-6)
    world = to_world(points, meta)
    distance = np.linalg.norm(world - CENTRE, axis=1)
    assert np.all(np.abs(distance - RADIUS) <= SPACING.max())  # within one (the coarsest) voxel
    assert np.allclose(meta["centre_mm"], CENTRE, atol=0.5)
    assert meta["scale_mm"] == pytest.approx(RADIUS, abs=SPACING.max())
    assert meta["n_voxels"] == int(seg.sum()) and meta["original_shape"] == SHAPE
    assert meta["sampling"] == "vertices" and not meta["topped_up"] and meta["n_vertices"] > 512


def test_sphere_normals_point_outward(sphere):
    arrays, meta = build(sphere[1], region="whole")
    normals = arrays["normals"]
    radial = to_world(arrays["points"], meta) - CENTRE
    assert np.allclose(np.linalg.norm(normals, axis=1), 1, atol=1e-5)
    cosine = np.einsum("ij,ij->i", normals, radial / np.linalg.norm(radial, axis=1, keepdims=True))
    assert (cosine > 0).mean() >= 0.99 and np.median(cosine) > 0.8


def test_to_voxel_lands_on_the_mask_boundary(sphere):
    seg, case = sphere
    for sampling in ("vertices", "area"):
        arrays, meta = build(case, region="whole", sampling=sampling)
        index = np.rint(to_voxel(arrays["points"], meta)).astype(int)
        assert np.all((index >= 0) & (index < SHAPE))
        at = tuple(index.T)
        assert ndimage.binary_dilation(seg)[at].all()  # within one voxel of the mask ...
        assert not ndimage.binary_erosion(seg)[at].any()  # ... and never deep inside it


def test_ellipsoid_principal_axis_is_its_long_axis(tmp_path):
    radii = np.array([6.0, 6.0, 16.0])  # long along z (world S), where voxels are 2 mm
    seg = (np.linalg.norm((grid_mm(SHAPE) - CENTRE) / radii, axis=-1) <= 1).astype(np.uint8)
    arrays, _ = build(write_case(tmp_path, seg), region="whole")
    points = arrays["points"] - arrays["points"].mean(0)
    _, singular, axes = np.linalg.svd(points, full_matrices=False)
    assert abs(axes[0] @ [0, 0, 1]) > 0.99 and singular[0] > 2 * singular[1]


def test_lps_file_is_read_in_ras(tmp_path, sphere):
    seg, _ = sphere
    lps = AFFINE.copy()
    lps[:2] *= -1  # the same voxels, stored with x and y axes pointing left and posterior
    arrays, meta = build(write_case(tmp_path, seg, lps, name="LPS"), region="whole")
    centre_lps = CENTRE * [-1, -1, 1]
    assert np.allclose(meta["centre_mm"], centre_lps, atol=0.5)
    radial = to_world(arrays["points"], meta) - centre_lps
    assert (np.einsum("ij,ij->i", arrays["normals"], radial) > 0).mean() >= 0.99
    index = np.rint(to_voxel(arrays["points"], meta)).astype(int)
    assert ndimage.binary_dilation(nib.as_closest_canonical(nib.load(str(tmp_path / "LPS-seg.nii.gz")))
                                   .get_fdata() > 0)[tuple(index.T)].all()


def test_empty_and_single_voxel_masks_are_refused_by_name(tmp_path):
    seg = np.zeros((8, 8, 8), np.uint8)
    with pytest.raises(ValueError, match=r"P1-seg\.nii\.gz: the core \(and so the whole\) tumour region is empty"):
        build(write_case(tmp_path, seg))
    seg[4, 4, 4] = 1
    with pytest.raises(ValueError, match=r"P2-seg\.nii\.gz: the whole tumour region has a single voxel; "
                                         "a single-voxel mask has no surface"):
        build(write_case(tmp_path, seg, name="P2"), region="whole")


def test_empty_core_falls_back_to_whole(tmp_path):
    seg = np.zeros((10, 10, 10), np.uint8)
    seg[3:7, 3:7, 3:7] = 2  # oedema only: no core
    arrays, meta = build(write_case(tmp_path, seg))
    assert meta["region"] == "whole" and meta["region_fell_back"] and arrays["points"].shape == (512, 3)


def test_small_mask_is_topped_up_to_exactly_n_points(tmp_path):
    seg = np.zeros((8, 8, 8), np.uint8)
    seg[3:5, 3:5, 3:5] = 1  # a 2x2x2 cube: a few dozen vertices
    arrays, meta = build(write_case(tmp_path, seg), n_points=64)
    assert meta["n_vertices"] < 64 and meta["topped_up"] and meta["n_topped_up"] == 64 - meta["n_vertices"]
    assert arrays["points"].shape == arrays["normals"].shape == (64, 3)
    assert len(np.unique(arrays["points"], axis=0)) == 64


def test_running_twice_gives_identical_arrays(sphere):
    for sampling in ("vertices", "area"):
        first, _ = build(sphere[1], sampling=sampling)
        second, _ = build(sphere[1], sampling=sampling)
        assert all(np.array_equal(first[k], second[k]) for k in ("points", "normals"))


def test_normalise_by_hand():
    points, centre, scale = normalise(np.array([[0.0, 0, 0], [2, 0, 0], [1, 3, 0], [1, -3, 0]]))
    assert centre.tolist() == [1, 0, 0] and scale == 3
    assert points.tolist() == [[-1 / 3, 0, 0], [1 / 3, 0, 0], [0, 1, 0], [0, -1, 0]]


def test_bad_patient_fails_alone_through_run_stage(tiny_mri_cohort, tmp_path):
    cohort = Cohort.from_folder(shutil.copytree(tiny_mri_cohort, tmp_path / "cohort"))
    bad = cohort.patient_ids[0]
    nib.save(nib.Nifti1Image(np.zeros((20, 20, 20), np.uint8), np.diag([3.0, 3, 3, 1])), str(cohort[bad].images["seg"]))
    result = run_stage("tumour_geometry", cohort, cohort.patient_ids[:3], cache_dir=tmp_path / "cache")
    assert list(result.failed) == [bad] and f"{bad}-seg.nii.gz" in result.failed[bad]
    assert "tumour region is empty" in result.failed[bad] and len(result.done) == 2
    arrays, meta = load_prepared(result.done[cohort.patient_ids[1]])
    assert arrays["points"].shape == (512, 3) and meta["stage"] == "tumour_geometry"
    # after the JSON round trip the meta still maps points back
    assert np.allclose(to_world(arrays["points"], meta).mean(0), meta["centre_mm"], atol=1e-4)


@pytest.mark.realdata
def test_real_tcga_patient(shared_data, tmp_path):
    cohort = Cohort.from_folder(shared_data / "tcga-mri")
    pid = cohort.patient_ids[0]
    result = run_stage("tumour_geometry", cohort, [pid], cache_dir=tmp_path / "cache")
    assert not result.failed, result.failed
    arrays, meta = load_prepared(result.done[pid])
    points = arrays["points"]
    assert points.shape == (512, 3) and np.isfinite(points).all() and np.abs(points).max() <= 1
    assert meta["region"] == ("whole" if meta["region_fell_back"] else "core")
    seg = nib.as_closest_canonical(nib.load(str(cohort[pid].images["seg"]))).get_fdata()
    mask = np.isin(seg, (1, 3, 4)) if meta["region"] == "core" else seg > 0
    index = tuple(np.rint(to_voxel(points, meta)).astype(int).T)
    assert ndimage.binary_dilation(mask)[index].all() and not ndimage.binary_erosion(mask)[index].any()


def test_mesh_faces_wind_outward(sphere):
    seg, _ = sphere
    verts, faces, _ = surface_mesh(seg.astype(bool), AFFINE)
    a, b, c = (verts[faces[:, i]] for i in range(3))
    outward = np.einsum("ij,ij->i", np.cross(b - a, c - a), (a + b + c) / 3 - CENTRE)
    assert (outward > 0).all()  # counter-clockwise seen from outside: the mesh is not inside-out
