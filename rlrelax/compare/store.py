"""The run store on disk: ``<out>/<experiment>/<env folder>/<agent label>/seed-<n>/``.

Each run folder holds ``config.json`` (the resolved run config, library versions, git commit),
``evaluations.npz`` (SB3's ``EvalCallback`` format), ``progress.csv`` (SB3's logger; TensorBoard events
too when asked), ``model.zip``, ``gradient_stats.csv`` when the spec asks for gradient diagnostics and the
agent has an actor gradient, on failure ``error.txt`` (the traceback), and -- written last and
atomically -- ``result.json``, the marker that the run finished, which also lists the size and SHA-256 of
every other file of the run. Only folders with a ``result.json`` count. A finished run may then get a
``final_evaluation.json`` (:data:`FINAL_EVALUATION_FILE`), written after training when the spec asks for a
final evaluation, and replaced when it asks for another number of episodes.

One attempt at a time writes a run folder: it holds the folder (:func:`claim_run_dir`) from start to end.
A finished run is read only after its files are checked against ``result.json``; a damaged one raises
:class:`DamagedRunError`, naming the file, rather than being skipped or read wrong.

Env ids may contain ``/`` (``rlrelax/CartPole-v1``) or ``:``, so the env folder is the id percent-encoded
with :func:`urllib.parse.quote` (``rlrelax%2FCartPole-v1``); :func:`env_id_from_folder` reverses it.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import json
import math
import os
import shutil
import stat
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import numpy as np

__all__ = [
    "CONFIG_FILE",
    "ERROR_FILE",
    "EVALUATIONS_FILE",
    "FINAL_EVALUATION_FILE",
    "GRADIENT_STATS_COLUMNS",
    "GRADIENT_STATS_FILE",
    "MODEL_FILE",
    "PROGRESS_FILE",
    "RESULT_FILE",
    "RUN_FILES",
    "VECNORMALIZE_FILE",
    "DamagedRunError",
    "ExperimentLockedError",
    "FinishedRun",
    "RunFolder",
    "RunFolderBusyError",
    "RunFolderLostError",
    "RunResult",
    "asks_for_diagnostics",
    "claim_run_dir",
    "env_folder",
    "env_id_from_folder",
    "experiment_lock",
    "finished_runs",
    "gradient_stats_csv",
    "read_final_evaluation",
    "read_finished_run",
    "read_gradient_stats",
    "run_dir",
    "run_status",
]

CONFIG_FILE = "config.json"
RESULT_FILE = "result.json"
ERROR_FILE = "error.txt"
EVALUATIONS_FILE = "evaluations.npz"
PROGRESS_FILE = "progress.csv"
MODEL_FILE = "model.zip"
GRADIENT_STATS_FILE = "gradient_stats.csv"
#: The ``VecNormalize`` statistics of an agent that normalises, next to its model: SB3's ``VecNormalize.save``
#: format, read back with ``VecNormalize.load(path, venv)``.
VECNORMALIZE_FILE = "vecnormalize.pkl"
#: A finished run's final evaluation (``[evaluation] final_episodes`` of a spec): its final model played for
#: that many deterministic episodes (:func:`rlrelax.compare.worker.write_final_evaluation`). Written after
#: ``result.json`` and not listed there, it names the attempt and the SHA-256 of the ``model.zip`` it played,
#: so it is never read beside another attempt's model.
FINAL_EVALUATION_FILE = "final_evaluation.json"
LOCK_FILE = ".lock"
#: The files of every finished run besides ``result.json``, which lists each with its size and SHA-256.
#: A run whose config asks for gradient diagnostics (a ``"diagnostics"`` table) also has
#: :data:`GRADIENT_STATS_FILE`, and one that normalises (a ``"normalize"`` key) :data:`VECNORMALIZE_FILE`.
RUN_FILES = (CONFIG_FILE, EVALUATIONS_FILE, PROGRESS_FILE, MODEL_FILE)
#: The columns of :data:`GRADIENT_STATS_FILE`, one row per measurement: the env steps, then the statistics of
#: :func:`rlrelax.callbacks.gradient_statistics` with their standard errors, and the measurement's seconds.
#: The bias, the cosine and the exact gradient's norm are empty cells for an agent without an exact gradient.
GRADIENT_STATS_COLUMNS = (
    "timestep",
    "variance",
    "variance_se",
    "signal",
    "signal_se",
    "snr",
    "snr_se",
    "relative_bias_sq",
    "relative_bias_sq_se",
    "cosine",
    "cosine_se",
    "exact_norm",
    "seconds",
)
#: How long an attempt waits for another process to let go of its run folder. A worker whose runner died
#: ends within milliseconds; one still holding the folder after this is alive and writing.
CLAIM_WAIT_S = 10.0
_CLAIM_POLL_S = 0.1


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


class DamagedRunError(ValueError):
    """A finished run (its folder holds a ``result.json``) whose files are missing, truncated or changed.

    :param folder: the run folder
    :param problem: what is wrong, naming the file
    """

    def __init__(self, folder: Path, problem: str) -> None:
        super().__init__(
            f"{problem}: the finished run in {folder} is damaged; delete that folder and run the comparison "
            "again to redo the run"
        )
        self.folder = folder


class RunFolderBusyError(RuntimeError):
    """Another process holds a run folder: an earlier attempt of the run is still alive and writing it."""


class RunFolderLostError(RuntimeError):
    """The run folder an attempt held was deleted or replaced: the attempt writes nothing more."""


def _digest(path: str | Path, dir_fd: int | None = None) -> dict[str, Any]:
    """The size and SHA-256 of a file, as ``result.json`` lists them."""
    sha256 = hashlib.sha256()
    size = 0
    with open(os.open(path, os.O_RDONLY, dir_fd=dir_fd), "rb") as file:
        while chunk := file.read(1 << 20):
            sha256.update(chunk)
            size += len(chunk)
    return {"size": size, "sha256": sha256.hexdigest()}


class RunFolder:
    """One attempt's hold on its run folder, from :func:`claim_run_dir`: the folder's only writer meanwhile.

    Every write goes through the held folder's descriptor, so it can never land in another folder put at the
    same path, and first checks that the path still leads to the held folder: a writer whose folder was
    deleted or replaced gets :class:`RunFolderLostError` and stops. SB3 writes its own files by path; the
    attempt calls :meth:`check` as it trains.

    :param path: the run folder
    :param descriptor: an open descriptor of the folder, ``flock``-ed by this attempt
    """

    def __init__(self, path: Path, descriptor: int) -> None:
        self.path = path
        self._descriptor = descriptor
        self._held = os.fstat(descriptor)

    def check(self) -> None:
        """Make sure the folder's path still leads to the folder this attempt holds.

        :raises RunFolderLostError: if the folder was deleted or another one put in its place
        """
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            current = None
        if current is None or not os.path.samestat(current, self._held):
            raise RunFolderLostError(
                f"{self.path} was deleted or replaced while this attempt was writing it: the attempt stopped "
                "and wrote nothing more"
            )

    def write(self, name: str, content: bytes) -> None:
        """Write one file of the folder so that it either holds all of ``content`` or is left as it was.

        :param name: the file's name in the folder
        :param content: the bytes to write
        :raises RunFolderLostError: if the folder is no longer this attempt's
        """
        self.check()
        temp = f".{name}.tmp"
        handle = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666, dir_fd=self._descriptor)
        try:
            with open(handle, "wb") as file:
                file.write(content)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, name, src_dir_fd=self._descriptor, dst_dir_fd=self._descriptor)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(temp, dir_fd=self._descriptor)
            raise

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        """Write a JSON object to one file of the folder, atomically (:meth:`write`).

        :param name: the file's name in the folder
        :param data: a JSON-serialisable dict
        """
        self.write(name, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())

    def finish(self, result: RunResult) -> None:
        """Write ``result.json``, the marker that the run finished, with the size and SHA-256 of each file.

        :param result: the run's result
        :raises RunFolderLostError: if the folder is no longer this attempt's
        """
        files = {
            name: _digest(name, self._descriptor)
            for name in sorted(os.listdir(self._descriptor))
            if name != RESULT_FILE
            and not name.startswith(".")
            and stat.S_ISREG(os.stat(name, dir_fd=self._descriptor, follow_symlinks=False).st_mode)
        }
        self.write_json(RESULT_FILE, {**result.to_json(), "files": files})

    def clear(self) -> None:
        """Remove whatever an earlier attempt left in the folder."""
        for name in os.listdir(self._descriptor):
            if stat.S_ISDIR(os.stat(name, dir_fd=self._descriptor, follow_symlinks=False).st_mode):
                shutil.rmtree(name, dir_fd=self._descriptor)
            else:
                os.unlink(name, dir_fd=self._descriptor)


def _lock(folder: Path) -> int | None:
    """An ``flock``-ed descriptor of ``folder``, or ``None`` while another process holds it."""
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


@contextmanager
def claim_run_dir(folder: Path, *, wipe: bool, wait_s: float = CLAIM_WAIT_S) -> Iterator[RunFolder]:
    """Hold a run folder for one attempt, creating it if need be: no other attempt can take it meanwhile.

    The hold is an ``flock`` on the folder, which the operating system releases when the holder dies (even by
    ``kill -9``): a writer that is still alive keeps every other attempt out; a dead one, nobody.

    :param folder: the run folder
    :param wipe: remove whatever an earlier attempt left in the folder
    :param wait_s: how long to wait for another process to let go of the folder
    :raises RunFolderBusyError: if another process still holds the folder after ``wait_s`` seconds
    :raises OSError: if the folder cannot be created or emptied (read-only, say)
    """
    deadline = time.monotonic() + wait_s
    while True:
        folder.mkdir(parents=True, exist_ok=True)
        descriptor = _lock(folder)
        if descriptor is not None:
            held = RunFolder(folder, descriptor)
            try:
                held.check()
                break
            except RunFolderLostError:  # replaced while this waited for it: take the folder now there
                os.close(descriptor)
                continue
        if time.monotonic() >= deadline:
            raise RunFolderBusyError(
                f"{folder} is held by another process, an attempt of this run that is still running (a "
                "worker of an rlrelax command that was killed?): wait for it to end or stop it, then run the "
                "command again"
            )
        time.sleep(_CLAIM_POLL_S)
    try:
        if wipe:
            held.clear()
        yield held
    finally:
        os.close(descriptor)


def _read_object(folder: Path, path: Path) -> dict[str, Any]:
    """The JSON object in one file of a finished run."""
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise DamagedRunError(folder, f"{path} is missing") from None
    except OSError as error:
        raise DamagedRunError(folder, f"{path} cannot be read ({error.strerror})") from error
    except ValueError as error:  # not JSON, or not UTF-8
        raise DamagedRunError(folder, f"{path} is not valid JSON ({error})") from error
    if not isinstance(data, dict):
        raise DamagedRunError(folder, f"{path} holds a JSON {type(data).__name__}, not an object")
    return data


def _is_digest(entry: Any) -> bool:
    return (
        isinstance(entry, dict)
        and type(entry.get("size")) is int
        and isinstance(entry.get("sha256"), str)
        and len(entry) == 2
    )


def _require_listed(folder: Path, listed: Mapping[str, Any], names: Sequence[str]) -> None:
    """Refuse a ``result.json`` that leaves out a file every run of its kind writes."""
    missing = [name for name in names if name not in listed]
    if missing:
        raise DamagedRunError(folder, f"{folder / RESULT_FILE} does not list the run's file(s) {missing}")


def asks_for_diagnostics(config: Mapping[str, Any]) -> bool:
    """Whether a run measured gradient diagnostics: its spec asked and its agent has an actor gradient.

    :param config: the whole ``config.json`` of the run
    :return: whether the run wrote :data:`GRADIENT_STATS_FILE`
    """
    run = config.get("run")
    return isinstance(run, dict) and isinstance(run.get("diagnostics"), dict)


def _check_files(folder: Path, listed: Any) -> dict[str, Any]:
    """Check the run's files against the sizes and SHA-256 that its ``result.json`` lists; return the list."""
    marker = folder / RESULT_FILE
    if not (
        isinstance(listed, dict)
        and all(name not in ("", ".", "..") and Path(name).name == name for name in listed)
        and all(_is_digest(entry) for entry in listed.values())
    ):
        raise DamagedRunError(folder, f"{marker} does not list the run's files with their size and SHA-256")
    _require_listed(folder, listed, RUN_FILES)
    for name, expected in listed.items():
        path = folder / name
        try:
            actual = _digest(path)
        except FileNotFoundError:
            raise DamagedRunError(folder, f"{path} is missing") from None
        except OSError as error:
            raise DamagedRunError(folder, f"{path} cannot be read ({error.strerror})") from error
        if actual["size"] != expected["size"]:
            raise DamagedRunError(
                folder,
                f"{path} has {actual['size']} bytes where the run wrote {expected['size']} (truncated or "
                "overwritten)",
            )
        if actual["sha256"] != expected["sha256"]:
            raise DamagedRunError(folder, f"{path} is not the file the run wrote (its SHA-256 differs)")
    return listed


