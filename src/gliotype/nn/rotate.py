"""Rotation augmentation applied identically to a tumour cube and its point cloud (paper 000, section 2.3).

Sampling is separate from applying, so an augmentation can be replayed: draw rotation matrices with
:func:`random_rotations`, then apply the same matrices to the points (:func:`rotate_points`) and to the
volume (:func:`rotate_volume`).

Conventions. A rotation ``R`` acts on column vectors of coordinates ``(x, y, z)``; a point ``v`` goes to
``R @ v``. The points are centred, so the rotation is about the origin. The volume's axes ``(X, Y, Z)``
(tensor dims 2, 3, 4) are the same ``(x, y, z)`` axes as the points' (both RAS+, voxels assumed
isotropic), and the volume is rotated about the centre of its grid: whatever sat at offset ``v`` (in
voxels) from the centre ends at offset ``R @ v``.

How the volume is resampled. :func:`torch.nn.functional.grid_sample` reads the *input* at the grid
location of every *output* voxel, so the grid holds ``R^-1 = R^T`` applied to the output coordinates; its
coordinates are normalised to ``[-1, 1]`` per axis and ordered ``(W, H, D) = (Z, Y, X)``, the reverse of
the tensor dims. Both are accounted for in :func:`rotation_theta`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["random_rotations", "rotate_points", "rotate_volume", "rotation_theta"]

_MODES = ("bilinear", "nearest")


def random_rotations(n: int, max_deg: float, generator: torch.Generator | None = None) -> Tensor:
    """Random proper rotations: a uniform random axis, an angle uniform in ``[-max_deg, max_deg]`` degrees.

    Args:
        n: number of rotations.
        max_deg: largest angle, degrees, ``>= 0`` (``180``: any rotation angle).
        generator: random generator (CPU), for replayable draws.

    Returns:
        Rotation matrices (float32, det +1), built with Rodrigues' formula.

    Shapes:
        output: (n, 3, 3)
    """
    if n < 0 or max_deg < 0:
        raise ValueError(f"random_rotations: n and max_deg must be >= 0; got n={n!r}, max_deg={max_deg!r}")
    axis = torch.randn(n, 3, generator=generator, dtype=torch.float64)
    axis = axis / axis.norm(dim=1, keepdim=True).clamp_min(1e-12)
    angle = (torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1) * math.radians(max_deg)
    return axis_angle(axis, angle).float()


def axis_angle(axis: Tensor, angle: Tensor) -> Tensor:
    """Rotation matrices about unit ``axis`` by ``angle`` radians (right-hand rule), Rodrigues' formula.

    Shapes:
        axis: (n, 3), angle: (n,) -> (n, 3, 3)
    """
    x, y, z = axis.unbind(1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=1).view(-1, 3, 3)
    eye = torch.eye(3, dtype=axis.dtype, device=axis.device).expand_as(k)
    sin, cos = angle.sin()[:, None, None], angle.cos()[:, None, None]
    return eye + sin * k + (1 - cos) * (k @ k)


def rotate_points(points: Tensor, rotations: Tensor) -> Tensor:
    """Rotate centred point clouds about the origin: ``p -> R @ p``.

    Shapes:
        points: (B, P, 3), rotations: (B, 3, 3) -> (B, P, 3)
    """
    if points.dim() != 3 or points.shape[-1] != 3:
        raise ValueError(f"rotate_points: points must have shape (B, P, 3); got {tuple(points.shape)}")
    _check_rotations(rotations, points.shape[0], "rotate_points")
    return points @ rotations.to(points.dtype).transpose(1, 2)


def rotation_theta(rotations: Tensor, spatial: tuple[int, int, int]) -> Tensor:
    """The ``affine_grid`` matrices that rotate volumes of size ``spatial = (X, Y, Z)`` by ``rotations``.

    In voxel offsets from the centre, the input is read at ``R^T @ offset``; normalised coordinates scale
    axis ``a`` by ``2 / size_a`` (``align_corners=False``), and the grid's coordinate order is (Z, Y, X).

    Shapes:
        rotations: (B, 3, 3) -> theta (B, 3, 4)
    """
    half = torch.tensor(spatial, dtype=rotations.dtype, device=rotations.device) / 2
    inverse = rotations.transpose(1, 2)  # rotation matrices: R^-1 = R^T
    normalised = inverse * half[None, None, :] / half[None, :, None]  # D^-1 R^T D, D = diag(size / 2)
    zyx = normalised.flip(1, 2)  # (x, y, z) -> grid order (z, y, x), for rows and columns
    return torch.cat([zyx, torch.zeros_like(zyx[:, :, :1])], dim=2)


def rotate_volume(volume: Tensor, rotations: Tensor, mode: str = "bilinear") -> Tensor:
    """Rotate volumes about the centre of their grid, zero outside (same rotations as :func:`rotate_points`).

    Args:
        volume: volumes; spatial dims (X, Y, Z) are the points' (x, y, z) axes.
        rotations: one rotation matrix per volume.
        mode: ``"bilinear"`` (trilinear, for images) or ``"nearest"`` (for label masks).

    Shapes:
        volume: (B, C, X, Y, Z), rotations: (B, 3, 3) -> (B, C, X, Y, Z)
    """
    if volume.dim() != 5:
        raise ValueError(f"rotate_volume: volume must have shape (B, C, X, Y, Z); got {tuple(volume.shape)}")
    if mode not in _MODES:
        raise ValueError(f"rotate_volume: mode must be one of {_MODES}; got mode={mode!r}")
    _check_rotations(rotations, volume.shape[0], "rotate_volume")
    dtype = volume.dtype if volume.is_floating_point() else torch.float32
    theta = rotation_theta(rotations.to(device=volume.device, dtype=dtype), tuple(volume.shape[2:]))
    grid = F.affine_grid(theta, list(volume.shape), align_corners=False)
    out = F.grid_sample(volume.to(dtype), grid, mode=mode, padding_mode="zeros", align_corners=False)
    return out if volume.is_floating_point() else out.round().to(volume.dtype)


def _check_rotations(rotations: Tensor, batch: int, name: str) -> None:
    if rotations.shape != (batch, 3, 3):
        raise ValueError(f"{name}: rotations must have shape (B, 3, 3) with B = {batch} (one per example); "
                         f"got {tuple(rotations.shape)}. Draw them with random_rotations(B, max_deg).")
