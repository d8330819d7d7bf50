"""The brain_voxels stage: documented shapes, FA only where it exists, one shared table of sample positions.

The tiny cohort's "brains" are 60 mm cubes of noise, so they are registered with ``transform="Affine"``
and ``min_dice=0`` (their Dice with the MNI brain is about 0.2); the real patient is registered with SyN.
"""

import shutil

import nibabel as nib
import numpy as np
import pytest
from pydantic import ValidationError

from gliotype.atlas.pathways import Pathways, membership
from gliotype.atlas.register import registration_from_arrays, to_template
from gliotype.atlas.template import Template, load_template
from gliotype.cohort import Cohort
from gliotype.cohort.images import load_volume
from gliotype.prepare import load_prepared, run_stage
from gliotype.prepare.brain_voxels import BrainVoxelsConfig, network, point_edges, sample_positions
from gliotype.prepare.tumour_image import zscore_brain

N = 32
CONFIG = BrainVoxelsConfig(transform="Affine", min_dice=0.0, n_voxels=N)


@pytest.fixture(scope="module")
def prepared(tiny_mri_cohort, tmp_path_factory):
    """Two patients of the tiny cohort, the first given an FA map; and one failing at the default min_dice."""
    root = shutil.copytree(tiny_mri_cohort, tmp_path_factory.mktemp("bv") / "cohort")
    fa = np.random.default_rng(1).uniform(0, 1, (20, 20, 20)).astype(np.float32)
    nib.save(nib.Nifti1Image(fa, np.diag([3.0, 3, 3, 1])), str(root / "P000" / "P000-fa.nii.gz"))
    cohort = Cohort.from_folder(root)
    ids = cohort.patient_ids[:2]
    result = run_stage("brain_voxels", cohort, ids, CONFIG, cache_dir=root / "cache")
    failed = run_stage("brain_voxels", cohort, ids[1:2], BrainVoxelsConfig(transform="Rigid", n_voxels=N),
                       cache_dir=root / "cache")
    return cohort, result, failed


def test_documented_shapes_and_fa(prepared):
    cohort, result, _ = prepared
    assert not result.failed and sorted(result.done) == ["P000", "P001"]
    n_edges = len(network(CONFIG, load_template()).pathways)
    assert n_edges == 456
    for pid, has_fa in (("P000", True), ("P001", False)):
        arrays, meta = load_prepared(result.done[pid])
        assert arrays["nodes"].shape == (90, 4 * N) and arrays["nodes"].dtype == np.float16
        assert arrays["edges"].shape == (n_edges, 4 * N) and arrays["edges"].dtype == np.float16
        assert arrays["pairs"].shape == (n_edges, 2) and arrays["pairs"].dtype == np.int16
        assert ("edges_fa" in arrays) is has_fa and meta["has_fa"] is has_fa
        if has_fa:
            assert arrays["edges_fa"].shape == (n_edges, N) and arrays["edges_fa"].dtype == np.float16
            assert 0 <= arrays["edges_fa"].min() and arrays["edges_fa"].max() <= 1  # FA is not z-scored
        assert meta["n_edges"] == n_edges and meta["n_voxels"] == N and meta["pathway_source"] == "tubes"
        assert meta["transform"] == "Affine" and meta["original_shape"] == [20, 20, 20]
        assert np.allclose(meta["affine"], np.diag([3.0, 3, 3, 1]))
        assert arrays["point_edges"].dtype == np.int32 and arrays["point_edges"].shape[1] == 2
        assert meta["n_points_in_pathways"] == len(np.unique(arrays["point_edges"][:, 0]))


def test_both_patients_are_sampled_at_the_same_positions(prepared):
    cohort, result, _ = prepared
    template = load_template()
    net = network(CONFIG, template)
    for pid in ("P000", "P001"):
        arrays, meta = load_prepared(result.done[pid])
        reg = registration_from_arrays(arrays, meta)
        for s, seq in enumerate(("t1n", "t1c", "t2w", "t2f")):
            volume, affine = load_volume(cohort[pid].images[seq])
            warped = to_template(reg, zscore_brain(volume), affine, template).ravel()
            columns = slice(s * N, (s + 1) * N)  # sequence-major
            assert np.array_equal(arrays["nodes"][:, columns], warped[net.nodes].astype(np.float16))
            assert np.array_equal(arrays["edges"][:, columns], warped[net.edges].astype(np.float16))


