"""The run store under faults: the runner or one worker killed, SIGTERM, each file of a finished run damaged,
a read-only run folder, a full disk, a run folder taken from under its writer. Each fault is tried on a tiny
spec (a few hundred steps of PPO on CartPole-v1) and followed by what a user does next: resume, or read the
error and do what it says.
"""

import csv
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn
from unittest import mock

import numpy as np
import pytest
from stable_baselines3 import PPO
from test_compare_runs import (
    PPO_AGENT,
    RLRELAX,
    group_gone,
    start_as_foreground_job,
    tiny_spec,
    to_toml,
    wait_for,
)

from rlrelax.cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID, main
from rlrelax.compare import execute_run, load_spec, run_experiment, spec_from_dict
from rlrelax.compare.store import RunFolderBusyError, claim_run_dir

HERE = Path(__file__).resolve().parent
# The damaged runs measure gradient diagnostics, so their gradient_stats.csv is damaged in turn too.
STORE_FILES = ["config.json", "evaluations.npz", "progress.csv", "model.zip", "gradient_stats.csv"]
# A worker should be gone this soon after its runner; it takes milliseconds, the rest is slack for a busy CI.
GONE_WITHIN_S = 10


class Pauses(PPO):
    """PPO that, while ``RLRELAX_TEST_PAUSE`` names a folder, trains, then waits before returning from learn.

    It writes ``<seed>.pid`` there (its process id) and waits for a file ``<seed>.go``: the run has trained
    and evaluated but not written its ``result.json``, the worst moment for a fault.
    """

    def learn(self, *args: Any, **kwargs: Any) -> Any:
        model = super().learn(*args, **kwargs)
        pause = os.environ.get("RLRELAX_TEST_PAUSE")
        if pause:
            Path(pause, f"{self.seed}.tmp").write_text(str(os.getpid()))
            Path(pause, f"{self.seed}.tmp").rename(Path(pause, f"{self.seed}.pid"))
            deadline = time.monotonic() + 300
            while not Path(pause, f"{self.seed}.go").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        return model


def no_space(path: Any) -> NoReturn:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(path))


class FullDisk(PPO):
    """PPO that, while ``RLRELAX_TEST_FULL_DISK`` is set, finds the disk full when it saves its model.

    From then on every file this process creates (``os.open`` with ``O_CREAT``) finds it full too, the
    traceback that the run then writes to ``error.txt`` included.
    """

    def save(self, path: Any, *args: Any, **kwargs: Any) -> None:
        if os.environ.get("RLRELAX_TEST_FULL_DISK"):
            real_open = os.open

            def open_on_a_full_disk(file: Any, flags: int, *args: Any, **kwargs: Any) -> int:
                if flags & os.O_CREAT:
                    no_space(file)
                return real_open(file, flags, *args, **kwargs)

            mock.patch.object(os, "open", open_on_a_full_disk).start()
            no_space(path)
        super().save(path, *args, **kwargs)


class LosesItsFolder(PPO):
    """PPO whose run folder is moved away as it starts learning and a new folder, with a file, put there.

    As if, while the run trains, its folder were deleted and another attempt of the run had begun there.
    """

    def learn(self, *args: Any, **kwargs: Any) -> Any:
        folder = Path(self.logger.dir or "")
        folder.rename(folder.with_name("moved"))
        folder.mkdir()
        (folder / "other.txt").write_text("another attempt's file")
        return super().learn(*args, **kwargs)


def agent(cls: type) -> dict[str, Any]:
    return {**PPO_AGENT, "label": cls.__name__, "algorithm": f"test_store_faults:{cls.__name__}"}


def write_spec(path: Path, name: str, agents: list[dict[str, Any]], seeds: list[int]) -> Path:
    path.write_text(to_toml(tiny_spec(name, agents, seeds)))
    return path


def compare_command(spec: Path, out: Path, workers: int) -> list[str]:
    return [RLRELAX, "compare", str(spec), "--out", str(out), "--workers", str(workers), "--no-progress"]


def resume(spec: Path, out: Path) -> tuple[int, int, int]:
    """Run the spec again, as rerunning the command does: the runs kept, finished now and failed."""
    result = run_experiment(load_spec(spec), out, workers=2, progress=False, report=False)
    return result.skipped, len(result.finished), len(result.failed)


def results(store: Path) -> dict[str, tuple[int, str]]:
    """Each finished run (``<agent>/seed-<n>``) with its result.json's modification time and attempt id."""
    return {
        str(marker.parent.relative_to(store)): (
            marker.stat().st_mtime_ns,
            json.loads(marker.read_text())["attempt"],
        )
        for marker in store.glob("*/*/result.json")
    }


