"""The run store on disk: ``<out>/<experiment>/<env folder>/<agent label>/seed-<n>/``.

Each run folder holds ``config.json`` (the resolved run config, library versions, git commit),
``evaluations.npz`` (SB3's ``EvalCallback`` format), ``progress.csv`` (SB3's logger; TensorBoard events
too when asked), ``model.zip``, on failure ``error.txt`` (the traceback), and -- written last and
atomically -- ``result.json``, the marker that the run finished. Only folders with a ``result.json`` count.

Env ids may contain ``/`` (``rlrelax/CartPole-v1``) or ``:``, so the env folder is the id percent-encoded
with :func:`urllib.parse.quote` (``rlrelax%2FCartPole-v1``); :func:`env_id_from_folder` reverses it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import numpy as np

__all__ = [
    "CONFIG_FILE",
    "ERROR_FILE",
    "EVALUATIONS_FILE",
    "MODEL_FILE",
    "PROGRESS_FILE",
    "RESULT_FILE",
    "ExperimentLockedError",
    "FinishedRun",
    "RunResult",
    "env_folder",
    "env_id_from_folder",
    "experiment_lock",
    "finished_runs",
    "read_json",
    "reset_run_dir",
    "run_dir",
    "run_status",
    "write_json_atomic",
]

CONFIG_FILE = "config.json"
RESULT_FILE = "result.json"
ERROR_FILE = "error.txt"
EVALUATIONS_FILE = "evaluations.npz"
PROGRESS_FILE = "progress.csv"
MODEL_FILE = "model.zip"
LOCK_FILE = ".lock"


def env_folder(env_id: str) -> str:
    """Return the folder name of an env id: the id percent-encoded, so ``/`` and ``:`` cannot nest folders.

    :param env_id: a Gymnasium env id
    :return: a single, reversible path component
    """
    return quote(env_id, safe="")


def env_id_from_folder(folder: str) -> str:
    """Return the env id a folder name stands for (the inverse of :func:`env_folder`).

    :param folder: the folder name
    :return: the env id
    """
    return unquote(folder)


def run_dir(out: Path, experiment: str, env_id: str, label: str, seed: int) -> Path:
    """Return the folder of one run.

    :param out: the store's root (``runs`` by default)
    :param experiment: the experiment name
    :param env_id: the env id
    :param label: the agent label
    :param seed: the run seed
    :return: ``out/experiment/<env folder>/label/seed-<seed>``
    """
    return Path(out) / experiment / env_folder(env_id) / label / f"seed-{seed}"


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON so that ``path`` either holds all of it or does not exist (temp file + replace).

    :param path: the destination
    :param data: a JSON-serialisable dict
    """
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(temp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
        with os.fdopen(handle, "w") as file:
            json.dump(data, file, indent=2, sort_keys=True)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_json(path: Path) -> dict[str, Any]:
    """Return the JSON object stored at ``path``.

    :param path: the file
    :return: its content
    :raises ValueError: if the file does not hold a JSON object
    """
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds {type(data).__name__}, expected a JSON object")
    return data


def run_status(folder: Path, run_config: dict[str, Any]) -> str:
    """Return the store's state of a run: ``"finished"``, ``"conflict"``, ``"unfinished"`` or ``"absent"``.

    ``"conflict"`` is a finished run whose stored config differs from ``run_config``; an unfinished run
    is debris of an interrupted or failed attempt, to be wiped and redone whatever its config.

    :param folder: the run folder
    :param run_config: the run's resolved config (the ``"run"`` part of ``config.json``)
    :return: the status
    """
    if not folder.exists():
        return "absent"
    if not (folder / RESULT_FILE).exists():
        return "unfinished"
    stored = read_json(folder / CONFIG_FILE).get("run")
    return "finished" if stored == run_config else "conflict"


def reset_run_dir(folder: Path) -> None:
    """Remove whatever an earlier attempt left in ``folder`` and create it empty.

    :param folder: the run folder
    """
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


@dataclass(frozen=True)
class RunResult:
    """The content of a finished run's ``result.json``.

    :param final_return: the final model's mean evaluation return
    :param final_timestep: the env steps at the final evaluation
    :param n_evaluations: the number of evaluations, the final one included
    :param threshold: the success threshold, or ``None`` for an env without one
    :param solved: whether ``final_return`` reached the threshold (``None`` without a threshold)
    :param wall_time_s: the wall time of ``learn``, periodic evaluations included
    :param attempt: the id of the attempt that wrote the result
    :param finished_at: when, in ISO 8601 (UTC, seconds)
    """

    final_return: float
    final_timestep: int
    n_evaluations: int
    threshold: float | None
    solved: bool | None
    wall_time_s: float
    attempt: str
    finished_at: str

    def to_json(self) -> dict[str, Any]:
        """:return: the dict written to ``result.json``"""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any], source: Path) -> RunResult:
        """Read a result back from its ``result.json`` content.

        :param data: the parsed JSON object
        :param source: the file, for messages
        :return: the result
        :raises ValueError: naming the file and the missing keys
        """
        names = [field.name for field in fields(cls)]
        missing = [name for name in names if name not in data]
        if missing:
            raise ValueError(f"{source} lacks the key(s) {missing} of a run result")
        return cls(**{name: data[name] for name in names})