def test_tumour_points_in_pathways_are_where_they_say(prepared):
    _, result, _ = prepared
    template = load_template()
    net = network(CONFIG, template)
    arrays, _ = load_prepared(result.done["P000"])
    inverse = np.linalg.inv(template.affine)
    for k, e in arrays["point_edges"]:
        ijk = np.rint(arrays["points_mni"][k] @ inverse[:3, :3].T + inverse[:3, 3]).astype(int)
        assert np.ravel_multi_index(tuple(ijk), template.shape) in net.pathways.voxels[e]


def test_failed_registration_names_the_file_and_the_dice(prepared):
    _, _, failed = prepared
    assert list(failed.failed) == ["P001"]
    message = failed.failed["P001"]
    assert message.startswith("P001-t1n.nii.gz: registration to MNI152 failed") and "< min_dice 0.8" in message
    assert float(message.split("Dice ")[1].split()[0]) < 0.5  # a noise cube is no brain: measured 0.21


def test_sample_positions_with_and_without_replacement():
    groups = [np.arange(5), np.arange(100, 200)]
    positions = sample_positions(groups, 10, np.random.default_rng(0))
    assert positions.shape == (2, 10) and set(positions[0]) <= set(range(5))  # 5 voxels: drawn with replacement
    assert len(set(positions[1])) == 10 and set(positions[1]) <= set(range(100, 200))  # enough: no repeats
    again = sample_positions(groups, 10, np.random.default_rng(0))
    assert np.array_equal(positions, again)
    assert network(CONFIG, load_template()) is network(CONFIG.model_copy(), load_template())  # cached per config


def test_point_edges_by_hand():
    shape = (4, 3, 2)
    template = Template(np.ones(shape, np.float32), np.ones(shape, bool), np.ones(shape, np.float32),
                        np.diag([2.0, 2, 2, 1]), shape)
    flat = lambda i, j, k: np.ravel_multi_index((i, j, k), shape)  # noqa: E731
    paths = Pathways(np.array([[0, 1], [0, 2]]), (np.array([flat(0, 0, 0), flat(1, 1, 1)]), np.array([flat(1, 1, 1)])),
                     "tubes")
    points = np.array([[0.4, 0.2, -0.3], [9.0, 0, 0], [2.2, 1.8, 2.9], [6.0, 4.0, 2.0]])  # voxels 000, out, 111, 321
    pairs = point_edges(points, template, membership(paths, int(np.prod(shape))))
    assert pairs.tolist() == [[0, 0], [2, 0], [2, 1]]


def test_tract_atlas_needs_both_files():
    with pytest.raises(ValidationError, match="give both tract_atlas"):
        BrainVoxelsConfig(tract_atlas="tracts.nii.gz")


@pytest.mark.realdata
def test_real_tcga_patient(shared_data, tmp_path):
    cohort = Cohort.from_folder(shared_data / "tcga-mri")
    pid = "TCGA-DU-7294"
    result = run_stage("brain_voxels", cohort, [pid], BrainVoxelsConfig(), cache_dir=tmp_path / "cache")
    assert not result.failed, result.failed
    arrays, meta = load_prepared(result.done[pid])
    assert meta["transform"] == "SyN" and meta["dice"] >= 0.85  # measured 0.96
    assert arrays["nodes"].shape == (90, 4000) and np.isfinite(arrays["nodes"]).all()
    assert meta["original_shape"] == [240, 240, 155] and not meta["has_fa"]
    assert len(arrays["point_edges"]) > 0  # the tumour touches white-matter pathways (measured 23 of 512 points)
    # z-scored brain: the node samples of the 4 sequences average near 0 and spread near 1
    assert abs(float(arrays["nodes"].astype(np.float32).mean())) < 0.5
