"""Statistics across envs, the rliable way (Agarwal et al., 2021, "Deep Reinforcement Learning at the Edge of
the Statistical Precipice"), over the finished runs of several experiments: one per env, or an env's runs
in pieces.

Each run's returns are normalised per env, 0 being a uniformly random policy's mean return (measured, e.g.
by ``experiments/suite/random_scores.py``) and 1 the env's success threshold::

    score = (return - random) / (threshold - random)

On those scores, per agent label: the aggregate IQM with a 95% stratified-bootstrap interval, performance
profiles (the fraction of runs whose final score is above each tau, with bootstrap bands), the probability
of improvement between every pair of labels (averaged over envs, as rliable's
``metrics.probability_of_improvement`` does), and sample-efficiency curves (the aggregate IQM of the
evaluation score against the fraction of each agent's budget).

Stratified: every bootstrap replication resamples each env's runs (seeds) with replacement on their own, as
rliable's ``StratifiedBootstrap`` does. :func:`rlrelax.compare.stats.bootstrap_interval` is stratified too,
but over a rectangular ``(runs, tasks)`` table; the suite has 10 seeds on some envs and 5 on others, so the
resampling here takes each env's runs as a group of its own size. The aggregate IQM and the profiles pool
the runs of all envs, each run counting once, as rliable does over its runs x tasks table: an env with more
seeds weighs more in them (the report gives the runs per env). The probability of improvement weighs the
envs equally.

Each folder is either an experiment folder of a run store (``<out>/<name>``, its runs read through
:func:`rlrelax.compare.store.finished_runs`) or a committed results folder (``experiments/results/...``)
holding the ``runs.csv`` and ``evaluations.csv`` that ``rlrelax report`` wrote from one. Both give a
:class:`RunRecord` per run (:func:`read_runs`), so the statistics are the same code whatever the source;
they are the same numbers too where the mean returns have at most three decimals (integer returns averaged
over 1, 2, 4, 5, 8, 10 or 20 episodes, say), as the CSVs round them there.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from rlrelax._validation import check_int
from rlrelax.compare.report import EVALUATIONS_FILE as EVALUATIONS_CSV
from rlrelax.compare.report import RUNS_FILE
from rlrelax.compare.stats import (
    Interval,
    beat_probability,
    iqm,
    median_steps,
    percentile_interval,
    steps_to_threshold,
)
from rlrelax.compare.store import FinishedRun, finished_runs

__all__ = [
    "DEFAULT_FRACTIONS",
    "DEFAULT_TAUS",
    "AggregateResult",
    "Outcome",
    "RunRecord",
    "aggregate",
    "normalized_score",
    "read_random_scores",
    "read_runs",
    "write_aggregate",
]

#: The normalised scores at which the performance profiles are read: 0 (random) to 1.25 (a quarter of the
#: random-to-threshold gap above the threshold), in steps of 0.025.
DEFAULT_TAUS = np.round(np.linspace(0.0, 1.25, 51), 6)
#: The fractions of each agent's budget at which the sample-efficiency curves are read.
DEFAULT_FRACTIONS = np.round(np.linspace(0.1, 1.0, 10), 6)
Curve = tuple[np.ndarray, np.ndarray, np.ndarray]
"""A statistic at each point of a grid with its 95% band: ``(estimate, low, high)``."""
_T = TypeVar("_T")
#: The columns of a results folder's ``runs.csv`` and ``evaluations.csv`` that :func:`read_runs` reads.
RUNS_COLUMNS = ("env_id", "agent", "seed", "final_return", "wall_time_s", "threshold", "total_timesteps")
EVALUATIONS_COLUMNS = ("env_id", "agent", "seed", "timestep", "mean_return")


@dataclass(frozen=True)
class RunRecord:
    """What the statistics read of one finished run, from a run store or from a committed results folder.

    :param env_id: the env id
    :param label: the agent label
    :param seed: the run seed
    :param threshold: the env's success threshold, or ``None`` for an env without one
    :param final_return: the final model's mean evaluation return
    :param total_timesteps: the run's budget of env steps
    :param wall_time_s: the run's wall time, its periodic evaluations included
    :param timesteps: the env steps of each evaluation, shape ``(n_evals,)``
    :param means: the mean return of each evaluation over its episodes, shape ``(n_evals,)``
    """

    env_id: str
    label: str
    seed: int
    threshold: float | None
    final_return: float
    total_timesteps: int
    wall_time_s: float
    timesteps: np.ndarray
    means: np.ndarray

    @classmethod
    def from_finished_run(cls, run: FinishedRun) -> RunRecord:
        """Read the record of a run of a run store.

        :param run: the finished run (:func:`rlrelax.compare.store.finished_runs`)
        :return: its record
        """
        return cls(
            env_id=run.env_id,
            label=run.label,
            seed=run.seed,
            threshold=run.result.threshold,
            final_return=run.final_return,
            total_timesteps=int(run.config["run"]["total_timesteps"]),
            wall_time_s=run.result.wall_time_s,
            timesteps=run.timesteps,
            means=run.returns.mean(axis=1),
        )


def _read_table(path: Path, columns: Sequence[str]) -> list[dict[str, str]]:
    """The rows of a results folder's CSV, refusing a missing file and one without a needed column."""
    if not path.is_file():
        raise ValueError(
            f"{path.parent}: a results folder holds {RUNS_FILE} and {EVALUATIONS_CSV}, this one has no "
            f"{path.name}: rerun `rlrelax report` on its run store and keep both"
        )
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        rows = list(reader)
        header = reader.fieldnames or []
    missing = [column for column in columns if column not in header]
    if missing:
        raise ValueError(
            f"{path.parent}: its {path.name} lacks the columns {', '.join(missing)} (an older report's): "
            "rerun `rlrelax report` on the run store to rewrite it"
        )
    return rows


