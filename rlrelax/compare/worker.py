"""One run, as a worker process executes it: train, evaluate, save, and write ``result.json`` last."""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import platform
import subprocess
import tempfile
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rlrelax._platform import configure_torch_for_one_run, cpu_model
from rlrelax._validation import check_int
from rlrelax.compare.registry import import_object
from rlrelax.compare.store import (
    CONFIG_FILE,
    ERROR_FILE,
    FINAL_EVALUATION_FILE,
    GRADIENT_STATS_FILE,
    MODEL_FILE,
    RESULT_FILE,
    VECNORMALIZE_FILE,
    RunFolder,
    RunFolderBusyError,
    RunFolderLostError,
    RunResult,
    claim_run_dir,
    gradient_stats_csv,
    read_finished_run,
)

if TYPE_CHECKING:
    from stable_baselines3.common.vec_env import VecEnv, VecNormalize

__all__ = [
    "RunOutcome",
    "execute_run",
    "execute_run_in_memory",
    "final_model_returns",
    "git_commit",
    "init_worker",
    "serve",
    "vec_normalize",
    "write_final_evaluation",
]

_PACKAGES = ("rlrelax", "stable-baselines3", "torch", "gymnasium", "numpy")

# Evaluation episodes run side by side in this many envs at most, so that the policy sees a batch of
# observations per forward pass instead of one (evaluate_policy spreads the episodes evenly over them).
MAX_EVAL_ENVS = 16
#: The exit status of a worker process that ended because its runner had ended.
EXIT_ORPHANED = 1


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
    """Prepare a worker: torch set up by :func:`configure_torch_for_one_run`, Ctrl-C left to the parent.

    A terminal's Ctrl-C reaches the whole process group; the parent stops the workers itself, so a worker
    never dies half-way through writing a file of its own accord.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_torch_for_one_run()


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
        # Training results depend on the CPU (its MKL and torch kernels round differently), so it is named.
        "cpu": cpu_model(),
        "versions": versions,
        "git_commit": commit,
    }


def vec_normalize(
    env: VecEnv, normalize: dict[str, Any], kwargs: dict[str, Any], *, training: bool
) -> VecNormalize:
    """Wrap a vectorised env in SB3's ``VecNormalize`` as RL Zoo's ``normalize: true`` does.

    As in RL Zoo (``rl_zoo3/exp_manager.py``): the return statistics discount with the agent's ``gamma`` when
    its keywords give one (unless ``normalize`` gives its own), and the evaluation env does not normalise
    rewards, so its returns are the env's. An evaluation env only uses statistics: SB3's ``EvalCallback``
    copies the training env's into it before each evaluation (``sync_envs_normalization``).

    :param env: the vectorised env
    :param normalize: ``VecNormalize``'s keywords from the spec (:data:`rlrelax.compare.spec.NORMALIZE_KEYS`)
    :param kwargs: the agent's keyword arguments, for its ``gamma``
    :param training: ``True`` for the training env (it updates the statistics), ``False`` for evaluation
    :return: the wrapped env
    """
    from stable_baselines3.common.vec_env import VecNormalize

    options = dict(normalize)
    if "gamma" in kwargs:
        options.setdefault("gamma", kwargs["gamma"])
    if not training:
        options["norm_reward"] = False
    return VecNormalize(env, training=training, **options)


def _evaluation_env(
    run: dict[str, Any], episodes: int, *, seed: int | None = None, n_envs: int | None = None
) -> VecEnv:
    """The vectorised env that a run's evaluations play their episodes on.

    :param run: the run's config
    :param episodes: the episodes of one evaluation; they run in ``min(episodes, MAX_EVAL_ENVS)`` envs
    :param seed: the env's seed (default: the run's evaluation seed)
    :param n_envs: the number of envs (default: as above)
    :return: the env, without ``VecNormalize``
    """
    from stable_baselines3.common.env_util import make_vec_env

    from rlrelax.compare.envs import make_env

    return make_vec_env(
        partial(make_env, run["env_id"]),
        n_envs=min(episodes, MAX_EVAL_ENVS) if n_envs is None else n_envs,
        seed=run["evaluation"]["seed"] if seed is None else seed,
    )


def _train(run: dict[str, Any], held: RunFolder, attempt: str) -> RunResult:
    # Imported here, in the worker: the comparison's driver and `rlrelax report` never need SB3 or torch.
    from stable_baselines3.common.callbacks import ConvertCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.logger import configure

    from rlrelax.callbacks import FinalEvalCallback, GradientStatsCallback
    from rlrelax.compare.envs import make_env
    from rlrelax.compare.hyperparams import resolve_kwargs

    def still_held(_locals: dict[str, Any], _globals: dict[str, Any]) -> bool:
        # SB3 writes its files by path: stop at the first step after the folder was taken away, before SB3
        # writes into whatever folder now has its path.
        held.check()
        return True

    folder = held.path
    cls = import_object(run["algorithm_path"])
    evaluation = run["evaluation"]
    env = make_vec_env(partial(make_env, run["env_id"]), n_envs=run["n_envs"])
    eval_env = _evaluation_env(run, evaluation["episodes"])
    kwargs = resolve_kwargs(run["kwargs"])
    normalize = run.get("normalize")
    if normalize is not None:
        env = vec_normalize(env, normalize, kwargs, training=True)
        eval_env = vec_normalize(eval_env, normalize, kwargs, training=False)
    try:
        model = cls(run["policy"], env, seed=run["seed"], **kwargs)
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
        callbacks = [ConvertCallback(still_held), callback]
        diagnostics = run.get("diagnostics")
        gradient_stats = None
        if diagnostics is not None:
            # Its own generator, seeded with the run's seed: measuring never changes the training run.
            gradient_stats = GradientStatsCallback(
                every_n_steps=diagnostics["every"],
                n_draws=diagnostics["draws"],
                batch_size=diagnostics["batch_size"],
                seed=run["seed"],
            )
            callbacks.append(gradient_stats)
        start = time.perf_counter()
        model.learn(total_timesteps=run["total_timesteps"], callback=callbacks)
        wall_time = time.perf_counter() - start
        held.check()
        model.save(folder / MODEL_FILE)
        if normalize is not None:
            # The bytes VecNormalize.save writes, through the checked writer so result.json lists them.
            held.write(VECNORMALIZE_FILE, pickle.dumps(env))
        if gradient_stats is not None:
            held.write(GRADIENT_STATS_FILE, gradient_stats_csv(gradient_stats.history))
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
        attempt=attempt,
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def final_model_returns(
    folder: Path,
    episodes: int,
    *,
    seed: int | None = None,
    n_envs: int | None = None,
    deterministic: bool = True,
) -> tuple[np.ndarray, int]:
    """Play a finished run's final model for ``episodes`` episodes, as its evaluations did.

    The model (``model.zip``, with the run's ``VecNormalize`` statistics when it normalised) plays through
    SB3's ``evaluate_policy`` on the env that the run's periodic evaluations used: the same env id, seed and
    number of copies side by side (unless ``seed`` or ``n_envs`` say otherwise).

    :param folder: a finished run's folder; its files are checked first
    :param episodes: the number of episodes, >= 1
    :param seed: the env's seed (default: the run's evaluation seed)
    :param n_envs: the number of envs playing side by side (default: ``min(episodes, 16)``)
    :param deterministic: play the policy's most likely actions, as the evaluations do; ``False`` samples
        them from the global torch RNG
    :return: each episode's return, and the evaluation env's seed
    """
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize

    check_int(episodes, "episodes", minimum=1)
    config, _ = read_finished_run(folder)
    run = config["run"]
    env = _evaluation_env(run, episodes, seed=seed, n_envs=n_envs)
    try:
        if run.get("normalize") is not None:
            # The statistics at the end of training, which the last periodic evaluation also used; the
            # evaluation env does not normalise rewards, so the returns are the env's.
            env = VecNormalize.load(str(folder / VECNORMALIZE_FILE), env)
            env.training, env.norm_reward = False, False
        model = import_object(run["algorithm_path"]).load(folder / MODEL_FILE)
        returns, _ = evaluate_policy(
            model, env, n_eval_episodes=episodes, deterministic=deterministic, return_episode_rewards=True
        )
    finally:
        env.close()
    return np.asarray(returns, dtype=np.float64), run["evaluation"]["seed"] if seed is None else seed


def write_final_evaluation(folder: str | Path, episodes: int) -> str | None:
    """Give a finished run its final evaluation (:data:`~rlrelax.compare.store.FINAL_EVALUATION_FILE`).

    The run's final model plays ``episodes`` deterministic episodes (:func:`final_model_returns`); the file is
    written atomically and names the attempt and the ``model.zip`` it played, so an interrupted evaluation
    leaves the run as it was.

    :param folder: the run folder
    :param episodes: the number of episodes
    :return: ``None``, or what went wrong
    """
    path = Path(folder)
    try:
        with claim_run_dir(path, wipe=False) as held:
            returns, seed = final_model_returns(path, episodes)
            result = json.loads((path / RESULT_FILE).read_bytes())
            held.write_json(
                FINAL_EVALUATION_FILE,
                {
                    "episodes": episodes,
                    "seed": seed,
                    "returns": returns.tolist(),
                    "attempt": result["attempt"],
                    "model_sha256": result["files"][MODEL_FILE]["sha256"],
                },
            )
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None


def execute_run(run: dict[str, Any], folder: str | Path, commit: str | None = None) -> RunOutcome:
    """Execute one run into ``folder``, wiping what an earlier attempt left there.

    The attempt holds the folder from start to end (:func:`~rlrelax.compare.store.claim_run_dir`), writes
    ``config.json`` first and ``result.json`` last, atomically. A failure writes its traceback to
    ``error.txt`` instead of raising, so the other runs go on. A folder that cannot be taken (read-only,
    still held by a live attempt) fails the run untouched; a folder deleted or replaced while the run
    trains fails it with nothing more written.

    :param run: the run's resolved config (:meth:`RunSpec.to_config`)
    :param folder: the run folder
    :param commit: the git commit to record (:func:`git_commit`, computed once by the caller)
    :return: the outcome: the result, or the error
    """
    path = Path(folder)
    try:
        with claim_run_dir(path, wipe=True) as held:
            return _attempt(run, held, commit)
    except (OSError, RunFolderBusyError) as error:
        return RunOutcome(str(path), error=f"the run folder cannot be taken: {type(error).__name__}: {error}")


def _attempt(run: dict[str, Any], held: RunFolder, commit: str | None) -> RunOutcome:
    """Train into a held, empty run folder as a new attempt (its id is in config.json and result.json)."""
    attempt = uuid.uuid4().hex
    try:
        config = {"run": run, "environment": _environment(commit), "attempt": attempt}
        if run.get("diagnostics") is not None:
            # The report cannot import the agents, so what their measurement means travels with the run.
            note = getattr(import_object(run["algorithm_path"]), "gradient_diagnostics_note", None)
            if note is not None:
                config["gradient_diagnostics_note"] = note
        held.write_json(CONFIG_FILE, config)
        result = _train(run, held, attempt)
        held.finish(result)
    except RunFolderLostError as error:
        return RunOutcome(str(held.path), error=str(error))
    except Exception as error:
        message = f"{type(error).__name__}: {error}"
        try:
            held.write(ERROR_FILE, traceback.format_exc().encode())
        except (OSError, RunFolderLostError) as unwritten:  # a full disk fails this write too
            message += f" (its traceback could not be written to {ERROR_FILE}: {unwritten})"
        return RunOutcome(str(held.path), error=message)
    return RunOutcome(str(held.path), result=result)


def _end_with_parent() -> None:
    """Start a thread that ends this process the moment its parent process ends, however it ends."""
    parent = multiprocessing.parent_process()
    if parent is None:
        raise RuntimeError("not a process started by multiprocessing: it has no parent to end with")

    def watch() -> None:
        # The sentinel is the read end of a pipe whose write end only the parent holds: it turns readable
        # when the parent ends, even by kill -9. Ending at once, with no clean-up, writes nothing more.
        wait([parent.sentinel])
        os._exit(EXIT_ORPHANED)

    threading.Thread(target=watch, name="rlrelax-end-with-runner", daemon=True).start()


def serve(connection: Connection, commit: str | None) -> None:
    """Be a local worker process: execute the runs the runner sends, one at a time, until it sends no more.

    The runner sends ``(run config, run folder)`` and receives the :class:`RunOutcome`; closing its end of
    the connection tells the worker to end. The worker also ends the moment the runner ends, however it ends
    (``kill -9`` included), so a worker never goes on writing into the store without its runner.

    :param connection: the worker's end of its connection to the runner
    :param commit: the git commit to record in each run's ``config.json``
    """
    init_worker()
    _end_with_parent()
    while True:
        try:
            run, folder = connection.recv()
        except EOFError:
            return
        connection.send(execute_run(run, folder, commit))


def execute_run_in_memory(
    run: dict[str, Any], commit: str | None = None
) -> tuple[RunOutcome, dict[str, bytes]]:
    """Execute one run in a temporary folder and return its files, for workers sharing no disk with the store.

    :param run: the run's resolved config
    :param commit: the git commit to record
    :return: the outcome of :func:`execute_run` and the run folder's files (name -> content)
    """
    # Not `init_worker`: Ray cancels a task through SIGINT, which that would ignore.
    configure_torch_for_one_run()
    with tempfile.TemporaryDirectory(prefix="rlrelax-run-") as temp:
        folder = Path(temp) / "run"
        outcome = execute_run(run, folder, commit)
        files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
    return outcome, files
