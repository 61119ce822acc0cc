"""One run, as a worker process executes it: train, evaluate, save, and write ``result.json`` last."""

from __future__ import annotations

import platform
import subprocess
import tempfile
import time
import traceback
import uuid
from datetime import UTC, datetime
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import EvalCallback

from rlrelax.compare.store import (
    CONFIG_FILE,
    ERROR_FILE,
    MODEL_FILE,
    RESULT_FILE,
    reset_run_dir,
    write_json_atomic,
)

__all__ = ["FinalEvalCallback", "execute_run", "execute_run_in_memory", "git_commit", "init_worker"]

_PACKAGES = ("rlrelax", "stable-baselines3", "torch", "gymnasium", "numpy")

# Evaluation episodes run side by side in this many envs at most, so that the policy sees a batch of
# observations per forward pass instead of one (evaluate_policy spreads the episodes evenly over them).
MAX_EVAL_ENVS = 16


class FinalEvalCallback(EvalCallback):
    """SB3's ``EvalCallback`` that also evaluates the final model when training ends.

    ``EvalCallback`` evaluates every ``eval_freq`` calls, during rollout collection, so the model that
    training ends with is usually never evaluated. The extra evaluation goes through ``EvalCallback``'s own
    code, so ``evaluations.npz`` keeps its format, with one more row at the final ``num_timesteps``.
    """

    def _on_training_end(self) -> None:
        self.num_timesteps = self.model.num_timesteps
        if self.evaluations_timesteps and self.evaluations_timesteps[-1] == self.num_timesteps:
            return
        every = self.eval_freq
        self.eval_freq = 1  # makes the `n_calls % eval_freq == 0` test of `_on_step` true once
        try:
            self._on_step()
        finally:
            self.eval_freq = every


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


def _train(run: dict[str, Any], folder: Path) -> dict[str, Any]:
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.logger import configure

    from rlrelax.compare.hyperparams import resolve_kwargs
    from rlrelax.compare.registry import import_object
    from rlrelax.compare.spec import make_env

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
    return {
        "final_return": final_return,
        "final_timestep": int(callback.evaluations_timesteps[-1]),
        "n_evaluations": len(callback.evaluations_timesteps),
        "threshold": evaluation["threshold"],
        "solved": bool(evaluation["threshold"] is not None and final_return >= evaluation["threshold"]),
        "wall_time_s": wall_time,
    }


def execute_run(run: dict[str, Any], folder: str | Path, commit: str | None = None) -> dict[str, Any]:
    """Execute one run into ``folder``, wiping what an earlier attempt left there.

    Writes ``config.json`` first and ``result.json`` last (atomically); a failure writes its traceback to
    ``error.txt`` instead of raising, so the other runs go on.

    :param run: the run's resolved config (:meth:`RunSpec.to_config`)
    :param folder: the run folder
    :param commit: the git commit to record (:func:`git_commit`, computed once by the caller)
    :return: the outcome: ``status`` (``"finished"`` or ``"failed"``), ``folder``, and the result or ``error``
    """
    path = Path(folder)
    reset_run_dir(path)
    write_json_atomic(path / CONFIG_FILE, {"run": run, "environment": _environment(commit)})
    try:
        result = _train(run, path)
    except Exception as error:
        (path / ERROR_FILE).write_text(traceback.format_exc())
        return {"status": "failed", "folder": str(path), "error": f"{type(error).__name__}: {error}"}
    result["attempt"] = uuid.uuid4().hex
    result["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    write_json_atomic(path / RESULT_FILE, result)
    return {"status": "finished", "folder": str(path), **result}


def execute_run_in_memory(
    run: dict[str, Any], commit: str | None = None
) -> tuple[dict[str, Any], dict[str, bytes]]:
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
