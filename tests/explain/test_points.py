"""Surface voxels and their projection onto the nearest points, checked by hand on a 3x3x3 cube."""

import numpy as np
import pytest

from gliotype.explain import project_to_points, surface_voxels


def cube_mask():
    mask = np.zeros((5, 5, 5), bool)
    mask[1:4, 1:4, 1:4] = True
    return mask


def test_surface_of_a_cube_is_all_but_its_centre():
    voxels = surface_voxels(cube_mask())
    assert voxels.shape == (26, 3) and [2, 2, 2] not in voxels.tolist()
    assert surface_voxels(np.ones((2, 2, 2), bool)).shape == (8, 3)  # the array border counts as outside
    assert surface_voxels(np.zeros((3, 3, 3), bool)).shape == (0, 3)


def test_projection_by_hand():
    mask = cube_mask()
    values = np.broadcast_to(np.arange(5.0)[:, None, None], mask.shape).copy()  # value = x index
    values[2, 2, 2] = 100.0  # the centre is not surface: never used
    affine = np.diag([2.0, 2.0, 2.0, 1.0])  # world = 2 * index
    points = np.array([[2.0, 4.0, 4.0],  # at voxel (1, 2, 2): gets the x=1 face (9) and the x=2 ring (8)
                       [6.5, 4.0, 4.0],  # beside voxel (3, 2, 2): gets the x=3 face (9); the ring is 2.5 away
                       [100.0, 100.0, 100.0],  # nobody's nearest: takes its nearest voxel (3, 3, 3) -> 3
                       [-50.0, 4.0, 4.0]])  # nobody's nearest: takes voxel (1, 2, 2) -> 1
    out = project_to_points(values, mask, affine, points)
    np.testing.assert_allclose(out, [(9 * 1 + 8 * 2) / 17, 3.0, 3.0, 1.0])


def test_projection_uses_world_millimetres():
    mask = cube_mask()
    values = np.broadcast_to(np.arange(5.0)[:, None, None], mask.shape)
    shifted = np.array([[1.0, 0, 0, 100], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])  # world x = index + 100
    out = project_to_points(values, mask, shifted, np.array([[101.0, 2, 2], [103.5, 2, 2]]))
    np.testing.assert_allclose(out, [25 / 17, 3.0])


def test_projection_errors_teach():
    mask = cube_mask()
    with pytest.raises(ValueError, match=r"same grid; got shapes \(4, 4, 4\) and \(5, 5, 5\)"):
        project_to_points(np.zeros((4, 4, 4)), mask, np.eye(4), np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"points_mm must have shape \(P, 3\)"):
        project_to_points(np.zeros((5, 5, 5)), mask, np.eye(4), np.zeros((3,)))
    with pytest.raises(ValueError, match="mask is empty"):
        project_to_points(np.zeros((5, 5, 5)), np.zeros((5, 5, 5), bool), np.eye(4), np.zeros((1, 3)))