def start_pausing(
    tmp_path: Path, agents: list[dict[str, Any]], seeds: list[int], workers: int, paused: list[int]
) -> tuple[Path, Path, subprocess.Popen[str]]:
    """Start ``rlrelax compare`` in a session of its own and wait until the runs of ``paused`` seeds pause.

    :return: the spec file, the pause folder (``<seed>.pid``, ``<seed>.go``) and the runner process
    """
    spec = write_spec(tmp_path / "spec.toml", "faults", agents, seeds)
    pause = tmp_path / "pause"
    pause.mkdir()
    env = {**os.environ, "PYTHONPATH": str(HERE), "RLRELAX_TEST_PAUSE": str(pause)}
    runner = start_as_foreground_job(compare_command(spec, tmp_path / "runs", workers), env)
    wait_for(lambda: all((pause / f"{seed}.pid").exists() for seed in paused), runner, timeout=120)
    return spec, pause, runner


# processes killed or stopped


def test_killing_the_runner_alone_ends_its_workers_and_resume_loses_nothing(tmp_path: Path) -> None:
    # Two workers: the PPO runs finish, then both Pauses runs train and wait, one in each worker.
    spec, _, runner = start_pausing(tmp_path, [PPO_AGENT, agent(Pauses)], [0, 1], workers=2, paused=[0, 1])
    out = tmp_path / "runs"
    store = out / "faults" / "CartPole-v1"
    kept = results(store)
    assert set(kept) == {"PPO/seed-0", "PPO/seed-1"}

    os.kill(runner.pid, signal.SIGKILL)  # the runner alone, as an OOM kill or a scheduler may do
    runner.communicate(timeout=60)
    assert group_gone(runner.pid, timeout=GONE_WITHIN_S), "workers outlived their runner"
    assert not list(store.glob("Pauses/*/result.json"))

    assert resume(spec, out) == (2, 2, 0)
    now = results(store)
    assert set(now) == {"PPO/seed-0", "PPO/seed-1", "Pauses/seed-0", "Pauses/seed-1"}
    assert {run: now[run] for run in kept} == kept  # kept as they were, not redone
    assert not list(out.rglob("*.tmp"))


def test_killing_one_worker_fails_its_run_alone_and_resume_redoes_it(tmp_path: Path) -> None:
    # Seeds 0 and 1 wait in the two workers; seed 2 waits its turn.
    spec, pause, runner = start_pausing(tmp_path, [agent(Pauses)], [0, 1, 2], workers=2, paused=[0, 1])
    store = tmp_path / "runs" / "faults" / "CartPole-v1"
    os.kill(int((pause / "0.pid").read_text()), signal.SIGKILL)
    (pause / "1.go").touch()
    (pause / "2.go").touch()
    stdout, stderr = runner.communicate(timeout=120)

    assert runner.returncode == EXIT_FAILED, stderr
    assert "3 runs: 0 already finished, 2 finished now, 1 failed" in stdout
    assert f"{store}/Pauses/seed-0: the worker process died (killed by SIGKILL)" in stderr
    assert "Traceback" not in stderr
    assert "killed by SIGKILL" in (store / "Pauses" / "seed-0" / "error.txt").read_text()
    kept = results(store)
    assert set(kept) == {"Pauses/seed-1", "Pauses/seed-2"}

    assert resume(spec, tmp_path / "runs") == (2, 1, 0)
    now = results(store)
    assert set(now) == {"Pauses/seed-0", "Pauses/seed-1", "Pauses/seed-2"}
    assert {run: now[run] for run in kept} == kept


def test_sigterm_stops_the_workers_and_resume_completes(tmp_path: Path) -> None:
    spec, _, runner = start_pausing(tmp_path, [agent(Pauses)], [0], workers=1, paused=[0])
    os.kill(runner.pid, signal.SIGTERM)  # a scheduler's stop, to the runner alone
    _, stderr = runner.communicate(timeout=60)
    assert runner.returncode == EXIT_INTERRUPTED, stderr
    assert "interrupted; finished runs are kept" in stderr
    assert group_gone(runner.pid, timeout=GONE_WITHIN_S), "workers outlived the stopped command"
    assert not list((tmp_path / "runs").rglob("result.json"))

    assert resume(spec, tmp_path / "runs") == (0, 1, 0)


# one writer per run folder


