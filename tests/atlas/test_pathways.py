"""Pathways: tubes checked against brute force, the tract-atlas loader, membership and maps by hand."""

import nibabel as nib
import numpy as np
import pytest

from gliotype.atlas.aal import Atlas, aal_files, load_aal, read_names
from gliotype.atlas.pathways import (Pathways, load_tract_atlas, membership, pathway_map, segment_distance,
                                     tube_pathways)
from gliotype.atlas.template import Template, load_template

NAMES = read_names(aal_files()[1])


def small_template(spacing=2.0, shape=(20, 16, 12), origin=(-20.0, -16.0, -10.0), wm=None) -> Template:
    affine = np.diag([spacing] * 3 + [1.0])
    affine[:3, 3] = origin
    wm = np.ones(shape, np.float32) if wm is None else wm
    return Template(np.ones(shape, np.float32), np.ones(shape, bool), wm, affine, shape)


def make_atlas(template: Template, centroids: dict[int, tuple]) -> Atlas:
    """Regions far away from each other (1 km apart) except those placed by hand at ``centroids``."""
    c = 1000.0 * np.arange(90)[:, None] * np.ones((1, 3))
    for k, xyz in centroids.items():
        c[k] = xyz
    return Atlas(np.zeros(template.shape, np.int16), NAMES, c)


def world_of_all(template: Template) -> np.ndarray:
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in template.shape], indexing="ij"), -1).reshape(-1, 3)
    return ijk @ template.affine[:3, :3].T + template.affine[:3, 3]


def test_segment_distance_by_hand():
    a, b = np.zeros(3), np.array([10.0, 0, 0])
    points = np.array([[5, 3, 0], [-4, 0, 3], [13, 4, 0], [10, 0, 0]], float)
    assert np.allclose(segment_distance(points, a, b), [3, 5, 5, 0])


def test_tube_matches_brute_force():
    wm = np.ones((20, 16, 12), np.float32)
    wm[:, :, :6] = 0.3  # z < 2 mm is grey matter: excluded at wm_threshold 0.5
    template = small_template(wm=wm)
    a, b, far = (-12.0, -3.0, 4.0), (10.0, 5.0, 2.0), (-12.0, -3.0, 4.0 + 45)
    atlas = make_atlas(template, {0: a, 1: b, 2: far})
    paths = tube_pathways(atlas, template, max_distance_mm=40, radius_mm=5.0)
    assert paths.source == "tubes" and paths.pairs.tolist() == [[0, 1]]  # 0-2 and 1-2 are over 40 mm apart
    world = world_of_all(template)
    expected = np.flatnonzero((segment_distance(world, np.array(a), np.array(b)) <= 5.0) & (wm.ravel() >= 0.5))
    assert np.array_equal(paths.voxels[0], expected) and len(expected) > 20
    assert (world[paths.voxels[0], 2] >= 2).all()


def test_small_tubes_are_dropped():
    template = small_template(wm=np.zeros((20, 16, 12), np.float32))
    atlas = make_atlas(template, {0: (-12.0, -3.0, 4.0), 1: (10.0, 5.0, 2.0)})
    assert len(tube_pathways(atlas, template)) == 0  # no white matter: nothing reaches min_voxels


def test_default_tubes_on_mni152():
    template = load_template()
    atlas = load_aal(template)
    paths = tube_pathways(atlas, template)
    c = atlas.centroids_mm
    i, j = np.triu_indices(90, 1)
    assert (np.linalg.norm(c[i] - c[j], axis=1) <= 40).sum() == 468  # candidate pairs
    assert len(paths) == 456 and (paths.pairs[:, 0] < paths.pairs[:, 1]).all()
    assert min(len(v) for v in paths.voxels) >= 8 and (template.wm.ravel()[np.concatenate(paths.voxels)] >= 0.5).all()


