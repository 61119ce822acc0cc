"""The package as users get it: the wheel holds every subpackage, the mapped folders refuse other names."""

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Where each source folder lands inside the installed ``rlrelax`` package.
SUBPACKAGES = ["relax", "estimators", "agents", "envs", "callbacks", "compare"]
SOURCE_ROOTS = {"rlrelax": "rlrelax", "agents": "rlrelax/agents", "envs": "rlrelax/envs"}


@pytest.fixture(scope="module")
def wheel_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-v",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    (built,) = out.glob("rlrelax-*.whl")
    return built, build.stdout + build.stderr


@pytest.fixture(scope="module")
def wheel(wheel_build: tuple[Path, str]) -> Path:
    return wheel_build[0]


def test_every_subpackage_is_listed(wheel_build: tuple[Path, str]) -> None:
    # setuptools still ships an unlisted subpackage as "package data", with a deprecation warning
    # saying it will stop; the list in pyproject.toml must be complete before it does.
    assert "absent from the `packages` configuration" not in wheel_build[1]


def test_wheel_holds_every_source_module(wheel: Path) -> None:
    expected = {
        f"{installed}/{path.relative_to(REPO / folder).as_posix()}"
        for folder, installed in SOURCE_ROOTS.items()
        for path in (REPO / folder).rglob("*.py")
        if "__pycache__" not in path.parts
    }
    shipped = set(zipfile.ZipFile(wheel).namelist())
    assert expected - shipped == set(), "modules missing from the wheel: add their package to pyproject.toml"
    assert "rlrelax/py.typed" in shipped
    # The agents' per-env hyperparameter files, which `rlrelax train` reads from the installed package.
    for agent in ("reinforce", "softq", "gumbel_ac"):
        assert f"rlrelax/agents/{agent}/hyperparams.toml" in shipped
    assert not any(name.startswith(("agents/", "envs/")) for name in shipped), (
        "a top-level agents/envs leaked"
    )


def test_subpackages_import_from_the_wheel(wheel: Path, tmp_path: Path) -> None:
    zipfile.ZipFile(wheel).extractall(tmp_path)
    # -S skips site-packages' .pth files, and with them the editable install's import hook, so the
    # rlrelax modules can only come from the unpacked wheel; the dependencies come from purelib.
    modules = ", ".join(f"rlrelax.{name}" for name in SUBPACKAGES)
    script = (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]];"
        f"import {modules};"
        f"print('\\n'.join(m.__file__ for m in [{modules}]))"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-c", script, str(tmp_path), sysconfig.get_paths()["purelib"]],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    for module_file in result.stdout.split():
        assert Path(module_file).is_relative_to(tmp_path), f"{module_file} was not imported from the wheel"


@pytest.mark.parametrize(("folder", "installed"), [("agents", "rlrelax.agents"), ("envs", "rlrelax.envs")])
def test_mapped_folder_refuses_its_folder_name(folder: str, installed: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", f"import {folder}"], capture_output=True, text=True, cwd=REPO
    )
    assert result.returncode != 0
    assert f"import {installed}" in result.stderr


def test_console_script_runs() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("rlrelax")), "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert result.stdout.startswith("rlrelax ")
