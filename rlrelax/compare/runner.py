"""Run the grid of a spec (env x agent x seed) in worker processes or on Ray, resuming what is finished."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from multiprocessing.context import SpawnContext
from pathlib import Path
from typing import Any, Literal

from rlrelax._validation import check_choice, check_int
from rlrelax.compare.spec import RunSpec, Spec, check_store
from rlrelax.compare.store import (
    ERROR_FILE,
    RESULT_FILE,
    FinishedRun,
    RunFolderBusyError,
    claim_run_dir,
    experiment_lock,
    finished_runs,
    read_final_evaluation,
    run_status,
)
from rlrelax.compare.worker import (
    RunOutcome,
    execute_run_in_memory,
    git_commit,
    init_worker,
    serve,
    write_final_evaluation,
)

__all__ = ["CompareResult", "default_workers", "run_experiment"]

Backend = Literal["local", "ray"]


@dataclass
class CompareResult:
    """What a call of :func:`run_experiment` did.

    :param experiment_dir: ``<out>/<experiment>``
    :param total: the number of runs in the spec
    :param skipped: runs already finished in the store, kept as they were
    :param finished: outcomes of the runs finished by this call
    :param failed: outcomes of the runs that failed in this call
    :param evaluated: the folders of the runs given their final evaluation by this call
    :param failed_evaluations: the final evaluations that failed in this call (their runs stay finished)
    """

    experiment_dir: Path
    total: int
    skipped: int
    finished: list[RunOutcome] = field(default_factory=list)
    failed: list[RunOutcome] = field(default_factory=list)
    evaluated: list[str] = field(default_factory=list)
    failed_evaluations: list[RunOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every run of the spec is finished, with the final evaluation it asks for."""
        return (
            not self.failed
            and not self.failed_evaluations
            and self.skipped + len(self.finished) == self.total
        )


def default_workers() -> int:
    """Return the number of CPU cores this process may use: one run per core.

    :return: the default worker count
    """
    return len(os.sched_getaffinity(0))