def _cell(path: Path, line: int, row: dict[str, str], column: str, kind: Callable[[str], _T]) -> _T:
    """One cell of a results folder's CSV as a number, refusing one that is not."""
    try:
        return kind(row[column])
    except (TypeError, ValueError):
        what = "an integer" if kind is int else "a number"
        raise ValueError(f"{path}, line {line}: {column} {row[column]!r} is not {what}") from None


def _read_results(folder: Path) -> list[RunRecord]:
    """The runs of a results folder: ``runs.csv`` gives each run, ``evaluations.csv`` its evaluations."""
    runs_csv, evaluations_csv = folder / RUNS_FILE, folder / EVALUATIONS_CSV
    runs = _read_table(runs_csv, RUNS_COLUMNS)
    evaluations: dict[tuple[str, str, int], list[tuple[int, float]]] = {}
    for line, row in enumerate(_read_table(evaluations_csv, EVALUATIONS_COLUMNS), start=2):
        key = (row["env_id"], row["agent"], _cell(evaluations_csv, line, row, "seed", int))
        point = (
            _cell(evaluations_csv, line, row, "timestep", int),
            _cell(evaluations_csv, line, row, "mean_return", float),
        )
        evaluations.setdefault(key, []).append(point)
    records: dict[tuple[str, str, int], RunRecord] = {}
    for line, row in enumerate(runs, start=2):
        key = (row["env_id"], row["agent"], _cell(runs_csv, line, row, "seed", int))
        name = f"{key[0]} / {key[1]} / seed-{key[2]}"
        if key in records:
            raise ValueError(f"{runs_csv}, line {line}: the run {name} is listed twice")
        if key not in evaluations:
            raise ValueError(
                f"{folder}: the run {name} ({RUNS_FILE}, line {line}) has no row in {EVALUATIONS_CSV}: "
                "rerun `rlrelax report` on the run store to rewrite both"
            )
        budget = _cell(runs_csv, line, row, "total_timesteps", int)
        if budget < 1:
            raise ValueError(f"{runs_csv}, line {line}: total_timesteps must be at least 1, got {budget}")
        # An empty cell: the env has no threshold, as the report writes it.
        threshold = None if row["threshold"] == "" else _cell(runs_csv, line, row, "threshold", float)
        timesteps, means = zip(*evaluations[key], strict=True)
        records[key] = RunRecord(
            env_id=key[0],
            label=key[1],
            seed=key[2],
            threshold=threshold,
            final_return=_cell(runs_csv, line, row, "final_return", float),
            total_timesteps=budget,
            wall_time_s=_cell(runs_csv, line, row, "wall_time_s", float),
            timesteps=np.array(timesteps, dtype=np.int64),
            means=np.array(means, dtype=np.float64),
        )
    unlisted = sorted(set(evaluations) - set(records))
    if unlisted:
        names = ", ".join(f"{env_id} / {label} / seed-{seed}" for env_id, label, seed in unlisted)
        raise ValueError(
            f"{folder}: {EVALUATIONS_CSV} has rows of runs that {RUNS_FILE} does not list: {names}"
        )
    return sorted(records.values(), key=lambda run: (run.env_id, run.label, run.seed))