def read_finished_run(folder: Path) -> tuple[dict[str, Any], RunResult]:
    """Read a finished run's ``config.json`` and ``result.json``, after checking every file of the run.

    :param folder: a run folder holding a ``result.json``
    :return: the whole ``config.json`` and the result
    :raises DamagedRunError: naming the first file that is missing, truncated or not what the run wrote
    """
    marker = folder / RESULT_FILE
    data = _read_object(folder, marker)
    try:
        result = RunResult.from_json(data, marker)
    except ValueError as error:
        raise DamagedRunError(folder, str(error)) from error
    listed = _check_files(folder, data.get("files"))
    config = _read_object(folder, folder / CONFIG_FILE)
    if asks_for_diagnostics(config):
        _require_listed(folder, listed, [GRADIENT_STATS_FILE])
    run = config.get("run")
    if isinstance(run, dict) and run.get("normalize") is not None:
        _require_listed(folder, listed, [VECNORMALIZE_FILE])
    return config, result


def read_final_evaluation(folder: Path) -> np.ndarray | None:
    """Read a finished run's final evaluation, if it has one (:data:`FINAL_EVALUATION_FILE`).

    The file must name the attempt of the run's ``result.json`` and the SHA-256 that it lists for the
    ``model.zip``: the final evaluation of that model and no other. The run's own files are checked by
    :func:`read_finished_run`, not here.

    :param folder: a finished run's folder
    :return: the return of each episode of the final evaluation, or ``None`` when the run has none
    :raises DamagedRunError: if the file is not a final evaluation of this run's model
    """
    path = folder / FINAL_EVALUATION_FILE
    if not path.exists():
        return None
    data = _read_object(folder, path)
    result = _read_object(folder, folder / RESULT_FILE)
    returns = data.get("returns")
    if not (
        isinstance(returns, list)
        and returns
        and all(type(value) in (int, float) and math.isfinite(value) for value in returns)
        and data.get("episodes") == len(returns)
        and type(data.get("seed")) is int
    ):
        raise DamagedRunError(folder, f"{path} does not hold its episodes' returns (finite numbers)")
    model = result.get("files", {}).get(MODEL_FILE, {})
    if data.get("attempt") != result.get("attempt") or data.get("model_sha256") != model.get("sha256"):
        raise DamagedRunError(folder, f"{path} is the final evaluation of another attempt's {MODEL_FILE}")
    return np.asarray(returns, dtype=np.float64)


