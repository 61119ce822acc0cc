"""Test-wide settings."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread() -> None:
    # The networks here are tiny: a second intra-op thread only adds synchronisation, and when the
    # other core is busy (pytest-xdist, CI neighbours) its spin-waits can slow a run down a hundredfold.
    torch.set_num_threads(1)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Under pytest-xdist (``-n auto``, ``--dist loadgroup``), the learning tests are most of the wall time
    # and each already keeps two cores busy: one group runs them one after another on one worker, and
    # they are collected first so that the other workers' unit tests fill the time beside them instead
    # of after them. ``tryfirst``: xdist reads the group marker in its own hook of the same name.
    for item in items:
        if item.get_closest_marker("learning"):
            item.add_marker(pytest.mark.xdist_group("learning"))
    items.sort(key=lambda item: item.get_closest_marker("learning") is None)