def test_membership_and_map_by_hand():
    paths = Pathways(np.array([[0, 1], [1, 2]]), (np.array([0, 5]), np.array([5, 7])), "tubes")
    m = membership(paths, 10).toarray()
    assert m.shape == (10, 2) and m[[0, 5, 7]].tolist() == [[1, 0], [1, 1], [0, 1]] and m.sum() == 4
    volume = pathway_map(paths, np.array([0.2, 0.9]), (2, 5, 1))
    assert volume.dtype == np.float32 and volume.ravel().tolist() == pytest.approx([0.2, 0, 0, 0, 0, 0.9, 0, 0.9, 0, 0])
    assert pathway_map(paths, np.array([-1.0, -3.0]), (10, 1, 1)).ravel()[[0, 5, 6]].tolist() == [-1, -1, 0]
    with pytest.raises(ValueError, match="got 3 values for 2 pathways"):
        pathway_map(paths, np.zeros(3), (10, 1, 1))


@pytest.fixture
def tract_files(tmp_path):
    """Two binary pathways on a 1 mm grid over the 2 mm small template: boxes of world x 4..8 and y -4..-2 mm."""
    affine = np.eye(4)
    affine[:3, 3] = (-20.0, -16.0, -10.0)
    data = np.zeros((40, 32, 24, 2), np.float32)
    data[24:29, 10:20, 10:20, 0] = 1  # x 4..8 mm, y -6..3 mm, z 0..9 mm
    data[0:40, 12:15, 10:11, 1] = 1  # y -4..-2 mm, z = 0 mm
    nifti = tmp_path / "tracts.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), str(nifti))
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("region_a,region_b\nPrecentral_R,Precentral_L\n5,3\n")
    return nifti, pairs


def test_tract_atlas_round_trip(tract_files):
    template = small_template()
    atlas = make_atlas(template, {})
    paths = load_tract_atlas(*tract_files, atlas, template)
    assert paths.source == "tracts.nii.gz" and paths.pairs.tolist() == [[0, 1], [2, 4]]
    world = world_of_all(template)
    x, y, z = world.T
    first = np.flatnonzero((x >= 4) & (x <= 8) & (y >= -6) & (y <= 3) & (z >= 0) & (z <= 9))
    second = np.flatnonzero((y >= -4) & (y <= -2) & (z == 0))
    assert np.array_equal(paths.voxels[0], first) and len(first) == 3 * 5 * 5  # x 4,6,8; y -6..2; z 0..8
    assert np.array_equal(paths.voxels[1], second) and len(second) == 20 * 2  # every x; y -4, -2; z 0


def test_tract_atlas_rejects_bad_files(tract_files, tmp_path):
    nifti, pairs = tract_files
    template = small_template()
    atlas = make_atlas(template, {})
    pairs.write_text("region_a,region_b\nPrecentral_R,Precentral_L\n")
    with pytest.raises(ValueError, match=r"tracts.nii.gz has 2 pathway volumes but pairs.csv has 1 rows"):
        load_tract_atlas(nifti, pairs, atlas, template)
    pairs.write_text("region_a,region_b\nPrecentral_R,Precentral_L\nPrecentrl_L,3\n")
    unknown = r"pairs.csv, line 3: unknown AAL region 'Precentrl_L' \(did you mean 'Precentral_L'"
    with pytest.raises(ValueError, match=unknown):
        load_tract_atlas(nifti, pairs, atlas, template)
    pairs.write_text("region_a,region_b\n1,2\n3,4\n")
    flat = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)), str(flat))
    with pytest.raises(ValueError, match="flat.nii.gz: a tract atlas must be 4-D"):
        load_tract_atlas(flat, pairs, atlas, template)
    far = tmp_path / "far.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4, 2), np.float32), np.diag([1, 1, 1, 1.0]) + np.eye(4, k=3) * 500),
             str(far))
    empty = r"far.nii.gz: pathway volume 0 \(pairs.csv row 1: Precentral_L-Precentral_R\) has no voxel"
    with pytest.raises(ValueError, match=empty):
        load_tract_atlas(far, pairs, atlas, template)