def read_runs(directory: str | Path) -> list[RunRecord]:
    """Read the finished runs of an experiment folder of a run store or of a committed results folder.

    A folder with run folders (``<env folder>/<label>/seed-<n>``) is read as a run store, also when a report
    was written into it; one without any but with a ``runs.csv`` as a results folder, whose ``runs.csv`` and
    ``evaluations.csv`` (written by ``rlrelax report``) stand in for the runs.

    :param directory: ``<out>/<experiment>``, or a folder holding that experiment's report tables
    :return: the runs, sorted by env id, label and seed; none for a folder that holds neither
    :raises ValueError: naming the folder or file: a damaged run of a store
        (:class:`~rlrelax.compare.store.DamagedRunError`); a results folder without ``evaluations.csv``,
        whose ``runs.csv`` lacks a column (one written by an older report), with a run without evaluations,
        or with a cell that is not a number
    """
    folder = Path(directory)
    if any(path.is_dir() for path in folder.glob("*/*/seed-*")) or not (folder / RUNS_FILE).exists():
        return [RunRecord.from_finished_run(run) for run in finished_runs(folder)]
    return _read_results(folder)


def read_random_scores(path: str | Path) -> dict[str, float]:
    """Read the uniformly random policy's mean return of each env from a CSV.

    :param path: a CSV with the columns ``env_id`` and ``mean_return``
        (``experiments/suite/random_scores.csv``)
    :return: env id -> mean return
    :raises ValueError: naming the file and what is wrong with it
    """
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    if not rows or not {"env_id", "mean_return"} <= set(rows[0]):
        raise ValueError(f"{path}: needs the columns env_id and mean_return, one row per env")
    scores: dict[str, float] = {}
    for line, row in enumerate(rows, start=2):
        try:
            value = float(row["mean_return"])
        except (TypeError, ValueError):
            raise ValueError(
                f"{path}, line {line}: mean_return {row['mean_return']!r} is not a number"
            ) from None
        if not math.isfinite(value) or row["env_id"] in scores:
            raise ValueError(
                f"{path}, line {line}: {row['env_id']!r} needs one finite mean_return, got {value}"
            )
        scores[row["env_id"]] = value
    return scores


def normalized_score(value: np.ndarray | float, random: float, threshold: float) -> np.ndarray:
    """Return returns on the scale where a uniformly random policy scores 0 and the threshold 1.

    :param value: returns
    :param random: the uniformly random policy's mean return on the env
    :param threshold: the env's success threshold
    :return: ``(value - random) / (threshold - random)``
    """
    if not threshold > random:
        raise ValueError(f"the threshold ({threshold}) must be above the random score ({random})")
    return (np.asarray(value, dtype=np.float64) - random) / (threshold - random)


def _stratified(groups: Sequence[np.ndarray], reps: int, rng: np.random.Generator) -> np.ndarray:
    """Replications of runs grouped by env, each group's runs resampled with replacement on their own.

    :param groups: per env, its runs along the first axis (any trailing shape, the same for every group)
    :param reps: replications
    :param rng: the random source
    :return: ``(reps, total runs, *trailing)``: each replication keeps every env's number of runs
    """
    draws = [group[rng.integers(0, len(group), size=(reps, len(group)))] for group in groups]
    return np.concatenate(draws, axis=1)


@dataclass(frozen=True)
class Outcome:
    """How one label's runs on one env ended against the env's threshold: the suite's per-env bars.

    :param runs: the finished runs
    :param solved: the runs whose final return is at or above the threshold
    :param reached: the runs with a periodic evaluation at or above the threshold
    :param kept: of the runs that reached it, those whose final return is at or above it (the rest collapsed)
    :param median_reach: the median over runs of the env steps of the first evaluation at or above it
        (``math.inf`` when at least half the runs never got there)
    """

    runs: int
    solved: int
    reached: int
    kept: int
    median_reach: float

    @classmethod
    def of(cls, runs: Sequence[RunRecord], threshold: float) -> Outcome:
        """Count the outcomes of one label's runs on one env.

        :param runs: the runs
        :param threshold: the env's success threshold
        :return: the counts
        """
        first = [steps_to_threshold(run.timesteps, run.means, threshold)[0] for run in runs]
        ended = [run.final_return >= threshold for run in runs]
        return cls(
            runs=len(runs),
            solved=sum(ended),
            reached=sum(step is not None for step in first),
            kept=sum(end for step, end in zip(first, ended, strict=True) if step is not None),
            median_reach=median_steps(first),
        )


