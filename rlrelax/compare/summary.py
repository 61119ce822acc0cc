"""Statistics of each agent on each env, over the finished runs of an experiment folder: returns, and the
gradient diagnostics where the runs measured them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlrelax.compare.stats import Interval, bootstrap_interval, iqm_curve, steps_to_threshold
from rlrelax.compare.store import FinishedRun, finished_runs

__all__ = ["GRADIENT_CURVES", "AgentSummary", "GradientCurves", "gradient_curves", "summarize"]

#: The gradient statistics drawn over training, in the report's order; the last two need an exact gradient.
GRADIENT_CURVES = ("variance", "snr", "relative_bias_sq", "cosine")
Curve = tuple[np.ndarray, np.ndarray, np.ndarray]
"""An IQM over runs at each step with its 95% band: ``(iqm, low, high)``."""


@dataclass(frozen=True)
class AgentSummary:
    """The statistics of one agent on one env, over its finished runs (seeds).

    :param env_id: the env id
    :param label: the agent label
    :param algorithm: the algorithm as the spec named it
    :param runs: the finished runs, sorted by seed
    :param threshold: the success threshold, or ``None`` for an env without one
    :param final_returns: each run's final return, by seed (``FinishedRun.final_return``)
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
    curve: Curve

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


def _shared_steps(steps: list[np.ndarray], values: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The steps that every run has, and each run's values at them.

    Runs of one agent share their schedule; should one differ (a callback stopped it early), a curve keeps
    the steps every run has rather than mixing different runs at different steps.

    :param steps: per run, its sorted steps
    :param values: per run, its values at those steps
    :return: the shared steps ``(n_shared,)`` and the values at them ``(n_runs, n_shared)``
    """
    shared = sorted(set.intersection(*(set(s.tolist()) for s in steps)))
    table = np.array([v[np.searchsorted(s, shared)] for s, v in zip(steps, values, strict=True)])
    return np.array(shared, dtype=np.int64), table.reshape(len(steps), len(shared))


def _iqm_curve(table: np.ndarray, seed: int) -> Curve:
    if not table.shape[1]:
        return np.empty(0), np.empty(0), np.empty(0)
    return iqm_curve(table, seed=seed)


def _summarize_agent(runs: list[FinishedRun], reps: int, seed: int) -> AgentSummary:
    first = runs[0]
    stored_threshold = first.config["run"]["evaluation"]["threshold"]
    threshold = None if stored_threshold is None else float(stored_threshold)
    means = [run.returns.mean(axis=1) for run in runs]
    if len({run.final_episodes for run in runs}) > 1:
        counts = ", ".join(f"seed {run.seed}: {run.final_episodes}" for run in runs)
        raise ValueError(
            f"{first.label} on {first.env_id}: the runs' final returns average different numbers of episodes "
            f"({counts}); rerun the comparison's spec to give every run the same final evaluation"
        )
    finals = np.array([run.final_return for run in runs])
    reach = [
        (None, None) if threshold is None else steps_to_threshold(run.timesteps, m, threshold)
        for run, m in zip(runs, means, strict=True)
    ]
    shared, table = _shared_steps([run.timesteps for run in runs], means)
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
        timesteps=shared,
        curve=_iqm_curve(table, seed),
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


@dataclass(frozen=True)
class GradientCurves:
    """The gradient diagnostics of one agent on one env over training, over its runs that measured them.

    :param env_id: the env id
    :param label: the agent label
    :param runs: the runs that measured them, sorted by seed
    :param timesteps: the measurements the runs share, each at the multiple of the spec's ``every`` that it
        follows (a run measures at the first rollout end at or after each multiple)
    :param curves: IQM over runs with the 95% band of each statistic of :data:`GRADIENT_CURVES` the runs
        have: the relative bias and the cosine only where the agent has an exact gradient
    :param measuring_share: per run, the fraction of its training wall time spent measuring
    """

    env_id: str
    label: str
    runs: tuple[FinishedRun, ...]
    timesteps: np.ndarray
    curves: dict[str, Curve]
    measuring_share: np.ndarray

    @property
    def has_exact(self) -> bool:
        """Whether the runs measured against an exact gradient (the bias and the cosine)."""
        return "relative_bias_sq" in self.curves


def gradient_curves(summary: AgentSummary, *, seed: int = 0) -> GradientCurves | None:
    """Return the gradient diagnostics over training of one agent's runs, or ``None`` if none measured them.

    :param summary: the agent's summary (:func:`summarize`)
    :param seed: the bootstrap seed of the bands
    :return: the curves
    """
    measured = [(run, run.gradient_stats) for run in summary.runs if run.gradient_stats is not None]
    if not measured:
        return None
    steps = []
    for run, stats in measured:
        every = run.config["run"]["diagnostics"]["every"]
        steps.append(stats["timestep"] // every * every)
    exact_norms = [stats["exact_norm"] for _, stats in measured]
    has_exact = all(norms.size and np.isfinite(norms).all() for norms in exact_norms)
    curves = {}
    for name in GRADIENT_CURVES if has_exact else GRADIENT_CURVES[:2]:
        shared, table = _shared_steps(steps, [stats[name] for _, stats in measured])
        # A deterministic estimate has an infinite SNR, whose band is undefined: NaN, without a warning.
        with np.errstate(invalid="ignore"):
            curves[name] = _iqm_curve(table, seed)
    return GradientCurves(
        env_id=summary.env_id,
        label=summary.label,
        runs=tuple(run for run, _ in measured),
        timesteps=shared,
        curves=curves,
        measuring_share=np.array(
            [stats["seconds"].sum() / run.result.wall_time_s for run, stats in measured], dtype=np.float64
        ),
    )