def run_status(folder: Path, run_config: dict[str, Any]) -> str:
    """Return the store's state of a run: ``"finished"``, ``"conflict"``, ``"unfinished"`` or ``"absent"``.

    ``"conflict"`` is a finished run whose stored config differs from ``run_config``; an unfinished run
    is debris of an interrupted or failed attempt, to be wiped and redone whatever its config.

    :param folder: the run folder
    :param run_config: the run's resolved config (the ``"run"`` part of ``config.json``)
    :return: the status
    :raises DamagedRunError: if the run finished but its files are damaged
    """
    if not folder.exists():
        return "absent"
    if not (folder / RESULT_FILE).exists():
        return "unfinished"
    config, _ = read_finished_run(folder)
    return "finished" if config.get("run") == run_config else "conflict"


def gradient_stats_csv(measurements: Sequence[Mapping[str, float]]) -> bytes:
    """Return the measurements of a :class:`rlrelax.callbacks.GradientStatsCallback` as a run's file.

    :param measurements: the callback's ``history``: per measurement its statistics and ``timesteps``
    :return: the file's content: a header of :data:`GRADIENT_STATS_COLUMNS`, then one row per measurement
    """

    def cell(measurement: Mapping[str, float], column: str) -> str:
        if column == "timestep":
            return str(int(measurement["timesteps"]))
        return repr(float(measurement[column])) if column in measurement else ""

    rows = [",".join(GRADIENT_STATS_COLUMNS)]
    rows += [",".join(cell(m, column) for column in GRADIENT_STATS_COLUMNS) for m in measurements]
    return ("\n".join(rows) + "\n").encode()


