"""Statistics over seeds the rliable way (Agarwal et al., 2021, "Deep Reinforcement Learning at the Edge of
the Statistical Precipice"): interquartile mean (IQM), percentile confidence intervals from a stratified
bootstrap, and the probability of improvement.

Implemented with NumPy rather than through the ``rliable`` package: rliable 1.2 imports ``arch``, whose
current release fails to import next to pandas 3 (``deprecate_kwarg() missing ... 'new_arg_name'``). The
definitions follow rliable's ``metrics.aggregate_iqm`` (SciPy's ``trim_mean`` with 25% cut from each
end), ``library.get_interval_estimates`` (percentile method) and ``metrics.probability_of_improvement``
(the Mann-Whitney U statistic normalised to [0, 1], ties counting one half). Every bootstrap draws from a
``numpy.random.Generator`` seeded by the caller, so the same scores always give the same intervals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from rlrelax._validation import check_int

__all__ = [
    "Interval",
    "beat_probability",
    "bootstrap_interval",
    "iqm",
    "iqm_curve",
    "median_steps",
    "percentile_interval",
    "probability_of_improvement",
    "steps_to_threshold",
]

Interval = tuple[float, float, float]
"""A point estimate with its confidence interval: ``(estimate, low, high)``."""


def iqm(scores: np.ndarray, axis: int | None = None) -> np.ndarray:
    """Return the interquartile mean: the mean of the middle half of the scores (25% cut from each end).

    The same as ``scipy.stats.trim_mean(scores, 0.25, axis)``: ``int(0.25 * n)`` scores are cut from each end.

    :param scores: the scores
    :param axis: the axis to reduce, or ``None`` for all scores
    :return: the IQM (a 0-d array when ``axis`` is ``None``)
    """
    values = np.asarray(scores, dtype=np.float64)
    if axis is None:
        values, axis = values.reshape(-1), 0
    n = values.shape[axis]
    if n == 0:
        raise ValueError("iqm needs at least one score")
    cut = int(0.25 * n)
    return np.sort(values, axis=axis).take(np.arange(cut, n - cut), axis=axis).mean(axis=axis)


def _check(confidence: float, reps: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    check_int(reps, "reps", minimum=1)


def percentile_interval(samples: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """The percentile interval of bootstrap replications along their first axis.

    :param samples: the statistic of each replication, shape ``(reps, ...)``
    :param confidence: the interval's coverage, in (0, 1)
    :return: the lower and upper ends, each of shape ``samples.shape[1:]``
    """
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(samples, [tail, 100.0 - tail], axis=0)
    return low, high


def bootstrap_interval(
    scores: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray] = lambda s: iqm(s.reshape(s.shape[0], -1), axis=1),
    *,
    reps: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Return a statistic of ``(n_runs, n_tasks)`` scores with a stratified-bootstrap percentile interval.

    Stratified: each task's runs are resampled with replacement on their own, as rliable's
    ``StratifiedBootstrap``; a single task is the ordinary bootstrap over runs (seeds).

    :param scores: shape ``(n_runs, n_tasks)``, or ``(n_runs,)`` for one task
    :param statistic: maps a batch of score tables ``(batch, n_runs, n_tasks)`` to ``(batch,)``
        (default: the IQM over all runs and tasks)
    :param reps: bootstrap replications
    :param confidence: the interval's coverage
    :param seed: the bootstrap's random seed
    :return: ``(statistic of scores, low, high)``
    """
    _check(confidence, reps)
    table = np.asarray(scores, dtype=np.float64)
    if table.size == 0:
        raise ValueError("bootstrap_interval needs at least one run")
    table = table.reshape(len(table), -1)
    n_runs, n_tasks = table.shape
    rng = np.random.default_rng(seed)
    index = rng.integers(0, n_runs, size=(reps, n_runs, n_tasks))
    samples = statistic(np.take_along_axis(np.broadcast_to(table, (reps, n_runs, n_tasks)), index, axis=1))
    low, high = percentile_interval(samples, confidence)
    return float(statistic(table[None])[0]), float(low), float(high)


