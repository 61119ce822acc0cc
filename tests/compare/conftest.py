"""Fixtures of the comparison tests."""

import sys
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def reinforce_hyperparameters(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[[str], None]:
    """Replace REINFORCE's per-env hyperparameter file, for this test, by one holding the given TOML text."""
    from rlrelax.compare import hyperparams

    def write(text: str) -> None:
        package = tmp_path / "fake_hyperparams"
        package.mkdir(exist_ok=True)
        (package / "__init__.py").write_text("")
        (package / "hyperparams.toml").write_text(text)
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delitem(sys.modules, "fake_hyperparams", raising=False)
        monkeypatch.setitem(
            hyperparams.HYPERPARAMETER_FILES,
            "rlrelax.agents:REINFORCE",
            ("fake_hyperparams", "hyperparams.toml"),
        )

    return write
