"""Back to the patient: undo the tumour cube's crop, resampling and centring; write NIfTI like the scan."""

import json

import nibabel as nib
import numpy as np
import pytest

from gliotype.cohort import Cohort
from gliotype.cohort.images import load_volume
from gliotype.explain import cube_to_original, write_like
from gliotype.prepare.tumour_image import TumourImageConfig, tumour_image


def hand_meta(**changes):
    meta = {"crop_start": [2, 2, 2], "crop_stop": [5, 5, 5], "resampled_shape": [3, 3, 3], "offset": [1, 1, 1],
            "original_shape": [8, 8, 8]}
    return {**meta, **changes}


def test_unit_zoom_is_a_shift_by_offset_and_crop_start():
    cube = np.zeros((5, 5, 5))
    cube[1, 1, 1], cube[3, 2, 1], cube[0, 0, 0] = 1.0, 2.0, 9.0  # (0, 0, 0) lies in the padding
    out = cube_to_original(cube, hand_meta())
    assert out.shape == (8, 8, 8) and out.dtype == np.float32
    assert out[2, 2, 2] == 1 and out[4, 3, 2] == 2 and out.sum() == 3  # cube c -> resampled c - 1 -> + 2


def test_a_cube_smaller_than_the_tumour_leaves_the_uncovered_rim_zero():
    meta = hand_meta(crop_start=[0, 0, 0], crop_stop=[6, 6, 6], resampled_shape=[6, 6, 6], offset=[-1, -1, -1],
                     original_shape=[6, 6, 6])
    out = cube_to_original(np.ones((4, 4, 4)), meta)  # cube c <-> resampled c + 1
    assert out[1:5, 1:5, 1:5].min() == 1 and out.sum() == 64


def test_meta_from_a_json_sidecar_gives_the_same_map():
    meta = {k: np.array(v) for k, v in hand_meta().items()}
    cube = np.random.default_rng(0).random((5, 5, 5))
    as_json = json.loads(json.dumps({k: v.tolist() for k, v in meta.items()}))
    np.testing.assert_array_equal(cube_to_original(cube, meta), cube_to_original(cube, as_json))
    with pytest.raises(ValueError, match=r"lacks \['offset'\]"):
        cube_to_original(cube, {k: v for k, v in meta.items() if k != "offset"})


def dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


@pytest.mark.parametrize("size, spacing", [(16, 3.0), (32, 1.5), (16, 4.5), (10, 1.5)],
                         ids=["same-spacing", "finer", "coarser", "cube-crops-tumour"])
def test_round_trip_of_the_stage_mask_overlaps_the_tumour(tiny_mri_cohort, size, spacing):
    case = Cohort.from_folder(tiny_mri_cohort)["P001"]  # 3 mm voxels, a tumour of 208 voxels
    arrays, meta = tumour_image(case, TumourImageConfig(size=size, spacing=spacing))
    tumour = load_volume(case.images["seg"])[0] > 0
    back = cube_to_original(arrays["mask"], meta) > 0.5
    covered = cube_to_original(np.ones((size,) * 3), meta) > 0.5  # what the cube saw, on the original grid
    if size == 10:
        assert not meta["tumour_fits"] and (tumour & ~covered).sum() > 0
    else:
        assert (tumour & ~covered).sum() == 0
    assert dice(back, tumour & covered) >= (0.99 if spacing == 3.0 else 0.8)


def lps_reference(path, shape=(4, 5, 6), affine=None, marker=(1, 2, 3), dtype=np.int16):
    if affine is None:  # LPS, like the TCGA scans
        affine = np.array([[-1.0, 0, 0, 120], [0, -1.0, 0, 90], [0, 0, 1.0, -60], [0, 0, 0, 1]])
    data = np.zeros(shape, dtype)
    data[marker] = 7
    img = nib.Nifti1Image(data, affine)
    img.header.set_slope_inter(2.0, 0.0)  # the scan's scaling must not leak into the written map
    nib.save(img, str(path))
    return path


@pytest.mark.parametrize("affine", [None, np.array([[0, -2.0, 0, 10], [0, 0, 3.0, -5], [1.5, 0, 0, 7], [0, 0, 0, 1]])],
                         ids=["LPS", "permuted-axes"])
def test_write_like_restores_the_on_disk_grid(tmp_path, affine):
    ref = lps_reference(tmp_path / "seg.nii.gz", affine=affine)
    ras, ras_affine = load_volume(ref)
    marker = np.argwhere(ras > 0)[0]
    stored = nib.load(str(ref))
    world = ras_affine @ [*marker, 1]
    np.testing.assert_allclose(world, stored.affine @ [1, 2, 3, 1])  # same place in the patient
    out = write_like(ras / ras.max(), ref, tmp_path / "maps" / "cam.nii.gz")
    img = nib.load(str(out))
    assert img.shape == stored.shape and img.get_data_dtype() == np.float32
    np.testing.assert_allclose(img.affine, stored.affine)
    data = np.asarray(img.dataobj)
    assert data[1, 2, 3] == 1 and data.sum() == 1
    assert [p.name for p in out.parent.iterdir()] == ["cam.nii.gz"]  # no temporary file left


def test_write_like_uncompressed_uint8_and_wrong_shapes(tmp_path):
    ref = lps_reference(tmp_path / "seg.nii")
    ras, _ = load_volume(ref)
    out = write_like(ras > 0, ref, tmp_path / "mask.nii", dtype=np.uint8)
    assert np.asarray(nib.load(str(out)).dataobj).dtype == np.uint8 and nib.load(str(out)).get_fdata()[1, 2, 3] == 1
    with pytest.raises(ValueError, match=r"shape \(6, 5, 4\) but seg.nii loads as \(4, 5, 6\) in RAS\+"):
        write_like(np.zeros((6, 5, 4)), ref, tmp_path / "bad.nii.gz")
    with pytest.raises(ValueError, match=r"must end in .nii or .nii.gz; got 'cam.npy'"):
        write_like(ras, ref, tmp_path / "cam.npy")