@dataclass(frozen=True)
class FinishedRun:
    """One finished run as the report reads it.

    :param env_id: the env id
    :param label: the agent label
    :param seed: the run seed
    :param config: the whole ``config.json``
    :param result: its ``result.json``
    :param timesteps: the env steps of each evaluation, shape ``(n_evals,)``
    :param returns: the episode returns of each evaluation, shape ``(n_evals, n_episodes)``
    """

    env_id: str
    label: str
    seed: int
    config: dict[str, Any]
    result: RunResult
    timesteps: np.ndarray
    returns: np.ndarray

    @property
    def path(self) -> str:
        """The run's place in the store, relative to the experiment folder."""
        return f"{env_folder(self.env_id)}/{self.label}/seed-{self.seed}"


def finished_runs(experiment_dir: Path) -> list[FinishedRun]:
    """Return every finished run under an experiment folder, sorted by env id, label and seed.

    Folders without ``result.json`` (running, interrupted or failed runs) are ignored.

    :param experiment_dir: ``<out>/<experiment>``
    :return: the finished runs
    """
    runs = []
    for marker in Path(experiment_dir).glob(f"*/*/seed-*/{RESULT_FILE}"):
        folder = marker.parent
        seed_text = folder.name.removeprefix("seed-")
        if not seed_text.lstrip("-").isdigit():
            continue
        with np.load(folder / EVALUATIONS_FILE) as evaluations:
            timesteps = np.asarray(evaluations["timesteps"], dtype=np.int64)
            returns = np.asarray(evaluations["results"], dtype=np.float64)
        runs.append(
            FinishedRun(
                env_id=env_id_from_folder(folder.parent.parent.name),
                label=folder.parent.name,
                seed=int(seed_text),
                config=read_json(folder / CONFIG_FILE),
                result=RunResult.from_json(read_json(marker), marker),
                timesteps=timesteps,
                returns=returns.reshape(len(timesteps), -1),
            )
        )
    return sorted(runs, key=lambda run: (run.env_id, run.label, run.seed))


class ExperimentLockedError(RuntimeError):
    """Another process holds an experiment folder's lock."""


@contextmanager
def experiment_lock(experiment_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on an experiment folder, so two ``compare`` commands never run the same runs.

    The lock is an ``flock``: the operating system releases it when the process dies, even by ``kill -9``.

    :param experiment_dir: ``<out>/<experiment>``
    :raises ExperimentLockedError: if another process holds it
    """
    experiment_dir.mkdir(parents=True, exist_ok=True)
    with open(experiment_dir / LOCK_FILE, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ExperimentLockedError(
                f"another rlrelax process is running the runs in {experiment_dir}: wait for it to end, or "
                "stop it (its finished runs are kept) and run this command again"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