class _Progress:
    """Runs done / total with elapsed time and ETA (tqdm when installed), and one line per finished run."""

    def __init__(self, total: int, done: int, enabled: bool) -> None:
        self._bar: Any = None
        self._enabled = enabled
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(
                    total=total, initial=done, unit="run", desc="runs", file=sys.stderr, smoothing=0
                )
        self._total = total
        self._done = done
        self._start = time.monotonic()

    def line(self, text: str) -> None:
        if not self._enabled:
            return
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def advance(self, text: str) -> None:
        self._done += 1
        if self._bar is not None:
            self.line(text)
            self._bar.update(1)
        else:
            elapsed = time.monotonic() - self._start
            self.line(f"[{self._done}/{self._total}, {elapsed:.0f}s] {text}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _describe(run: RunSpec, outcome: RunOutcome) -> str:
    name = f"{run.env_id} {run.agent.label} seed={run.seed}"
    result = outcome.result
    if result is None:
        error_file = Path(outcome.folder) / ERROR_FILE
        where = f" (traceback in {error_file})" if error_file.exists() else ""
        return f"FAILED {name}: {outcome.error}{where}"
    verdict = (
        ""
        if result.threshold is None
        else (f" ({'solved' if result.solved else 'not solved'}, threshold {result.threshold:g})")
    )
    return (
        f"done   {name}: final return {result.final_return:.1f}{verdict} after {result.final_timestep} "
        f"steps, {result.wall_time_s:.1f}s"
    )


def _failure(run: RunSpec, out: Path, message: str) -> RunOutcome:
    """Record a run whose worker died without reporting (its process was killed, or Ray lost it)."""
    folder = run.folder(out)
    try:
        with claim_run_dir(folder, wipe=False) as held:
            held.write(ERROR_FILE, (message + "\n").encode())
    except (OSError, RunFolderBusyError) as error:
        message += f" ({ERROR_FILE} could not be written: {error})"
    return RunOutcome(str(folder), error=message)


def _ending(exitcode: int | None) -> str:
    """How a process ended, from its exit code."""
    if exitcode is not None and exitcode < 0:
        return f"killed by {signal.Signals(-exitcode).name}"
    return f"exit status {exitcode}"


#: Called with each run and its outcome as it ends.
Done = Callable[[RunSpec, RunOutcome], None]


class _Worker:
    """A local worker process (:func:`~rlrelax.compare.worker.serve`) and the run it is executing.

    :param context: the multiprocessing context that starts it
    :param commit: the git commit to record in each run's config
    """

    def __init__(self, context: SpawnContext, commit: str | None) -> None:
        self.connection, theirs = context.Pipe()
        self.process = context.Process(target=serve, args=(theirs, commit), name="rlrelax-worker")
        self.process.start()
        # The worker's end lives in the worker alone, so the worker's death reads as end of file here.
        theirs.close()
        self.run: RunSpec | None = None

    def give(self, run: RunSpec, out: Path) -> None:
        """Send the worker a run to execute.

        :param run: the run
        :param out: the store's root
        """
        self.connection.send((run.to_config(), str(run.folder(out))))
        self.run = run

    def outcome(self, run: RunSpec, out: Path) -> RunOutcome:
        """Receive the outcome of the worker's run; a worker that died first fails the run alone.

        :param run: the worker's run
        :param out: the store's root
        :return: the outcome
        """
        try:
            outcome: RunOutcome = self.connection.recv()
        except (EOFError, OSError):
            self.process.join()
            return _failure(run, out, f"the worker process died ({_ending(self.process.exitcode)})")
        return outcome


def _run_local(pending: list[RunSpec], out: Path, workers: int, commit: str | None, done: Done) -> None:
    # spawn: a forked child would inherit the parent's torch threads and locks; each worker imports afresh.
    context = multiprocessing.get_context("spawn")
    todo = deque(pending)
    pool: list[_Worker] = []
    try:
        for _ in range(workers):
            pool.append(_Worker(context, commit))
            pool[-1].give(todo.popleft(), out)
        while busy := [worker for worker in pool if worker.run is not None]:
            ready = wait([w.connection for w in busy] + [w.process.sentinel for w in busy])
            for index, worker in enumerate(pool):
                run = worker.run
                if run is None or (worker.connection not in ready and worker.process.sentinel not in ready):
                    continue
                worker.run = None
                done(run, worker.outcome(run, out))
                if not todo:
                    worker.connection.close()  # no more runs: the worker ends
                    continue
                if not worker.process.is_alive():  # killed: its run failed alone, a new worker goes on
                    worker = pool[index] = _Worker(context, commit)
                worker.give(todo.popleft(), out)
    except BaseException:
        # Ctrl-C, SIGTERM or an error here: stop the workers now rather than letting them finish their runs.
        # A run stopped half-way has no result.json (it is written last, atomically) and is redone on resume.
        for worker in pool:
            worker.process.terminate()
        for worker in pool:
            worker.process.join(timeout=10)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
        raise
    for worker in pool:
        worker.process.join()


def _write_files(folder: Path, files: dict[str, bytes]) -> None:
    """Write a run folder received from a remote worker, ``result.json`` last."""
    with claim_run_dir(folder, wipe=True) as held:
        for name, content in files.items():
            if name != RESULT_FILE:
                held.write(name, content)
        if RESULT_FILE in files:
            held.write(RESULT_FILE, files[RESULT_FILE])


@contextmanager
def _ray_session(address: str | None, workers: int) -> Iterator[Any]:
    try:
        import ray
    except ImportError:
        raise ImportError("the ray backend needs Ray: pip install 'rlrelax[ray]'") from None
    started = not ray.is_initialized()
    if started:
        if address is None:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def _run_ray(
    pending: list[RunSpec],
    out: Path,
    workers: int,
    address: str | None,
    commit: str | None,
    done: Done,
) -> None:
    with _ray_session(address, workers) as ray:
        # One CPU per run, as the local backend; the results travel back, so the cluster needs no shared disk.
        # A task writes only its own temporary folder: the driver is the store's one writer, and should it die
        # (kill -9 included), Ray ends the tasks of its job itself.
        remote = ray.remote(num_cpus=1, max_retries=0)(execute_run_in_memory)
        refs = {remote.remote(run.to_config(), commit): run for run in pending}
        try:
            while refs:
                (ready,), _ = ray.wait(list(refs), num_returns=1)
                run = refs.pop(ready)
                folder = run.folder(out)
                try:
                    outcome, files = ray.get(ready)
                except Exception as error:
                    outcome = _failure(run, out, f"the Ray task failed: {type(error).__name__}: {error}")
                else:
                    _write_files(folder, files)
                    outcome = dataclasses.replace(outcome, folder=str(folder))
                done(run, outcome)
        except BaseException:
            for ref in refs:
                ray.cancel(ref, force=True)
            raise


def _evaluate_final_models(
    due: list[FinishedRun],
    experiment_dir: Path,
    episodes: int,
    workers: int,
    result: CompareResult,
    bar: _Progress,
) -> None:
    """Give each finished run its final evaluation, in local worker processes (one run per core).

    Local whatever the backend: each evaluation reads and writes its run folder in the store. An interrupted
    evaluation leaves its run as it was, and the next call does it again.
    """
    context = multiprocessing.get_context("spawn")
    executor = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=init_worker)
    try:
        jobs = {
            executor.submit(write_final_evaluation, str(experiment_dir / run.path), episodes): run
            for run in due
        }
        for job in as_completed(jobs):
            run = jobs[job]
            name = f"{run.env_id} {run.label} seed={run.seed}"
            folder = experiment_dir / run.path
            error = job.result()
            if error is None:
                result.evaluated.append(str(folder))
                returns = read_final_evaluation(folder)
                assert returns is not None
                bar.line(f"final evaluation of {name}: mean return {returns.mean():.1f}, {episodes} episodes")
            else:
                result.failed_evaluations.append(RunOutcome(str(folder), error=error))
                bar.line(f"FAILED final evaluation of {name}: {error}")
    except BaseException:
        # Ctrl-C or an error here: the evaluations under way end (each writes its file atomically, or
        # nothing), those not begun are dropped.
        executor.shutdown(wait=True, cancel_futures=True)
        raise
    executor.shutdown(wait=True)