def read_gradient_stats(path: Path) -> dict[str, np.ndarray]:
    """Read a :data:`GRADIENT_STATS_FILE` back, column by column.

    :param path: the file
    :return: each column of :data:`GRADIENT_STATS_COLUMNS`: ``timestep`` as int64, the others as float64
        with NaN for empty cells
    :raises ValueError: if the file does not have the columns of :data:`GRADIENT_STATS_COLUMNS`
    """
    with open(path, newline="") as file:
        rows = list(csv.reader(file))
    if not rows or tuple(rows[0]) != GRADIENT_STATS_COLUMNS:
        raise ValueError(f"{path} does not start with the header {','.join(GRADIENT_STATS_COLUMNS)}")
    values = np.array([[float(cell) if cell else math.nan for cell in row] for row in rows[1:]])
    values = values.reshape(-1, len(GRADIENT_STATS_COLUMNS))
    columns = {name: values[:, index] for index, name in enumerate(GRADIENT_STATS_COLUMNS)}
    columns["timestep"] = columns["timestep"].astype(np.int64)
    return columns


_JSON_TYPES: dict[str, type] = {"float": float, "int": int, "bool": bool, "str": str, "None": type(None)}


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
        :raises ValueError: naming the file and the missing key or the value of a wrong type
        """
        names = [field.name for field in fields(cls)]
        missing = [name for name in names if name not in data]
        if missing:
            raise ValueError(f"{source} lacks the key(s) {missing} of a run result")
        for field in fields(cls):
            value = data[field.name]
            # The annotations are strings here (postponed evaluation): "float", "bool | None", ...
            allowed = [_JSON_TYPES[name] for name in str(field.type).split(" | ")]
            # JSON has no separate integers for floats; a bool is an int to Python but not to JSON
            if not any(type(value) is kind or (kind is float and type(value) is int) for kind in allowed):
                raise ValueError(f"{source} holds {value!r} for {field.name}, expected {field.type}")
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
    :param gradient_stats: the run's gradient diagnostics (:func:`read_gradient_stats`), or ``None`` when it
        measured none (:func:`asks_for_diagnostics`)
    :param final_evaluation: the return of each episode of the run's final evaluation
        (:func:`read_final_evaluation`), or ``None`` when it has none
    """

    env_id: str
    label: str
    seed: int
    config: dict[str, Any]
    result: RunResult
    timesteps: np.ndarray
    returns: np.ndarray
    gradient_stats: dict[str, np.ndarray] | None = None
    final_evaluation: np.ndarray | None = None

    @property
    def final_return(self) -> float:
        """The final model's mean return: of its final evaluation if it has one, else of its last one."""
        episodes = self.returns[-1] if self.final_evaluation is None else self.final_evaluation
        return float(np.mean(episodes))

    @property
    def final_episodes(self) -> int:
        """The number of episodes that :attr:`final_return` averages."""
        return len(self.returns[-1] if self.final_evaluation is None else self.final_evaluation)

    @property
    def path(self) -> str:
        """The run's place in the store, relative to the experiment folder."""
        return f"{env_folder(self.env_id)}/{self.label}/seed-{self.seed}"


