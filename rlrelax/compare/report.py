"""The report of an experiment folder: ``report.md``, three CSV tables and two plots.

Only finished runs (with ``result.json``) are read. The statistics use fixed bootstrap seeds and the files
hold no timestamps or absolute paths, so the same runs always give byte-identical ``report.md``,
``summary.csv``, ``runs.csv`` and ``evaluations.csv``.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from rlrelax.compare.stats import Interval, median_steps, probability_of_improvement
from rlrelax.compare.store import ERROR_FILE, RESULT_FILE, env_id_from_folder
from rlrelax.compare.summary import AgentSummary, summarize

__all__ = ["write_report"]

REPORT_FILE = "report.md"
SUMMARY_FILE = "summary.csv"
RUNS_FILE = "runs.csv"
EVALUATIONS_FILE = "evaluations.csv"
CURVES_FILE = "learning_curves.png"
FINAL_FILE = "final_returns.png"


def _num(value: float | None, digits: int = 1) -> str:
    """A number for a CSV cell; an empty cell for what needs a threshold the env does not have."""
    if value is None:
        return ""
    return "inf" if math.isinf(value) else f"{value:.{digits}f}"


def _steps(value: float) -> str:
    return "never" if math.isinf(value) else f"{value:,.0f}"


def _interval(interval: Interval, digits: int = 1) -> str:
    return f"{interval[0]:.{digits}f} [{interval[1]:.{digits}f}, {interval[2]:.{digits}f}]"


def _csv(rows: list[list[Any]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def _summary_csv(summaries: list[AgentSummary]) -> str:
    rows: list[list[Any]] = [
        [
            "env_id",
            "agent",
            "algorithm",
            "runs",
            "total_timesteps",
            "threshold",
            "final_return_iqm",
            "final_return_iqm_low",
            "final_return_iqm_high",
            "final_return_mean",
            "final_return_std",
            "fraction_solved",
            "median_steps_first_reach",
            "runs_reached",
            "median_steps_stay",
            "runs_stayed",
            "wall_time_mean_s",
            "wall_time_min_s",
            "wall_time_max_s",
        ]
    ]
    for s in summaries:
        rows.append(
            [
                s.env_id,
                s.label,
                s.algorithm,
                len(s.runs),
                s.runs[0].config["run"]["total_timesteps"],
                _num(s.threshold, 3),
                *(_num(v, 3) for v in s.final_iqm),
                _num(float(s.final_returns.mean()), 3),
                _num(float(s.final_returns.std()), 3),
                _num(s.solved, 3),
                *(
                    ["", "", "", ""]
                    if s.threshold is None
                    else [
                        _num(median_steps(s.first_reach), 0),
                        sum(v is not None for v in s.first_reach),
                        _num(median_steps(s.stay), 0),
                        sum(v is not None for v in s.stay),
                    ]
                ),
                *(_num(float(f(s.wall_times)), 1) for f in (np.mean, np.min, np.max)),
            ]
        )
    return _csv(rows)


def _runs_csv(summaries: list[AgentSummary]) -> str:
    rows: list[list[Any]] = [
        [
            "env_id",
            "agent",
            "seed",
            "final_return",
            "final_timestep",
            "solved",
            "steps_first_reach",
            "steps_stay",
            "wall_time_s",
            "path",
        ]
    ]
    for s in summaries:
        for run, final, first, stay in zip(s.runs, s.final_returns, s.first_reach, s.stay, strict=True):
            rows.append(
                [
                    s.env_id,
                    s.label,
                    run.seed,
                    _num(float(final), 3),
                    int(run.timesteps[-1]),
                    "" if s.threshold is None else int(final >= s.threshold),
                    "" if first is None else first,
                    "" if stay is None else stay,
                    _num(run.result.wall_time_s, 1),
                    run.path,
                ]
            )
    return _csv(rows)


def _evaluations_csv(summaries: list[AgentSummary]) -> str:
    """Every evaluation of every run (the mean return over its episodes): the learning curves, compactly."""
    rows: list[list[Any]] = [["env_id", "agent", "seed", "timestep", "mean_return"]]
    for s in summaries:
        for run in s.runs:
            for timestep, returns in zip(run.timesteps, run.returns, strict=True):
                rows.append([s.env_id, s.label, run.seed, int(timestep), _num(float(returns.mean()), 3)])
    return _csv(rows)


def _unfinished(experiment_dir: Path) -> list[str]:
    """Run folders without ``result.json``: failed (``error.txt``) or interrupted; not counted anywhere."""
    lines = []
    for folder in sorted(Path(experiment_dir).glob("*/*/seed-*")):
        if folder.is_dir() and not (folder / RESULT_FILE).exists():
            state = "failed, see error.txt" if (folder / ERROR_FILE).exists() else "unfinished"
            name = f"{env_id_from_folder(folder.parent.parent.name)} / {folder.parent.name} / {folder.name}"
            lines.append(f"- {name}: {state} (not counted)")
    return lines


def _markdown(
    name: str, summaries: list[AgentSummary], plots: list[str], reps: int, seed: int, notes: list[str]
) -> str:
    lines = [f"# Comparison: {name}", ""]
    n_runs = sum(len(s.runs) for s in summaries)
    episodes = {run.config["run"]["evaluation"]["episodes"] for s in summaries for run in s.runs}
    shown = "/".join(map(str, sorted(episodes)))
    lines += [
        f"{n_runs} finished runs (folders with a `result.json`). A run's *final return* is the mean return",
        f"of its last evaluation ({shown} deterministic episodes on a separately seeded eval env), that",
        "is, of the final model. IQM = interquartile mean over seeds; intervals are 95% percentile intervals",
        f"of a stratified bootstrap over seeds ({reps} replications, seed {seed}), as in rliable (Agarwal et",
        "al., 2021). *Solved*: the final return reaches the threshold. Steps to reach / to stay: median over",
        "seeds of the env steps at which an evaluation first reached the threshold, and from which every",
        "later evaluation stayed at or above it (`never` when at least half the seeds did not). An env",
        "without a threshold shows `—` for these.",
        "",
    ]
    for env_id in sorted({s.env_id for s in summaries}):
        rows = [s for s in summaries if s.env_id == env_id]
        threshold = rows[0].threshold
        title = "no success threshold" if threshold is None else f"success threshold {threshold:g}"
        lines += [f"## {env_id} ({title})", ""]
        lines += [
            "| agent | algorithm | runs | env steps | IQM final return [95% CI] | mean ± std | solved "
            "| steps to reach (runs) | steps to stay (runs) | wall time per run, s (min-max) |",
            "| --- | --- | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: |",
        ]
        for s in rows:
            wall = s.wall_times
            budget = s.runs[0].config["run"]["total_timesteps"]
            if s.solved is None:
                solved = reach = stay = "—"
            else:
                solved = f"{s.solved:.0%}"
                reached = sum(v is not None for v in s.first_reach)
                stayed = sum(v is not None for v in s.stay)
                reach = f"{_steps(median_steps(s.first_reach))} ({reached}/{len(s.runs)})"
                stay = f"{_steps(median_steps(s.stay))} ({stayed}/{len(s.runs)})"
            lines.append(
                f"| {s.label} | {s.algorithm} | {len(s.runs)} | {budget:,} "
                f"| {_interval(s.final_iqm)} | {s.final_returns.mean():.1f} ± {s.final_returns.std():.1f} "
                f"| {solved} | {reach} | {stay} | {wall.mean():.1f} ({wall.min():.1f}-{wall.max():.1f}) |"
            )
        if len(rows) > 1:
            lines += [
                "",
                "Probability of improvement P(row > column): the chance that a run of the row agent ends",
                "with a higher final return than a run of the column agent (ties count ½), with its 95%",
                "interval.",
                "",
                "| P(row > column) | " + " | ".join(s.label for s in rows) + " |",
                "| --- |" + " --- |" * len(rows),
            ]
            for x in rows:
                cells = [
                    "—"
                    if x is y
                    else _interval(
                        probability_of_improvement(x.final_returns, y.final_returns, reps=reps, seed=seed), 2
                    )
                    for y in rows
                ]
                lines.append(f"| {x.label} | " + " | ".join(cells) + " |")
        lines.append("")
    for plot in plots:
        lines += [f"![{plot}]({plot})", ""]
    if notes:
        lines += ["## Notes", "", *notes, ""]
    return "\n".join(lines)


def write_report(experiment_dir: str | Path, *, reps: int = 10_000, seed: int = 0) -> dict[str, Path]:
    """Write ``report.md``, ``summary.csv``, ``runs.csv``, ``evaluations.csv`` and the two plots.

    ``runs.csv`` holds each run's final return and ``evaluations.csv`` every evaluation of every run: small
    enough to commit, they keep a comparison's results when its run folders are gone.

    The plots need matplotlib (``pip install 'rlrelax[compare]'``); without it they are left out and the
    report says so.

    :param experiment_dir: ``<out>/<experiment>``
    :param reps: bootstrap replications for the confidence intervals
    :param seed: the bootstrap seed
    :return: the files written, by name
    :raises ValueError: if the folder holds no finished run
    """
    directory = Path(experiment_dir)
    summaries = summarize(directory, reps=reps, seed=seed)
    if not summaries:
        raise ValueError(f"{directory} holds no finished run (no <env>/<agent>/seed-<n>/{RESULT_FILE})")
    notes = _unfinished(directory)
    tables = {
        SUMMARY_FILE: _summary_csv(summaries),
        RUNS_FILE: _runs_csv(summaries),
        EVALUATIONS_FILE: _evaluations_csv(summaries),
    }
    written = {}
    for name, table in tables.items():
        (directory / name).write_text(table)
        written[name] = directory / name
    plots: list[str] = []
    try:
        from rlrelax.compare.plots import plot_final_returns, plot_learning_curves
    except ImportError:
        notes = ["- plots: not drawn, matplotlib is not installed (`pip install 'rlrelax[compare]'`)", *notes]
    else:
        plot_learning_curves(summaries, directory / CURVES_FILE)
        plot_final_returns(summaries, directory / FINAL_FILE)
        plots = [CURVES_FILE, FINAL_FILE]
        written.update({name: directory / name for name in plots})
    (directory / REPORT_FILE).write_text(_markdown(directory.name, summaries, plots, reps, seed, notes))
    written[REPORT_FILE] = directory / REPORT_FILE
    return written