@dataclass(frozen=True)
class AggregateResult:
    """The cross-env statistics of several experiments.

    :param envs: the env ids, sorted
    :param labels: the agent labels that have finished runs on every env: the ones compared
    :param missing: each label left out, with the envs on which it has no finished run
    :param thresholds: each env's success threshold (1 on the normalised scale)
    :param random_scores: each env's uniformly random mean return (0 on the normalised scale)
    :param sources: each env's folders (one, or the pieces its runs were made in)
    :param final_returns: label -> env -> each run's final return, by seed
    :param scores: label -> env -> each run's normalised final score, by seed
    :param seeds: label -> env -> the seeds of those runs
    :param final_iqm: label -> the IQM of the normalised final scores over env x seed, with its interval
    :param taus: the grid of the performance profiles
    :param profiles: label -> the fraction of runs with a final score above each tau, with bands
    :param improvement: (label x, label y) -> P(X > Y) averaged over envs, with its interval, for x != y
    :param fractions: the grid of the sample-efficiency curves, fractions of each agent's budget
    :param efficiency: label -> the IQM of the normalised evaluation score at each fraction, with bands
    :param wall_time_s: label -> env -> the wall time of its runs there, summed; every label with runs,
        the left-out ones included
    :param outcomes: label -> env -> how its runs there ended against the threshold; every label with runs
    """

    envs: tuple[str, ...]
    labels: tuple[str, ...]
    missing: dict[str, tuple[str, ...]]
    thresholds: dict[str, float]
    random_scores: dict[str, float]
    sources: dict[str, tuple[str, ...]]
    final_returns: dict[str, dict[str, np.ndarray]]
    scores: dict[str, dict[str, np.ndarray]]
    seeds: dict[str, dict[str, tuple[int, ...]]]
    final_iqm: dict[str, Interval]
    taus: np.ndarray
    profiles: dict[str, Curve]
    improvement: dict[tuple[str, str], Interval]
    fractions: np.ndarray
    efficiency: dict[str, Curve]
    wall_time_s: dict[str, dict[str, float]]
    outcomes: dict[str, dict[str, Outcome]]


def _runs_by_env(
    experiment_dirs: Sequence[str | Path],
) -> tuple[dict[str, list[RunRecord]], dict[str, tuple[str, ...]]]:
    """The finished runs of each env and the folders they came from.

    An env's runs may come from several folders: the pieces of one spec run in different stores (a store
    lost with its machine leaves its committed results folder, and the runs still to do go to a new store).
    Refused: an empty folder, a run (env, label, seed) in two folders, and a label whose runs on one env have
    different budgets (pieces of different specs).
    """
    runs: dict[str, list[RunRecord]] = {}
    sources: dict[str, tuple[str, ...]] = {}
    origin: dict[tuple[str, str, int], str] = {}
    for directory in experiment_dirs:
        found = read_runs(directory)
        if not found:
            raise ValueError(
                f"{directory}: holds no finished run (is it an experiment folder <out>/<name> of a run "
                f"store, or a results folder holding {RUNS_FILE} and {EVALUATIONS_CSV}?)"
            )
        for run in found:
            key = (run.env_id, run.label, run.seed)
            if key in origin:
                raise ValueError(
                    f"{run.env_id} / {run.label} / seed-{run.seed} has runs in both {origin[key]} and "
                    f"{directory}: give each run once"
                )
            origin[key] = str(directory)
            if str(directory) not in sources.get(run.env_id, ()):
                sources[run.env_id] = (*sources.get(run.env_id, ()), str(directory))
            runs.setdefault(run.env_id, []).append(run)
    for env_id, env_runs in runs.items():
        for label in sorted({run.label for run in env_runs}):
            budgets: dict[int, RunRecord] = {}
            for run in sorted(env_runs, key=lambda run: run.seed):
                if run.label == label:
                    budgets.setdefault(run.total_timesteps, run)  # the first seed with each budget
            if len(budgets) > 1:
                found_in = ", ".join(
                    f"{budget:,} (seed {run.seed}, {origin[(env_id, label, run.seed)]})"
                    for budget, run in sorted(budgets.items())
                )
                raise ValueError(
                    f"{env_id} / {label}: its runs have different budgets, {found_in}: pieces of different "
                    "specs cannot be pooled"
                )
        env_runs.sort(key=lambda run: (run.label, run.seed))
    return runs, sources


