"""The perfusion input stage: on a one-patient synthetic cohort, and on hand-made grids where the answer is known."""

import nibabel as nib
import numpy as np
import pytest

from gliotype.cohort import Case, Cohort
from gliotype.cohort.synth import synthesize
from gliotype.prepare import get_stage, load_prepared, run_stage
from gliotype.prepare.perfusion_input import PerfusionInputConfig, resample
from gliotype.prepare.tumour_image import zscore_brain

T = 40


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Cohort:
    root = synthesize(tmp_path_factory.mktemp("perf") / "c", n_patients=1, seed=7, n_timepoints=T, optional=("dsc",))
    return Cohort.from_folder(root)


@pytest.fixture(scope="module")
def prepared(cohort, tmp_path_factory):
    pid = cohort.patient_ids[0]
    result = run_stage("perfusion_input", cohort, [pid], cache_dir=tmp_path_factory.mktemp("cache"))
    assert not result.failed, result.failed
    return cohort[pid], *load_prepared(result.done[pid])


def build(case: Case, **config):
    return get_stage("perfusion_input").fn(case, PerfusionInputConfig(**config))


def test_one_curve_per_mask_voxel_scaled_to_p995_one(prepared):
    case, arrays, meta = prepared
    mask, curves = arrays["mask"], arrays["curves"]
    assert mask.dtype == np.uint8 and curves.dtype == np.float32
    assert curves.shape == (int(mask.sum()), nib.load(case.images["dsc"]).shape[3]) == (meta["n_voxels"], T)
    np.testing.assert_allclose(np.percentile(curves, 99.5, axis=1), 1.0, rtol=1e-5)
    assert curves.min() >= 0 and meta["timepoints"] == T and meta["region"] == "whole"


def test_crop_offset_maps_back_onto_the_dsc_grid(prepared):
    case, arrays, _ = prepared
    seg = np.asarray(nib.load(case.images["seg"]).dataobj)  # the small synthetic seg is on the DSC grid
    placed = np.zeros(tuple(arrays["grid_shape"]), bool)
    box = tuple(slice(o, o + s) for o, s in zip(arrays["offset"], arrays["mask"].shape))
    placed[box] = arrays["mask"].astype(bool)
    assert np.array_equal(placed, seg > 0)
    np.testing.assert_array_equal(arrays["affine"], nib.load(case.images["dsc"]).affine)
    raw = np.clip(np.asarray(nib.load(case.images["dsc"]).dataobj, np.float32)[placed], 0, None)
    np.testing.assert_allclose(arrays["curves"], raw / np.percentile(raw, 99.5, axis=1, keepdims=True), rtol=1e-5)
    t1n = zscore_brain(np.asarray(nib.load(case.images["t1n"]).dataobj, np.float32))
    np.testing.assert_allclose(arrays["structural"][0], t1n[box], rtol=1e-6)
    assert arrays["structural"].shape == (4, *arrays["mask"].shape)


def test_short_dsc_is_refused_naming_the_file(prepared, tmp_path):
    case, _, _ = prepared
    img = nib.load(case.images["dsc"])
    short = tmp_path / "P-dsc.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[..., :20], img.affine), str(short))
    with pytest.raises(ValueError, match=r"P-dsc\.nii\.gz: the DSC series has T=20 time points; 30 to 90"):
        build(Case("P", tmp_path, images={**case.images, "dsc": short}))


# --- hand-made grids ------------------------------------------------------------------------------

SEG_AFFINE = np.diag([1.0, 1, 1, 1])
SEG_AFFINE[:3, 3] = -4.0  # seg voxel i is at world i - 4 mm
DSC_AFFINE = np.diag([2.0, 2, 2, 1])  # DSC voxel j is at world 2 j mm = seg voxel 2 j + 4


def write_case(folder, seg: np.ndarray) -> Case:
    """seg, t1n..t2f on a 1 mm 24^3 grid (each sequence a ramp along x: 100 + x); DSC on a 2 mm 10^3 grid, T=32."""
    images = {"seg": folder / "H-seg.nii.gz", "dsc": folder / "H-dsc.nii.gz"}
    nib.save(nib.Nifti1Image(seg.astype(np.uint8), SEG_AFFINE), str(images["seg"]))
    ramp = 100 + np.arange(24, dtype=np.float32)[:, None, None] * np.ones((24, 24, 24), np.float32)
    for seq in ("t1n", "t1c", "t2w", "t2f"):
        images[seq] = folder / f"H-{seq}.nii.gz"
        nib.save(nib.Nifti1Image(ramp, SEG_AFFINE), str(images[seq]))
    dsc = np.random.default_rng(0).uniform(50, 100, (10, 10, 10, 32)).astype(np.float32)
    nib.save(nib.Nifti1Image(dsc, DSC_AFFINE), str(images["dsc"]))
    return Case("H", folder, images=images)


def test_seg_on_a_finer_grid_lands_where_the_affines_say(tmp_path):
    seg = np.zeros((24, 24, 24), np.uint8)
    seg[12:16, 12:16, 12:16] = 1  # world 8..11 mm: DSC voxels 4 and 5 (world 8 and 10) on each axis
    arrays, meta = build(write_case(tmp_path, seg), margin=1)
    np.testing.assert_array_equal(arrays["offset"], [3, 3, 3])
    expected = np.zeros((4, 4, 4), np.uint8)
    expected[1:3, 1:3, 1:3] = 1
    np.testing.assert_array_equal(arrays["mask"], expected)
    assert arrays["curves"].shape == (8, 32) and meta["n_voxels"] == 8
    z = zscore_brain(100 + np.arange(24, dtype=np.float32)[:, None, None] * np.ones((24, 24, 24), np.float32))
    seg_index = 2 * (3 + np.arange(4)) + 4  # crop voxel i -> DSC voxel 3 + i -> seg voxel 2 (3 + i) + 4
    np.testing.assert_allclose(arrays["structural"][2][:, 0, 0], z[seg_index, 0, 0], rtol=1e-5)


def test_empty_region_and_non_overlapping_seg_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"H: H-seg\.nii\.gz: the whole tumour region is empty"):
        build(write_case(tmp_path, np.zeros((24, 24, 24), np.uint8)))
    far = np.zeros((24, 24, 24), np.uint8)
    far[0:2, 0:2, 0:2] = 1  # world -4..-3 mm: outside the DSC field of view (0..18 mm)
    with pytest.raises(ValueError, match="none on the DSC grid: check that the seg and the DSC are co-registered"):
        build(write_case(tmp_path, far))


def test_same_grid_resampling_is_a_slice():
    volume = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    out = resample(volume, DSC_AFFINE, DSC_AFFINE, volume.shape, order=0)
    assert np.shares_memory(out, volume) and np.array_equal(out, volume)
    shifted = DSC_AFFINE.copy()
    shifted[:3, 3] = [2.0, 4.0, 0.0]  # the sub-grid starting at voxel (1, 2, 0)
    np.testing.assert_array_equal(resample(volume, DSC_AFFINE, shifted, (2, 2, 5), order=1), volume[1:3, 2:4, :])
