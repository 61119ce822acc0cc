"""Test-wide settings."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread() -> None:
    # The networks here are tiny: a second intra-op thread only adds synchronisation, and when the other
    # core is busy (a learning test's workers, CI neighbours) its spin-waits can slow a run a hundredfold.
    torch.set_num_threads(1)
