"""Test-wide settings."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread() -> None:
    # The networks here are tiny: a second intra-op thread only adds synchronisation, and when the
    # other core is busy (pytest-xdist, CI neighbours) its spin-waits can slow a run down a hundredfold.
    torch.set_num_threads(1)
