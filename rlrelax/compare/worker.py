"""One run, as a worker process executes it: train, evaluate, save, and write ``result.json`` last."""

from __future__ import annotations

import platform
import subprocess
import tempfile
import time
import traceback
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from rlrelax.compare.store import (
    CONFIG_FILE,
    ERROR_FILE,
    MODEL_FILE,
    RESULT_FILE,
    RunResult,
    reset_run_dir,
    write_json_atomic,
)

__all__ = ["RunOutcome", "execute_run", "execute_run_in_memory", "git_commit", "init_worker"]

_PACKAGES = ("rlrelax", "stable-baselines3", "torch", "gymnasium", "numpy")

# Evaluation episodes run side by side in this many envs at most, so that the policy sees a batch of
# observations per forward pass instead of one (evaluate_policy spreads the episodes evenly over them).
MAX_EVAL_ENVS = 16


@dataclass(frozen=True)
class RunOutcome:
    """What executing one run gave: its result, or the error that stopped it.

    :param folder: the run folder
    :param result: the finished run's result (``None`` when it failed)
    :param error: what went wrong (``None`` when it finished); the traceback is in the folder's ``error.txt``
    """

    folder: str
    result: RunResult | None = None
    error: str | None = None

    @property
    def finished(self) -> bool:
        """Whether the run finished (its ``result.json`` is written)."""
        return self.result is not None


def init_worker() -> None:
    """Prepare a worker process: one torch thread (runs are the parallel unit), Ctrl-C left to the parent.

    A terminal's Ctrl-C reaches the whole process group; the parent stops the workers itself, so a worker
    never dies half-way through writing a file of its own accord.
    """
    import signal

    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)


def git_commit() -> str | None:
    """Return the git commit of the rlrelax source tree, or ``None`` when it is not a git checkout.

    :return: the commit hash, with ``+dirty`` when the tree has uncommitted changes
    """
    import rlrelax

    source = Path(rlrelax.__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if dirty else head


def _environment(commit: str | None) -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for package in _PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "git_commit": commit,
    }


def _train(run: dict[str, Any], folder: Path) -> RunResult:
    # Imported here, in the worker: the comparison's driver and `rlrelax report` never need SB3 or torch.
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.logger import configure

    from rlrelax.callbacks import FinalEvalCallback
    from rlrelax.compare.envs import make_env
    from rlrelax.compare.hyperparams import resolve_kwargs
    from rlrelax.compare.registry import import_object

    cls = import_object(run["algorithm_path"])
    evaluation = run["evaluation"]
    make = partial(make_env, run["env_id"])
    env = make_vec_env(make, n_envs=run["n_envs"])
    eval_env = make_vec_env(make, n_envs=min(evaluation["episodes"], MAX_EVAL_ENVS), seed=evaluation["seed"])
    try:
        model = cls(run["policy"], env, seed=run["seed"], **resolve_kwargs(run["kwargs"]))
        model.set_logger(configure(str(folder), ["csv", "tensorboard"] if run["tensorboard"] else ["csv"]))
        callback = FinalEvalCallback(
            eval_env,
            n_eval_episodes=evaluation["episodes"],
            # EvalCallback counts calls, and each call is one step of every parallel env.
            eval_freq=max(evaluation["every"] // run["n_envs"], 1),
            log_path=str(folder),
            deterministic=True,
            verbose=0,
        )
        start = time.perf_counter()
        model.learn(total_timesteps=run["total_timesteps"], callback=callback)
        wall_time = time.perf_counter() - start
        model.save(folder / MODEL_FILE)
        model.logger.close()
    finally:
        env.close()
        eval_env.close()
    final_return = float(np.mean(callback.evaluations_results[-1]))
    threshold = evaluation["threshold"]
    return RunResult(
        final_return=final_return,
        final_timestep=int(callback.evaluations_timesteps[-1]),
        n_evaluations=len(callback.evaluations_timesteps),
        threshold=threshold,
        solved=None if threshold is None else final_return >= threshold,
        wall_time_s=wall_time,
        attempt=uuid.uuid4().hex,
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def execute_run(run: dict[str, Any], folder: str | Path, commit: str | None = None) -> RunOutcome:
    """Execute one run into ``folder``, wiping what an earlier attempt left there.

    Writes ``config.json`` first and ``result.json`` last (atomically); a failure writes its traceback to
    ``error.txt`` instead of raising, so the other runs go on.

    :param run: the run's resolved config (:meth:`RunSpec.to_config`)
    :param folder: the run folder
    :param commit: the git commit to record (:func:`git_commit`, computed once by the caller)
    :return: the outcome: the result, or the error
    """
    path = Path(folder)
    reset_run_dir(path)
    write_json_atomic(path / CONFIG_FILE, {"run": run, "environment": _environment(commit)})
    try:
        result = _train(run, path)
    except Exception as error:
        (path / ERROR_FILE).write_text(traceback.format_exc())
        return RunOutcome(str(path), error=f"{type(error).__name__}: {error}")
    write_json_atomic(path / RESULT_FILE, result.to_json())
    return RunOutcome(str(path), result=result)


def execute_run_in_memory(
    run: dict[str, Any], commit: str | None = None
) -> tuple[RunOutcome, dict[str, bytes]]:
    """Execute one run in a temporary folder and return its files, for workers sharing no disk with the store.

    :param run: the run's resolved config
    :param commit: the git commit to record
    :return: the outcome of :func:`execute_run` and the run folder's files (relative path -> content)
    """
    import torch

    # Not `init_worker`: Ray cancels a task through SIGINT, which that would ignore.
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="rlrelax-run-") as temp:
        folder = Path(temp) / "run"
        outcome = execute_run(run, folder, commit)
        files = {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
    return outcome, files