def _threshold(env_id: str, runs: Sequence[RunRecord], sources: Sequence[str]) -> float:
    thresholds = {run.threshold for run in runs if run.threshold is not None}
    if len(thresholds) != 1 or any(run.threshold is None for run in runs):
        raise ValueError(
            f"{env_id} (in {', '.join(sources)}) has runs without a success threshold, or with different "
            f"ones {sorted(thresholds)}: the normalised score needs one; set evaluation.threshold in its spec"
        )
    return float(thresholds.pop())


def _at_fractions(run: RunRecord, fractions: np.ndarray) -> np.ndarray:
    """A run's mean evaluation return at each fraction of its budget: the latest evaluation at or before it.

    The final evaluation counts as the whole budget, also when the last on-policy rollout overshot it.
    NaN where no evaluation came that early.
    """
    done = np.minimum(run.timesteps / run.total_timesteps, 1.0)
    done[-1] = 1.0
    # A small tolerance: 10,000 / 100,000 must count as 0.1 whatever the float rounding.
    index = np.searchsorted(done, fractions + 1e-9, side="right") - 1
    return np.where(index >= 0, run.means[np.maximum(index, 0)], np.nan)


def _iqm_with_band(groups: Sequence[np.ndarray], reps: int, confidence: float, seed: int) -> Curve:
    """The IQM over all runs (axis 0 of each group) with a stratified-bootstrap band, per trailing column.

    A column where some run has no value (NaN: a fraction of the budget before its first evaluation) is NaN,
    rather than the IQM of the runs that have one, which the sort in ``iqm`` (NaN last) could silently give.
    """
    pooled = np.concatenate(groups)
    undefined = np.isnan(pooled).any(axis=0)
    samples = _stratified(groups, reps, np.random.default_rng(seed))
    low, high = percentile_interval(iqm(samples, axis=1), confidence)
    estimate = iqm(pooled, axis=0)
    return (
        np.where(undefined, np.nan, estimate),
        np.where(undefined, np.nan, low),
        np.where(undefined, np.nan, high),
    )


def _profile(
    groups: Sequence[np.ndarray], taus: np.ndarray, reps: int, confidence: float, seed: int
) -> Curve:
    """The fraction of runs with a score above each tau, with a stratified-bootstrap band."""
    samples = _stratified(groups, reps, np.random.default_rng(seed))
    low, high = percentile_interval((samples[..., None] > taus).mean(axis=1), confidence)
    return (np.concatenate(groups)[:, None] > taus).mean(axis=0), low, high


def _improvement(
    x: Sequence[np.ndarray], y: Sequence[np.ndarray], reps: int, confidence: float, seed: int
) -> Interval:
    """P(X > Y) averaged over envs, with an interval resampling X's and Y's runs independently within each
    env (rliable's ``StratifiedIndependentBootstrap``): the envs are resampled together, which per-env
    intervals of :func:`~rlrelax.compare.stats.probability_of_improvement` cannot give."""
    rng = np.random.default_rng(seed)
    samples = np.zeros(reps)
    for a, b in zip(x, y, strict=True):
        samples += beat_probability(
            a[rng.integers(0, a.size, size=(reps, a.size))], b[rng.integers(0, b.size, size=(reps, b.size))]
        )
    low, high = percentile_interval(samples / len(x), confidence)
    estimate = np.mean([beat_probability(a, b) for a, b in zip(x, y, strict=True)])
    return float(estimate), float(low), float(high)


