import numpy as np
import pytest

from gliotype.cohort.regions import label_values, mask_bounds, region_mask


def brats(enhancing_label=4):
    seg = np.zeros((5, 1, 1), int)
    seg[:, 0, 0] = [0, 1, 2, enhancing_label, 0]  # necrosis, oedema, enhancing
    return seg


@pytest.mark.parametrize("enh", [3, 4])
def test_regions_of_brats_labels(enh):
    seg = brats(enh)
    assert region_mask(seg, "whole").mask[:, 0, 0].tolist() == [False, True, True, True, False]
    assert region_mask(seg, "core").mask[:, 0, 0].tolist() == [False, True, False, True, False]
    assert region_mask(seg, "enhancing").mask[:, 0, 0].tolist() == [False, False, False, True, False]


def test_core_falls_back_to_whole_when_empty():
    seg = np.array([[[0, 2, 2]]])  # oedema only: a low-grade glioma without core labels
    result = region_mask(seg, "core")
    assert result.region == "whole" and result.fell_back
    assert result.mask.sum() == 2
    assert region_mask(seg, "core", fallback=False).mask.sum() == 0


def test_binary_mask_is_whole_tumour():
    seg = np.array([[[0, 1, 1, 0]]])
    result = region_mask(seg, "core")
    assert result.mask.sum() == 2 and result.region == "whole"


def test_unknown_region_is_named():
    with pytest.raises(ValueError, match=r"unknown tumour region 'tumor'; choose one of \['whole', 'core', 'enhancing'\]"):
        region_mask(brats(), "tumor")


def test_label_values_counts_integer_labels_in_any_dtype():
    seg = np.zeros((5, 4, 3), np.float32)
    seg[1, 1, 1], seg[2, 2, 2], seg[4, 3, 2] = 1, 4, 2
    assert label_values(seg) == {0, 1, 2, 4}
    assert label_values(seg.astype(np.uint8)) == {0, 1, 2, 4}
    assert label_values(seg - 1) == {-1, 0, 1, 3}  # negative: the sorting path


def test_mask_bounds_equals_the_voxel_list_bounds():
    rng = np.random.default_rng(0)
    mask = np.zeros((30, 20, 10), bool)
    mask[rng.integers(3, 25), rng.integers(2, 18), rng.integers(1, 9)] = True
    mask[7:12, 4:6, 2:3] = True
    start, stop = mask_bounds(mask)
    idx = np.argwhere(mask)
    np.testing.assert_array_equal(start, idx.min(0))
    np.testing.assert_array_equal(stop, idx.max(0) + 1)
    with pytest.raises(ValueError, match="empty"):
        mask_bounds(np.zeros((3, 3, 3), bool))