def test_a_run_folder_is_held_by_one_attempt_until_its_process_dies(tmp_path: Path) -> None:
    folder = tmp_path / "seed-0"
    folder.mkdir()
    (folder / "progress.csv").write_text("an earlier attempt's file\n")
    code = (
        "import sys, time; from pathlib import Path; from rlrelax.compare.store import claim_run_dir\n"
        "with claim_run_dir(Path(sys.argv[1]), wipe=False):\n"
        "    print('held', flush=True); time.sleep(300)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with (
            pytest.raises(RunFolderBusyError, match="held by another process"),
            claim_run_dir(folder, wipe=True, wait_s=0.3),
        ):
            pass
        assert (folder / "progress.csv").exists()  # not wiped under its writer
    finally:
        holder.kill()  # kill -9: the operating system lets go of the folder
        holder.wait(timeout=30)
    with claim_run_dir(folder, wipe=True, wait_s=5) as held:
        assert held.path == folder and not list(folder.iterdir())


def test_a_writer_whose_folder_was_taken_stops_and_writes_nothing(tmp_path: Path) -> None:
    import torch

    torch.set_num_threads(1)  # as in the workers
    (run,) = spec_from_dict(tiny_spec("lost", [agent(LosesItsFolder)], [0])).runs()
    folder = run.folder(tmp_path)
    outcome = execute_run(run.to_config(), folder)
    assert not outcome.finished and outcome.error is not None
    assert "was deleted or replaced while this attempt was writing it" in outcome.error
    assert [p.name for p in folder.iterdir()] == ["other.txt"]  # the other attempt's folder: untouched
    moved = sorted(p.name for p in folder.with_name("moved").iterdir())
    assert "result.json" not in moved and "error.txt" not in moved and "evaluations.npz" not in moved


# damaged files of a finished run


