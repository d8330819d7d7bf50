"""AAL on the template grid: 90 named regions, left on the left, and nearest-neighbour resampling by hand."""

import numpy as np
import pytest

from gliotype.atlas.aal import load_aal, resample_labels
from gliotype.atlas.template import load_template


@pytest.fixture(scope="module")
def atlas():
    return load_aal(load_template())


def test_template_is_the_2mm_mni152():
    template = load_template()
    assert template.shape == (99, 117, 95) and template.t1.dtype == np.float32 and template.brain.dtype == bool
    assert np.allclose(np.diag(template.affine), [2, 2, 2, 1]) and np.allclose(template.affine[:3, 3], [-98, -134, -72])
    assert (template.t1[~template.brain] == 0).all() and 0 <= template.wm.min() and template.wm.max() <= 1
    assert load_template() is template  # cached


def test_ninety_named_regions(atlas):
    assert len(atlas.names) == 90 and atlas.names[:2] == ("Precentral_L", "Precentral_R")
    assert atlas.names[89] == "Temporal_Inf_R"
    assert atlas.labels.dtype == np.int16 and atlas.labels.shape == load_template().shape
    assert np.array_equal(np.unique(atlas.labels), np.arange(91))  # every region has voxels at 2 mm, 91+ dropped


def test_left_regions_have_negative_x(atlas):
    x = atlas.centroids_mm[:, 0]
    assert (x[0::2] < 0).all() and (x[1::2] > 0).all()  # odd labels (even indices) are left
    # Precentral_L sits high on the left convexity, about (-39, -6, 51) mm in MNI space
    assert np.allclose(atlas.centroids_mm[0], [-39.6, -5.7, 50.9], atol=0.5)


def test_region_lookup_by_name_or_number(atlas):
    assert atlas.index("Precentral_R") == 1 and atlas.index(3) == 2 and atlas.index(" 90 ") == 89
    with pytest.raises(ValueError, match="did you mean 'Precentral_L'"):
        atlas.index("Precentral_l")
    with pytest.raises(ValueError, match="label number 1-90"):
        atlas.index(91)


def test_nearest_neighbour_resampling_by_hand():
    labels = np.arange(1, 5, dtype=np.int16).reshape(4, 1, 1)  # x = 0, 1, 2, 3 mm
    target = np.diag([2.0, 1.0, 1.0, 1.0])
    target[0, 3] = -0.4  # centres at x = -0.4, 1.6, 3.6, 5.6 mm: nearest source voxels 0, 2, 4 (outside), 6 (outside)
    out = resample_labels(labels, np.eye(4), (4, 1, 1), target)
    assert out.ravel().tolist() == [1, 3, 0, 0]