def iqm_curve(
    scores: np.ndarray, *, reps: int = 2_000, confidence: float = 0.95, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the IQM over runs at each evaluation, with a bootstrap band.

    The runs (rows) are resampled together across evaluations, so each replication is a set of whole
    learning curves.

    :param scores: shape ``(n_runs, n_evaluations)``
    :param reps: bootstrap replications
    :param confidence: the band's coverage
    :param seed: the bootstrap's random seed
    :return: ``(iqm, low, high)``, each of shape ``(n_evaluations,)``
    """
    _check(confidence, reps)
    table = np.asarray(scores, dtype=np.float64)
    rng = np.random.default_rng(seed)
    index = rng.integers(0, table.shape[0], size=(reps, table.shape[0]))
    low, high = percentile_interval(iqm(table[index], axis=1), confidence)
    return iqm(table, axis=0), low, high


def beat_probability(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) of the runs along the last axes: the Mann-Whitney U statistic over ``n_x * n_y``, ties
    counting one half; batched over any leading axes (bootstrap replications).

    :param x: scores of X's runs, shape ``(..., n_x)``
    :param y: scores of Y's runs, shape ``(..., n_y)``, the same leading shape
    :return: shape of the leading axes
    """
    diff = x[..., :, None] - y[..., None, :]
    return ((diff > 0) + 0.5 * (diff == 0)).mean(axis=(-2, -1))


def probability_of_improvement(
    x: np.ndarray, y: np.ndarray, *, reps: int = 10_000, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """Return P(X > Y): the probability that a run of X beats a run of Y, with a bootstrap interval.

    Ties count one half (the Mann-Whitney U statistic over ``n_x * n_y``); the runs of X and of Y are
    resampled independently, as rliable's ``StratifiedIndependentBootstrap``.

    :param x: final scores of X's runs, shape ``(n_x,)``
    :param y: final scores of Y's runs, shape ``(n_y,)``
    :param reps: bootstrap replications
    :param confidence: the interval's coverage
    :param seed: the bootstrap's random seed
    :return: ``(P(X > Y), low, high)``
    """
    _check(confidence, reps)
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    b = np.asarray(y, dtype=np.float64).reshape(-1)
    if a.size == 0 or b.size == 0:
        raise ValueError("probability_of_improvement needs at least one run of each")

    rng = np.random.default_rng(seed)
    samples = beat_probability(
        a[rng.integers(0, a.size, size=(reps, a.size))], b[rng.integers(0, b.size, size=(reps, b.size))]
    )
    low, high = percentile_interval(samples, confidence)
    return float(beat_probability(a, b)), float(low), float(high)


def steps_to_threshold(
    timesteps: np.ndarray, returns: np.ndarray, threshold: float
) -> tuple[int | None, int | None]:
    """Return when a run's evaluations first reach ``threshold``, and from when they stay at or above it.

    :param timesteps: the env steps of the evaluations, shape ``(n_evaluations,)``
    :param returns: the mean return of each evaluation, shape ``(n_evaluations,)``
    :param threshold: the success threshold
    :return: ``(first, stay)`` env steps; ``None`` where it never happens (``stay`` is ``None`` unless the
        final evaluation is at or above the threshold)
    """
    reached = np.asarray(returns) >= threshold
    if not reached.any():
        return None, None
    first = int(np.asarray(timesteps)[np.argmax(reached)])
    if not reached[-1]:
        return first, None
    below = np.flatnonzero(~reached)
    return first, int(np.asarray(timesteps)[below[-1] + 1 if below.size else 0])


def median_steps(steps: Sequence[int | None]) -> float:
    """Return the median of per-run step counts, a run that never got there counting as infinitely many.

    :param steps: one entry per run, ``None`` for never
    :return: the median (``math.inf`` when at least half the runs never got there)
    """
    if not steps:
        raise ValueError("median_steps needs at least one run")
    return float(np.median([math.inf if s is None else s for s in steps]))
