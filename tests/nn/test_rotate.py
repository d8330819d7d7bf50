"""Tests for gliotype.nn.rotate: a volume and its points must turn the same way."""

import math

import pytest
import torch

from gliotype.nn.rotate import axis_angle, random_rotations, rotate_points, rotate_volume

S = 16  # cube edge; even, so 90-degree turns map voxel centres onto voxel centres
CENTRE = (S - 1) / 2  # the grid centre, in voxel indices


def turn(axis: int) -> torch.Tensor:
    """+90 degrees about coordinate axis 0 (x), 1 (y) or 2 (z), right-hand rule, as a (1, 3, 3) matrix."""
    a = torch.zeros(1, 3, dtype=torch.float64)
    a[0, axis] = 1
    return axis_angle(a, torch.tensor([math.pi / 2], dtype=torch.float64)).round().float()


def blob(offset, size=S, sigma=1.2):
    """A Gaussian blob at ``offset`` voxels from the grid centre, shape (1, 1, S, S, S)."""
    idx = torch.stack(torch.meshgrid(*[torch.arange(size, dtype=torch.float32)] * 3, indexing="ij"), -1)
    d2 = ((idx - CENTRE - torch.as_tensor(offset)) ** 2).sum(-1)
    return torch.exp(-d2 / (2 * sigma**2))[None, None]


def centre_of_mass(volume):
    """Centre of mass of a (1, 1, S, S, S) volume, as an offset from the grid centre."""
    idx = torch.stack(torch.meshgrid(*[torch.arange(s, dtype=torch.float32) for s in volume.shape[2:]],
                                     indexing="ij"), -1)
    w = volume[0, 0, ..., None]
    return (w * idx).sum((0, 1, 2)) / w.sum() - CENTRE


def test_turn_matrices_follow_the_right_hand_rule():
    x, y, z = torch.eye(3)
    assert torch.equal(turn(2)[0] @ x, y)  # about z: x -> y
    assert torch.equal(turn(0)[0] @ y, z)  # about x: y -> z
    assert torch.equal(turn(1)[0] @ z, x)  # about y: z -> x


def test_random_rotations_are_proper_and_within_the_angle():
    g = torch.Generator().manual_seed(0)
    rot = random_rotations(64, 30.0, g)
    assert rot.shape == (64, 3, 3)
    eye = torch.eye(3).expand(64, 3, 3)
    assert torch.allclose(rot @ rot.transpose(1, 2), eye, atol=1e-5)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(64), atol=1e-5)
    angle = torch.rad2deg(torch.arccos(((rot.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1, 1)))
    assert angle.max() <= 30.0 + 1e-3 and angle.max() > 20.0  # fills the range, never beyond


def test_random_rotations_replay_with_the_same_generator():
    a = random_rotations(4, 90.0, torch.Generator().manual_seed(3))
    b = random_rotations(4, 90.0, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_rotate_points_applies_R_to_each_point():
    points = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]])
    out = rotate_points(points, turn(2))  # about z: x -> y, y -> -x
    assert torch.allclose(out, torch.tensor([[[0.0, 1.0, 0.0], [-2.0, 0.0, 0.0]]]))


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_quarter_turn_is_an_exact_voxel_permutation(axis, mode):
    volume = torch.rand(1, 2, S, S, S, generator=torch.Generator().manual_seed(axis))
    rot = turn(axis)
    out = rotate_volume(volume, rot, mode=mode)
    # out at offset o must be volume at offset R^T o (voxel offsets from the centre are half-integers)
    idx = torch.stack(torch.meshgrid(*[torch.arange(S)] * 3, indexing="ij"), -1).reshape(-1, 3).float()
    src = ((idx - CENTRE) @ rot[0] + CENTRE).round().long()  # row-vector form of R^T o
    expected = volume[0][:, src[:, 0], src[:, 1], src[:, 2]].reshape(2, S, S, S)
    assert torch.allclose(out[0], expected, atol=1e-5)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_quarter_turn_moves_a_blob_where_the_point_goes(axis):
    v = torch.tensor([5.0, -3.0, 2.0])
    rot = turn(axis)
    volume = blob(v)
    moved = centre_of_mass(rotate_volume(volume, rot))
    # exact: the turned blob's centre is the turned centre (the cube edge trims both the same way) ...
    assert torch.allclose(moved, rot[0] @ centre_of_mass(volume), atol=1e-4)
    # ... which is where rotate_points sends v, up to that trimming
    assert torch.allclose(moved, rotate_points(v[None, None], rot)[0, 0], atol=0.05)


def test_random_rotation_moves_a_blob_where_the_point_goes():
    g = torch.Generator().manual_seed(7)
    v = torch.tensor([4.0, -2.5, 1.5])
    for rot in random_rotations(5, 180.0, g):
        moved = centre_of_mass(rotate_volume(blob(v), rot[None]))
        target = rotate_points(v[None, None], rot[None])[0, 0]
        assert (moved - target).norm() < 1.0, (moved, target)


def test_rotate_volume_keeps_shape_and_integer_masks():
    mask = (blob([0.0, 0.0, 3.0]) > 0.5).to(torch.uint8).repeat(2, 1, 1, 1, 1)
    out = rotate_volume(mask, random_rotations(2, 45.0, torch.Generator().manual_seed(1)), mode="nearest")
    assert out.shape == mask.shape and out.dtype == torch.uint8
    assert set(out.unique().tolist()) <= {0, 1}


def test_rotate_volume_non_cubic_grid_about_its_centre():
    # X = 20, Y = 12: a 90-degree turn about z maps the blob's x offset onto y, in voxels (not in
    # normalised grid units, which differ per axis)
    size = (20, 12, 8)
    idx = torch.stack(torch.meshgrid(*[torch.arange(s, dtype=torch.float32) for s in size], indexing="ij"), -1)
    centre = (torch.tensor(size, dtype=torch.float32) - 1) / 2
    v = torch.tensor([2.0, 0.0, 0.0])
    volume = torch.exp(-((idx - centre - v) ** 2).sum(-1) / 2)[None, None]
    out = rotate_volume(volume, turn(2))
    w = out[0, 0, ..., None]
    moved = (w * idx).sum((0, 1, 2)) / w.sum() - centre
    assert torch.allclose(moved, torch.tensor([0.0, 2.0, 0.0]), atol=0.01)


def test_errors_name_the_expected_shapes():
    with pytest.raises(ValueError, match=r"\(B, 3, 3\) with B = 2"):
        rotate_points(torch.zeros(2, 5, 3), torch.eye(3)[None])
    with pytest.raises(ValueError, match=r"\(B, C, X, Y, Z\)"):
        rotate_volume(torch.zeros(1, 8, 8, 8), torch.eye(3)[None])
    with pytest.raises(ValueError, match="mode must be one of"):
        rotate_volume(torch.zeros(1, 1, 4, 4, 4), torch.eye(3)[None], mode="cubic")
