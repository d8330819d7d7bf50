import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread for the network tests: on two cores shared with other jobs, two threads stall on
    each other (the pointgnn planted-signal test took 10x longer, measured); restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