def run_experiment(
    spec: Spec,
    out: str | Path = "runs",
    *,
    workers: int | None = None,
    backend: Backend = "local",
    ray_address: str | None = None,
    progress: bool = True,
    report: bool = True,
) -> CompareResult:
    """Run every run of ``spec`` not yet finished in the store, then write the report.

    Finished runs (``result.json`` present, same config) are kept; unfinished ones are wiped and redone;
    a failed run leaves its traceback in ``error.txt`` and the others go on. Interrupting (Ctrl-C) stops
    the workers and raises ``KeyboardInterrupt``; running the same call again resumes. When the spec asks
    for a final evaluation (``final_episodes``), every finished run of the experiment without one of that
    many episodes then gets it (those of agents or seeds left out of this call too, since the report reads
    them all), from its saved model, in local worker processes; runs finished before the spec asked for it
    are evaluated, not trained again.

    The local backend starts its workers with ``multiprocessing``'s ``spawn``, which imports the calling
    script in each worker: a script that calls this needs the ``if __name__ == "__main__":`` guard.

    :param spec: the checked spec (:func:`rlrelax.compare.load_spec`)
    :param out: the store's root; runs go to ``out/<spec.name>/``
    :param workers: runs at once (default: the usable CPU cores); with a local Ray, its CPU count
    :param backend: ``"local"`` (worker processes) or ``"ray"``
    :param ray_address: the Ray cluster to join (``backend="ray"``); a local Ray is started when ``None``
    :param progress: show a progress bar and one line per finished run on stderr
    :param report: write the report (:func:`rlrelax.compare.write_report`) when the runs are done, if
        at least one run is finished
    :return: what was run, skipped and failed
    """
    check_choice(backend, "backend", ("local", "ray"))
    if workers is not None:
        check_int(workers, "workers", minimum=1)
    if ray_address is not None and backend != "ray":
        raise ValueError(f"ray_address={ray_address!r} needs backend='ray'")
    out = Path(out)
    check_store(spec, out)
    experiment_dir = out / spec.name
    runs = spec.runs()
    with experiment_lock(experiment_dir):
        # Every finished run in the folder is checked before any run starts (the report reads them all): a
        # damaged one stops the command here, not after hours of runs.
        finished_runs(experiment_dir)
        pending = [run for run in runs if run_status(run.folder(out), run.to_config()) != "finished"]
        result = CompareResult(experiment_dir, total=len(runs), skipped=len(runs) - len(pending))
        bar = _Progress(len(runs), result.skipped, progress)
        if result.skipped:
            bar.line(f"{result.skipped} of {len(runs)} runs already finished in {experiment_dir}: kept")

        def done(run: RunSpec, outcome: RunOutcome) -> None:
            (result.finished if outcome.finished else result.failed).append(outcome)
            bar.advance(_describe(run, outcome))

        try:
            if pending:
                count = min(workers or default_workers(), len(pending))
                commit = git_commit()
                if backend == "local":
                    _run_local(pending, out, count, commit, done)
                else:
                    _run_ray(pending, out, workers or default_workers(), ray_address, commit, done)
            episodes = spec.evaluation.final_episodes
            if episodes is not None:
                # Every finished run of the experiment, not only the part of the spec run now: the report
                # reads them all, and compares final returns over the same number of episodes.
                due = [
                    run
                    for run in finished_runs(experiment_dir)
                    if run.final_evaluation is None or len(run.final_evaluation) != episodes
                ]
                if due:
                    count = min(workers or default_workers(), len(due))
                    _evaluate_final_models(due, experiment_dir, episodes, count, result, bar)
        finally:
            bar.close()
    # With a final evaluation missing, some final returns would average fewer episodes than others.
    if report and not result.failed_evaluations and finished_runs(experiment_dir):
        from rlrelax.compare.report import write_report

        write_report(experiment_dir)
    return result
