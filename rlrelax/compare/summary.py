"""Statistics of each agent on each env, over the finished runs of an experiment folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlrelax.compare.stats import Interval, bootstrap_interval, iqm_curve, steps_to_threshold
from rlrelax.compare.store import FinishedRun, finished_runs

__all__ = ["AgentSummary", "summarize"]


@dataclass(frozen=True)
class AgentSummary:
    """The statistics of one agent on one env, over its finished runs (seeds).

    :param env_id: the env id
    :param label: the agent label
    :param algorithm: the algorithm as the spec named it
    :param runs: the finished runs, sorted by seed
    :param threshold: the success threshold, or ``None`` for an env without one
    :param final_returns: each run's final evaluation return (mean over its episodes), by seed
    :param final_iqm: IQM of the final returns with its 95% stratified-bootstrap interval
    :param first_reach: per run, the env steps at which an evaluation first reached the threshold (``None``:
        never, or no threshold)
    :param stay: per run, the env steps from which every evaluation stayed at or above the threshold
    :param timesteps: the evaluation steps shared by all runs (the learning curve's x)
    :param curve: IQM of the evaluation return over runs at ``timesteps``, with the 95% band
    """

    env_id: str
    label: str
    algorithm: str
    runs: tuple[FinishedRun, ...]
    threshold: float | None
    final_returns: np.ndarray
    final_iqm: Interval
    first_reach: tuple[int | None, ...]
    stay: tuple[int | None, ...]
    timesteps: np.ndarray
    curve: tuple[np.ndarray, np.ndarray, np.ndarray]

    @property
    def solved(self) -> float | None:
        """The fraction of runs whose final evaluation reached the threshold (``None`` without one)."""
        if self.threshold is None:
            return None
        return float(np.mean(self.final_returns >= self.threshold))

    @property
    def wall_times(self) -> np.ndarray:
        """Each run's training wall time in seconds (evaluations included)."""
        return np.array([run.result.wall_time_s for run in self.runs], dtype=np.float64)


def _summarize_agent(runs: list[FinishedRun], reps: int, seed: int) -> AgentSummary:
    first = runs[0]
    stored_threshold = first.config["run"]["evaluation"]["threshold"]
    threshold = None if stored_threshold is None else float(stored_threshold)
    means = [run.returns.mean(axis=1) for run in runs]
    finals = np.array([m[-1] for m in means])
    reach = [
        (None, None) if threshold is None else steps_to_threshold(run.timesteps, m, threshold)
        for run, m in zip(runs, means, strict=True)
    ]
    # Runs of one agent share the evaluation schedule; should one differ (a callback stopped it early), the
    # curve keeps the evaluations every run has rather than mixing different runs at different steps.
    shared = sorted(set.intersection(*(set(run.timesteps.tolist()) for run in runs)))
    table = np.array([m[np.searchsorted(run.timesteps, shared)] for run, m in zip(runs, means, strict=True)])
    return AgentSummary(
        env_id=first.env_id,
        label=first.label,
        algorithm=str(first.config["run"]["algorithm"]),
        runs=tuple(runs),
        threshold=threshold,
        final_returns=finals,
        final_iqm=bootstrap_interval(finals, reps=reps, seed=seed),
        first_reach=tuple(r[0] for r in reach),
        stay=tuple(r[1] for r in reach),
        timesteps=np.array(shared, dtype=np.int64),
        curve=iqm_curve(table, seed=seed) if shared else (np.empty(0), np.empty(0), np.empty(0)),
    )


def summarize(experiment_dir: str | Path, *, reps: int = 10_000, seed: int = 0) -> list[AgentSummary]:
    """Return the statistics of every (env, agent) with finished runs in an experiment folder.

    :param experiment_dir: ``<out>/<experiment>``
    :param reps: bootstrap replications for the confidence intervals
    :param seed: the bootstrap seed
    :return: one summary per env and agent, sorted by env id and label
    """
    groups: dict[tuple[str, str], list[FinishedRun]] = {}
    for run in finished_runs(Path(experiment_dir)):
        groups.setdefault((run.env_id, run.label), []).append(run)
    return [_summarize_agent(runs, reps, seed) for _, runs in sorted(groups.items())]