def finished_runs(experiment_dir: Path) -> list[FinishedRun]:
    """Return every finished run under an experiment folder, sorted by env id, label and seed.

    Folders without ``result.json`` (running, interrupted or failed runs) are ignored; every folder with one
    is checked (:func:`read_finished_run`).

    :param experiment_dir: ``<out>/<experiment>``
    :return: the finished runs
    :raises DamagedRunError: naming the first damaged file of a finished run
    """
    runs = []
    for marker in Path(experiment_dir).glob(f"*/*/seed-*/{RESULT_FILE}"):
        folder = marker.parent
        seed_text = folder.name.removeprefix("seed-")
        if not seed_text.lstrip("-").isdigit():
            continue
        config, result = read_finished_run(folder)
        # Checked against result.json: this is the file the run wrote
        with np.load(folder / EVALUATIONS_FILE) as evaluations:
            timesteps = np.asarray(evaluations["timesteps"], dtype=np.int64)
            returns = np.asarray(evaluations["results"], dtype=np.float64)
        diagnostics = (
            read_gradient_stats(folder / GRADIENT_STATS_FILE) if asks_for_diagnostics(config) else None
        )
        runs.append(
            FinishedRun(
                env_id=env_id_from_folder(folder.parent.parent.name),
                label=folder.parent.name,
                seed=int(seed_text),
                config=config,
                result=result,
                timesteps=timesteps,
                returns=returns.reshape(len(timesteps), -1),
                gradient_stats=diagnostics,
                final_evaluation=read_final_evaluation(folder),
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
