"""The cross-attention encoder: shapes, and the queries read the memory."""

import pytest
import torch

from gliotype.nn.joint_encoder import JointEncoder


def test_shapes_and_memory_reaches_every_query():
    torch.manual_seed(0)
    encoder = JointEncoder(query_dim=6, memory_dim=10, dim=8, depth=2, heads=2).eval()
    queries, memory = torch.randn(3, 4, 6), torch.randn(3, 5, 10)
    out = encoder(queries, memory)
    assert out.shape == (3, 4, 8)
    changed = memory.clone()
    changed[1] += 1.0  # only example 1's memory
    diff = (encoder(queries, changed) - out).abs().amax(dim=(1, 2))
    assert diff[0] == 0 and diff[2] == 0 and diff[1] > 1e-3  # examples do not mix


def test_rejects_unpaired_batches_and_bad_width():
    with pytest.raises(ValueError, match="pair row by row"):
        JointEncoder(6, 10, dim=8, heads=2)(torch.randn(3, 4, 6), torch.randn(2, 5, 10))
    with pytest.raises(ValueError, match="multiple of heads"):
        JointEncoder(6, 10, dim=10, heads=4)