def aggregate(
    experiment_dirs: Sequence[str | Path],
    random_scores: dict[str, float],
    *,
    taus: np.ndarray = DEFAULT_TAUS,
    fractions: np.ndarray = DEFAULT_FRACTIONS,
    reps: int = 2_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> AggregateResult:
    """Compute the cross-env statistics of the finished runs of several experiments.

    :param experiment_dirs: the folders, each holding runs of one or more envs: experiment folders of a run
        store (``<out>/<name>``) or committed results folders (``runs.csv`` and ``evaluations.csv``), in any
        mix (:func:`read_runs`); an env's runs may be spread over several (the pieces of its spec)
    :param random_scores: each env's uniformly random mean return (:func:`read_random_scores`)
    :param taus: the normalised scores at which to read the performance profiles
    :param fractions: the fractions of each agent's budget, in ``(0, 1]``, at which to read the curves
    :param reps: bootstrap replications
    :param confidence: the intervals' coverage
    :param seed: the bootstrap's random seed
    :return: the statistics
    :raises ValueError: naming the folder, env or run: an empty folder, a run in two folders, a label whose
        runs on one env have different budgets, an env without a threshold or without a random score, no
        label with runs on every env; a results folder that cannot be read (:func:`read_runs`)
    """
    if isinstance(experiment_dirs, str | Path) or not experiment_dirs:
        raise ValueError(f"experiment_dirs must be a non-empty list of folders, got {experiment_dirs!r}")
    check_int(reps, "reps", minimum=1)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    fractions = np.asarray(fractions, dtype=np.float64)
    if fractions.ndim != 1 or not fractions.size or not ((fractions > 0) & (fractions <= 1)).all():
        raise ValueError(f"fractions must be a non-empty list of numbers in (0, 1], got {fractions!r}")
    taus = np.asarray(taus, dtype=np.float64).reshape(-1)
    runs, sources = _runs_by_env(experiment_dirs)
    envs = tuple(sorted(runs))
    thresholds, randoms = {}, {}
    for env_id in envs:
        if env_id not in random_scores:
            raise ValueError(
                f"{env_id} (in {', '.join(sources[env_id])}) has no random score: add its row to the scores "
                "CSV (python experiments/suite/random_scores.py)"
            )
        thresholds[env_id] = _threshold(env_id, runs[env_id], sources[env_id])
        randoms[env_id] = random_scores[env_id]
        if not thresholds[env_id] > randoms[env_id]:
            raise ValueError(
                f"{env_id}: its threshold ({thresholds[env_id]}) is not above its random score "
                f"({randoms[env_id]}), so the scores cannot be normalised"
            )
    by_label: dict[str, dict[str, list[RunRecord]]] = {}
    for env_id in envs:
        for run in runs[env_id]:
            by_label.setdefault(run.label, {}).setdefault(env_id, []).append(run)
    missing = {
        label: tuple(e for e in envs if e not in per_env)
        for label, per_env in sorted(by_label.items())
        if len(per_env) < len(envs)
    }
    labels = tuple(sorted(label for label in by_label if label not in missing))
    if not labels:
        raise ValueError(f"no agent label has finished runs on every env ({', '.join(envs)}): {missing}")

    def normalise(env_id: str, values: np.ndarray) -> np.ndarray:
        return normalized_score(values, randoms[env_id], thresholds[env_id])

    returns = {
        label: {e: np.array([r.final_return for r in by_label[label][e]]) for e in envs} for label in labels
    }
    scores = {label: {e: normalise(e, returns[label][e]) for e in envs} for label in labels}
    curves = {
        label: [
            normalise(e, np.array([_at_fractions(r, fractions) for r in by_label[label][e]])) for e in envs
        ]
        for label in labels
    }
    return AggregateResult(
        envs=envs,
        labels=labels,
        missing=missing,
        thresholds=thresholds,
        random_scores=randoms,
        sources=sources,
        final_returns=returns,
        scores=scores,
        seeds={label: {e: tuple(r.seed for r in by_label[label][e]) for e in envs} for label in labels},
        final_iqm={
            label: _at(_iqm_with_band(list(scores[label].values()), reps, confidence, seed))
            for label in labels
        },
        taus=taus,
        profiles={
            label: _profile(list(scores[label].values()), taus, reps, confidence, seed) for label in labels
        },
        improvement={
            (x, y): _improvement(
                [scores[x][e] for e in envs], [scores[y][e] for e in envs], reps, confidence, seed
            )
            for x in labels
            for y in labels
            if x != y
        },
        fractions=fractions,
        efficiency={label: _iqm_with_band(curves[label], reps, confidence, seed) for label in labels},
        wall_time_s={
            label: {e: sum(r.wall_time_s for r in per_env[e]) for e in envs if e in per_env}
            for label, per_env in sorted(by_label.items())
        },
        outcomes={
            label: {e: Outcome.of(per_env[e], thresholds[e]) for e in envs if e in per_env}
            for label, per_env in sorted(by_label.items())
        },
    )


def _at(curve: Curve, index: int | None = None) -> Interval:
    """One point of a curve (or a 0-d statistic with its interval, ``index=None``) as an :data:`Interval`."""
    estimate, low, high = (np.asarray(c) if index is None else np.asarray(c)[index] for c in curve)
    return float(estimate), float(low), float(high)


def _interval(value: Interval, digits: int = 2) -> str:
    estimate, low, high = value
    return f"{estimate:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _csv_rows(result: AggregateResult) -> list[tuple[object, ...]]:
    """The long table of ``aggregate.csv``: one row per statistic, label (and other label) and grid point."""
    rows: list[tuple[object, ...]] = []
    for label in result.labels:
        rows.append(("iqm", label, "", "", *result.final_iqm[label]))
        for index, tau in enumerate(result.taus):
            rows.append(("profile", label, "", float(tau), *_at(result.profiles[label], index)))
        for index, fraction in enumerate(result.fractions):
            rows.append(("efficiency", label, "", float(fraction), *_at(result.efficiency[label], index)))
    for (x, y), value in result.improvement.items():
        rows.append(("improvement", x, y, "", *value))
    return rows


def _markdown(result: AggregateResult, figures: Sequence[str]) -> str:
    envs = result.envs
    lines = [
        "# The discrete-control suite: statistics across envs",
        "",
        "Scores are normalised per env: 0 is a uniformly random policy's mean return, 1 the success "
        "threshold. Intervals and bands are 95% stratified-bootstrap percentile intervals (each env's seeds "
        "resampled on their own), following Agarwal et al. (2021), *Deep Reinforcement Learning at the Edge "
        "of the Statistical Precipice*. The IQM and the profiles pool the runs of all envs, each run "
        "counting once (an env with more seeds weighs more); the probability of improvement "
        "averages over envs.",
        "",
        "| env | experiment | random score | threshold | runs per label |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    for env_id in envs:
        counts = sorted({len(result.scores[label][env_id]) for label in result.labels})
        lines.append(
            f"| {env_id} | {', '.join(result.sources[env_id])} | {result.random_scores[env_id]:.2f} | "
            f"{result.thresholds[env_id]:g} | {', '.join(map(str, counts))} |"
        )
    if result.missing:
        lines += ["", "**Left out** (no finished runs on every env, so no aggregate):", ""]
        lines += [f"- {label}: no runs on {', '.join(gone)}" for label, gone in result.missing.items()]
    order = sorted(result.labels, key=lambda label: -result.final_iqm[label][0])
    at = [tau for tau in (0.5, 1.0) if np.isclose(result.taus, tau).any()]
    lines += [
        "",
        "## Aggregate IQM of the final normalised score",
        "",
        f"| label | IQM [95% CI] | {' | '.join(f'share of runs > {tau:g}' for tau in at)} | per env IQM |",
        f"| --- | --- | {' | '.join('---' for _ in at)} | --- |",
    ]
    for label in order:
        above = [
            _interval(_at(result.profiles[label], int(np.flatnonzero(np.isclose(result.taus, tau))[0])))
            for tau in at
        ]
        per_env = ", ".join(f"{e} {float(iqm(result.scores[label][e])):.2f}" for e in envs)
        lines.append(f"| {label} | {_interval(result.final_iqm[label])} | {' | '.join(above)} | {per_env} |")
    lines += [
        "",
        "## Per env: final returns against the threshold",
        "",
        "*Solved*: the final return is at or above the env's threshold. *Reached*: some periodic evaluation "
        "was; *kept*: of those, the runs that also ended solved (the others collapsed). Steps to reach: the "
        "median over runs of the env steps of the first evaluation at or above it (`never` when at least "
        "half the runs never got there). Every label with runs, the left-out ones included.",
        "",
        "| env | label | runs | solved | reached | kept | steps to reach |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for env_id in envs:
        for label in [*order, *result.missing]:
            outcome = result.outcomes[label].get(env_id)
            if outcome is None:
                continue
            reach = "never" if math.isinf(outcome.median_reach) else f"{outcome.median_reach:,.0f}"
            lines.append(
                f"| {env_id} | {label} | {outcome.runs} | {outcome.solved}/{outcome.runs} | "
                f"{outcome.reached}/{outcome.runs} | {outcome.kept}/{outcome.reached} | {reach} |"
            )
    lines += [
        "",
        "## Probability of improvement P(row > column), averaged over envs",
        "",
        f"| | {' | '.join(order)} |",
        f"| --- | {' | '.join('---' for _ in order)} |",
    ]
    for x in order:
        cells = ["" if x == y else _interval(result.improvement[(x, y)]) for y in order]
        lines.append(f"| {x} | {' | '.join(cells)} |")
    lines += [
        "",
        "## Sample efficiency: aggregate IQM of the normalised evaluation score at fractions of the budget",
        "",
        f"| label | {' | '.join(f'{f:g}' for f in result.fractions)} |",
        f"| --- | {' | '.join('---:' for _ in result.fractions)} |",
    ]
    for label in order:
        # "-": some run of the label had not been evaluated yet at that fraction of its budget.
        points = ("-" if math.isnan(v) else f"{v:.2f}" for v in result.efficiency[label][0])
        lines.append(f"| {label} | {' | '.join(points)} |")
    lines += [
        "",
        "## Where the time went: wall time of the runs, minutes, summed over seeds",
        "",
        "Each run's training with its periodic evaluations, as the runs recorded it: runs that shared their "
        "cores with other work took longer than they would alone.",
        "",
        f"| label | {' | '.join(envs)} | all envs |",
        f"| --- | {' | '.join('---:' for _ in envs)} | ---: |",
    ]
    for label in [*order, *result.missing]:
        seconds = result.wall_time_s[label]
        minutes = (f"{seconds[e] / 60:.1f}" if e in seconds else "-" for e in envs)
        lines.append(f"| {label} | {' | '.join(minutes)} | {sum(seconds.values()) / 60:.1f} |")
    env_totals = [sum(seconds.get(e, 0.0) for seconds in result.wall_time_s.values()) for e in envs]
    total_cells = " | ".join(f"{total / 60:.1f}" for total in env_totals)
    lines.append(f"| all labels | {total_cells} | {sum(env_totals) / 60:.1f} |")
    lines += ["", *(f"![{name}]({name})" for name in figures), ""]
    return "\n".join(lines)


def write_aggregate(
    experiment_dirs: Sequence[str | Path],
    scores_csv: str | Path,
    out: str | Path,
    *,
    reps: int = 2_000,
    seed: int = 0,
) -> dict[str, Path]:
    """Write the cross-env report of several experiments: ``aggregate.md``, ``aggregate.csv``,
    ``normalized_scores.csv`` and the figures, into ``out``.

    ``aggregate.csv`` is a long table with the columns ``statistic`` (``iqm``, ``profile``, ``efficiency``,
    ``improvement``), ``label``, ``other`` (the second label of an improvement), ``x`` (tau of a profile,
    fraction of budget of an efficiency point), ``estimate``, ``low`` and ``high``. ``normalized_scores.csv``
    has every run's final return and normalised score.

    :param experiment_dirs: the experiment folders of run stores or results folders (:func:`aggregate`)
    :param scores_csv: the random scores (:func:`read_random_scores`)
    :param out: the folder to write into (created)
    :param reps: bootstrap replications
    :param seed: the bootstrap's random seed
    :return: each written file's name -> its path
    :raises ValueError: as :func:`aggregate`
    """
    from rlrelax.compare.plots import plot_aggregate_iqm, plot_performance_profiles, plot_sample_efficiency

    result = aggregate(experiment_dirs, read_random_scores(scores_csv), reps=reps, seed=seed)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    figures = {
        "aggregate_iqm.png": plot_aggregate_iqm,
        "performance_profiles.png": plot_performance_profiles,
        "sample_efficiency.png": plot_sample_efficiency,
    }
    written = {}
    for name, plot in figures.items():
        plot(result, folder / name)
        written[name] = folder / name
    tables: dict[str, list[tuple[object, ...]]] = {
        "aggregate.csv": [
            ("statistic", "label", "other", "x", "estimate", "low", "high"),
            *_csv_rows(result),
        ],
        "normalized_scores.csv": [
            ("env_id", "label", "seed", "final_return", "normalized_score"),
            *(
                (e, label, seed, repr(float(value)), repr(float(score)))
                for label in result.labels
                for e in result.envs
                for seed, value, score in zip(
                    result.seeds[label][e],
                    result.final_returns[label][e],
                    result.scores[label][e],
                    strict=True,
                )
            ),
        ],
    }
    for name, rows in tables.items():
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(rows)
        (folder / name).write_text(text.getvalue())
        written[name] = folder / name
    (folder / "aggregate.md").write_text(_markdown(result, list(figures)))
    written["aggregate.md"] = folder / "aggregate.md"
    return written