@pytest.fixture(scope="module")
def finished_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A spec file and its store of two finished runs with their report: ``root/spec.toml``, ``root/runs``."""
    root = tmp_path_factory.mktemp("finished")
    spec = root / "spec.toml"
    diagnostics = {"every": 250, "draws": 3, "batch_size": 32}
    spec.write_text(to_toml({**tiny_spec("damage", [PPO_AGENT], [0, 1]), "diagnostics": diagnostics}))
    assert run_experiment(load_spec(spec), root / "runs", workers=1, progress=False).ok
    return root


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def garble(path: Path) -> None:
    # Same size, other bytes: only a checksum tells it from the file the run wrote.
    path.write_bytes(np.random.default_rng(0).integers(0, 256, path.stat().st_size, dtype=np.uint8).tobytes())


def wrong_value(path: Path) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), "final_return": "high"}))


DAMAGES: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated": (truncate, "bytes where the run wrote"),
    "garbage": (garble, "is not the file the run wrote (its SHA-256 differs)"),
    "missing": (Path.unlink, "is missing"),
}
RESULT_DAMAGES: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated": (truncate, "is not valid JSON"),
    "garbage": (garble, "is not valid JSON"),
    "wrong value": (wrong_value, "holds 'high' for final_return, expected float"),
}
CASES = [(name, kind, *DAMAGES[kind]) for name in STORE_FILES for kind in DAMAGES] + [
    ("result.json", kind, *damage) for kind, damage in RESULT_DAMAGES.items()
]


def snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(directory)): (p.stat().st_mtime_ns, p.stat().st_size) for p in directory.rglob("*")
    }


@pytest.mark.parametrize(
    ("name", "kind", "damage", "problem"), CASES, ids=[f"{name}-{kind}" for name, kind, *_ in CASES]
)
def test_a_damaged_file_stops_report_and_compare_before_any_work(
    finished_store: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    kind: str,
    damage: Callable[[Path], None],
    problem: str,
) -> None:
    shutil.copytree(finished_store, tmp_path, dirs_exist_ok=True)
    experiment = tmp_path / "runs" / "damage"
    folder = experiment / "CartPole-v1" / "PPO" / "seed-1"
    damage(folder / name)
    before = snapshot(tmp_path)

    assert main(["report", str(experiment)]) == EXIT_INVALID
    reported = capsys.readouterr().err
    assert main(["compare", str(tmp_path / "spec.toml"), "--out", str(tmp_path / "runs")]) == EXIT_INVALID
    compared = capsys.readouterr().err
    for err in (reported, compared):
        assert f"{folder / name}" in err and problem in err, err
        assert "delete that folder and run the comparison again to redo the run" in err
        assert "Traceback" not in err
    assert compared.startswith("rlrelax compare: damaged run store:")
    assert snapshot(tmp_path) == before  # no report rewritten, no run redone, nothing wiped


def test_a_finished_run_without_result_json_is_unfinished_and_redone(
    finished_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # result.json is written last: without it the run never finished, whatever its other files hold.
    shutil.copytree(finished_store, tmp_path, dirs_exist_ok=True)
    experiment = tmp_path / "runs" / "damage"
    (experiment / "CartPole-v1" / "PPO" / "seed-1" / "result.json").unlink()
    truncate(experiment / "CartPole-v1" / "PPO" / "seed-1" / "evaluations.npz")
    assert main(["report", str(experiment)]) == 0
    assert "CartPole-v1 / PPO / seed-1: unfinished (not counted)" in (experiment / "report.md").read_text()
    capsys.readouterr()
    assert (
        main(["compare", str(tmp_path / "spec.toml"), "--out", str(tmp_path / "runs"), "--no-progress"]) == 0
    )
    assert "2 runs: 1 already finished, 1 finished now, 0 failed" in capsys.readouterr().out
    with open(experiment / "summary.csv") as file:
        assert [row["runs"] for row in csv.DictReader(file)] == ["2"]


# a read-only run folder, a full disk


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """Make ``folder`` read-only. Root ignores permissions; for root, refuse what they would refuse: creating
    or removing an entry of the folder (``os.open`` with ``O_CREAT``, ``os.unlink``)."""
    folder.chmod(0o555)
    held = os.stat(folder)

    def in_folder(path: Any, dir_fd: int | None) -> bool:
        name = os.fspath(path)
        parent = (
            os.fstat(dir_fd)
            if dir_fd is not None and not os.path.isabs(name)
            else os.stat(os.path.dirname(os.path.abspath(name)))
        )
        return os.path.samestat(parent, held)

    def refusing(function: Callable[..., Any], refuses: Callable[..., bool]) -> Callable[..., Any]:
        def call(path: Any, *args: Any, dir_fd: int | None = None, **kwargs: Any) -> Any:
            if refuses(*args, **kwargs) and in_folder(path, dir_fd):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
            return function(path, *args, dir_fd=dir_fd, **kwargs)

        return call

    try:
        if os.geteuid() != 0:
            yield
            return
        creates = refusing(os.open, lambda flags, *_, **__: bool(flags & os.O_CREAT))
        removes = refusing(os.unlink, lambda *_, **__: True)
        with mock.patch.object(os, "open", creates), mock.patch.object(os, "unlink", removes):
            yield
    finally:
        folder.chmod(0o755)


def test_a_read_only_run_folder_fails_its_run_with_a_clear_error(tmp_path: Path) -> None:
    (run,) = spec_from_dict(tiny_spec("readonly", [PPO_AGENT], [0])).runs()
    folder = run.folder(tmp_path)
    folder.mkdir(parents=True)
    (folder / "progress.csv").write_text("an interrupted attempt's file\n")
    with read_only(folder):
        outcome = execute_run(run.to_config(), folder)
    assert not outcome.finished and outcome.error is not None
    assert outcome.error.startswith(
        "the run folder cannot be taken: PermissionError: [Errno 13] Permission denied"
    )
    assert "progress.csv" in outcome.error
    assert [p.name for p in folder.iterdir()] == ["progress.csv"]  # left as it was


def test_a_full_disk_fails_the_runs_cleanly_and_resume_redoes_them(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "spec.toml", "full", [agent(FullDisk)], [0, 1])
    out = tmp_path / "runs"
    store = out / "full" / "CartPole-v1" / "FullDisk"
    command = compare_command(spec, out, workers=1)
    env = {**os.environ, "PYTHONPATH": str(HERE), "RLRELAX_TEST_FULL_DISK": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)

    assert done.returncode == EXIT_FAILED, done.stderr
    assert "2 runs: 0 already finished, 0 finished now, 2 failed" in done.stdout
    # Seed 0 fails saving its model, seed 1 (same worker, the disk still full) writing its config.json;
    # neither can write its traceback, and neither is mistaken for a dead worker.
    failures = [line for line in done.stderr.splitlines() if line.startswith(f"  {store}/")]
    assert len(failures) == 2, done.stderr
    for line in failures:
        assert "OSError: [Errno 28] No space left on device" in line
        assert "its traceback could not be written to error.txt" in line
        assert "worker process died" not in line
    assert "Traceback" not in done.stderr
    assert not list(out.rglob("result.json")) and not list(out.rglob("*.tmp"))

    assert resume(spec, out) == (0, 2, 0)
    assert set(results(out / "full" / "CartPole-v1")) == {"FullDisk/seed-0", "FullDisk/seed-1"}
