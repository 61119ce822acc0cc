"""The report of an experiment folder: ``report.md``, three CSV tables and two plots; with gradient
diagnostics, a section per env, ``gradient_curves.csv`` and a third plot.

Only finished runs (with ``result.json``) are read. The statistics use fixed bootstrap seeds and the files
hold no timestamps or absolute paths, so the same runs always give byte-identical ``report.md``,
``summary.csv``, ``runs.csv``, ``evaluations.csv`` and ``gradient_curves.csv``.
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
from rlrelax.compare.summary import (
    GRADIENT_CURVES,
    AgentSummary,
    Curve,
    GradientCurves,
    gradient_curves,
    summarize,
)

__all__ = ["write_report"]

REPORT_FILE = "report.md"
SUMMARY_FILE = "summary.csv"
RUNS_FILE = "runs.csv"
EVALUATIONS_FILE = "evaluations.csv"
CURVES_FILE = "learning_curves.png"
FINAL_FILE = "final_returns.png"
GRADIENT_CURVES_FILE = "gradient_curves.csv"
GRADIENT_PLOT_FILE = "gradient_diagnostics.png"
# Each agent's gradient curves by (env id, label); None for an agent whose runs measured none.
Curves = dict[tuple[str, str], GradientCurves | None]

_GRADIENT_EXPLAINED = [
    "Every `every` env steps (at the first rollout end at or after each multiple), each run drew its",
    "actor's gradient estimate `g` `draws` times on one fixed batch: `batch` replay observations (GumbelAC;",
    "SoftQ, whose policy is the Boltzmann `softmax(Q/alpha)`), `batch` steps of the last rollout (PPO, A2C),",
    "or bootstrap resamples of the last rollout's episodes (REINFORCE). Each statistic is estimated without",
    "the bias that a finite number of draws gives the naive one, with a jackknife standard error per",
    "measurement (`gradient_stats.csv` in each run folder):",
    "",
    "- *variance*: `tr Cov(g)`, the summed variance of the estimate's coordinates: the noise one update",
    "  carries (log scale in the figure);",
    "- *SNR*: `|E g|² / tr Cov(g)`: well above 1, a single estimate points where its mean does; far below 1,",
    "  it is mostly noise (near 0 its estimate can come out negative);",
    "- *relative bias²*: `|E g - g*|² / |g*|²`, against the exact gradient `g*` of the same objective on the",
    "  same batch (every action enumerated): 0 within its error for an unbiased estimator;",
    "- *cosine*: between `E g` and `g*`: 1 when the estimate points, on average, where the exact gradient",
    "  does (`nan` when no mean gradient is detectable: an estimate of `|E g|²` at or below 0).",
    "",
    "The table gives each at the last measurement the runs share: IQM over runs [95% bootstrap band], as the",
    "figure does over training; *time measuring* is the share of a run's wall time spent on it (mean over",
    "runs).",
    "",
]


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
    """One row per finished run: ``env_id``, ``agent``, ``seed``, ``final_return``, ``final_episodes`` (the
    episodes it averages), ``final_timestep``, ``solved``, ``steps_first_reach``, ``steps_stay``,
    ``wall_time_s``, ``threshold`` (the run's success threshold, empty for an env without one),
    ``total_timesteps`` (the run's budget) and ``path``.

    With ``evaluations.csv`` it holds all that ``rlrelax aggregate`` reads of a run, so a committed results
    folder can stand in for the run store (:func:`rlrelax.compare.aggregate.read_runs`).
    """
    rows: list[list[Any]] = [
        [
            "env_id",
            "agent",
            "seed",
            "final_return",
            "final_episodes",
            "final_timestep",
            "solved",
            "steps_first_reach",
            "steps_stay",
            "wall_time_s",
            "threshold",
            "total_timesteps",
            "path",
        ]
    ]
    for s in summaries:
        for run, final, first, stay in zip(s.runs, s.final_returns, s.first_reach, s.stay, strict=True):
            threshold = run.result.threshold
            rows.append(
                [
                    s.env_id,
                    s.label,
                    run.seed,
                    _num(float(final), 3),
                    run.final_episodes,
                    int(run.timesteps[-1]),
                    "" if s.threshold is None else int(final >= s.threshold),
                    "" if first is None else first,
                    "" if stay is None else stay,
                    _num(run.result.wall_time_s, 1),
                    # In full: rlrelax aggregate normalises by it, from this file when the runs are gone.
                    "" if threshold is None else repr(float(threshold)),
                    int(run.config["run"]["total_timesteps"]),
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


def _asked_for_diagnostics(summary: AgentSummary) -> bool:
    """Whether the agent's runs asked for gradient diagnostics (an agent without an actor gradient too)."""
    return any("diagnostics" in run.config["run"] for run in summary.runs)


def _last(curve: Curve) -> str:
    """The IQM and band of a curve at its last step, in a form that fits values of any magnitude."""
    middle, low, high = (float(values[-1]) for values in curve)
    return f"{middle:.3g} [{low:.3g}, {high:.3g}]"


def _gradient_curves_csv(curves: Curves) -> str:
    """The gradient curves of every agent: IQM over runs with the 95% band, per statistic and measurement."""
    header: list[Any] = ["env_id", "agent", "timestep", "runs"]
    header += [f"{name}_{part}" for name in GRADIENT_CURVES for part in ("iqm", "low", "high")]
    rows = [header]
    for (env_id, label), agent in sorted(curves.items()):
        if agent is None:
            continue
        for index, timestep in enumerate(agent.timesteps):
            cells: list[str] = []
            for name in GRADIENT_CURVES:
                curve = agent.curves.get(name)
                cells += ["", "", ""] if curve is None else [f"{float(part[index]):.6g}" for part in curve]
            rows.append([env_id, label, int(timestep), len(agent.runs), *cells])
    return _csv(rows)


def _gradient_section(env_id: str, rows: list[AgentSummary], curves: Curves) -> list[str]:
    """The report's section on the gradient quality of one env's agents."""
    lines = [f"## Gradient quality: {env_id}", "", *_GRADIENT_EXPLAINED]
    lines += [
        "| agent | algorithm | runs | every / draws / batch | measurements | variance | SNR | relative bias² "
        "| cosine | time measuring |",
        "| --- | --- | ---: | ---: | ---: | --- | --- | --- | --- | ---: |",
    ]
    notes = []
    for s in rows:
        agent = curves[(s.env_id, s.label)]
        if agent is None:
            why = (
                f"{s.algorithm} has no actor gradient they can measure (they measure rlrelax's agents and "
                "SB3's PPO and A2C)"
                if _asked_for_diagnostics(s)
                else "its runs asked for none"
            )
            notes.append(f"- {s.label} ({s.algorithm}): no gradient diagnostics: {why}.")
            continue
        settings = agent.runs[0].config["run"]["diagnostics"]
        if "gradient_diagnostics_note" in agent.runs[0].config:
            notes.append(f"- {s.label} ({s.algorithm}): {agent.runs[0].config['gradient_diagnostics_note']}.")
        cells = [_last(agent.curves[name]) if name in agent.curves else "—" for name in GRADIENT_CURVES]
        if not agent.timesteps.size:
            cells = ["—"] * len(GRADIENT_CURVES)
            notes.append(f"- {s.label} ({s.algorithm}): no measurement that all its runs share: no curves.")
        elif not agent.curves["variance"][0].any():
            notes.append(
                f"- {s.label} ({s.algorithm}): zero variance: its estimate is the same at every draw (a "
                "deterministic estimator), so its SNR is infinite; neither shows on the figure's log scales."
            )
        if agent.timesteps.size and not agent.has_exact:
            notes.append(
                f"- {s.label} ({s.algorithm}): no exact gradient to compare with (a policy-gradient method "
                "does not know the returns of the actions not taken, and a critic's joint action space too "
                "large to enumerate has no exact expectation), so no relative bias or cosine."
            )
        lines.append(
            f"| {s.label} | {s.algorithm} | {len(agent.runs)} "
            f"| {settings['every']:,} / {settings['draws']} / {settings['batch_size']} "
            f"| {agent.timesteps.size} | " + " | ".join(cells) + f" | {agent.measuring_share.mean():.1%} |"
        )
    return [*lines, "", *notes, ""]


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
    name: str,
    summaries: list[AgentSummary],
    plots: list[str],
    curves: Curves,
    reps: int,
    seed: int,
    notes: list[str],
) -> str:
    lines = [f"# Comparison: {name}", ""]
    n_runs = sum(len(s.runs) for s in summaries)
    episodes = {run.config["run"]["evaluation"]["episodes"] for s in summaries for run in s.runs}
    shown = "/".join(map(str, sorted(episodes)))
    evaluated = [run for s in summaries for run in s.runs if run.final_evaluation is not None]
    if evaluated:
        counts = "/".join(map(str, sorted({run.final_episodes for run in evaluated})))
        # An agent's runs all have one or none (summarize checks), so a mix is between agents.
        others = (
            "" if len(evaluated) == n_runs else f" ({len(evaluated)} runs; the others: their last evaluation)"
        )
        how = [
            f"{n_runs} finished runs (folders with a `result.json`). Evaluations play {shown} deterministic",
            "episodes on a separately seeded eval env. A run's *final return* is the mean return of its",
            f"final model over a final evaluation of {counts} deterministic episodes on that env after",
            f"training (`final_evaluation.json`){others}.",
        ]
    else:
        how = [
            f"{n_runs} finished runs (folders with a `result.json`). A run's *final return* is the mean",
            f"return of its last evaluation ({shown} deterministic episodes on a separately seeded eval",
            "env), that is, of the final model.",
        ]
    lines += how
    lines += [
        "IQM = interquartile mean over seeds; intervals are 95% percentile intervals",
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
        if plot != GRADIENT_PLOT_FILE:
            lines += [f"![{plot}]({plot})", ""]
    for env_id in sorted({s.env_id for s in summaries}):
        rows = [s for s in summaries if s.env_id == env_id]
        if any(_asked_for_diagnostics(s) for s in rows):
            lines += _gradient_section(env_id, rows, curves)
    if GRADIENT_PLOT_FILE in plots:
        lines += [f"![{GRADIENT_PLOT_FILE}]({GRADIENT_PLOT_FILE})", ""]
    if notes:
        lines += ["## Notes", "", *notes, ""]
    return "\n".join(lines)


def write_report(experiment_dir: str | Path, *, reps: int = 10_000, seed: int = 0) -> dict[str, Path]:
    """Write ``report.md``, ``summary.csv``, ``runs.csv``, ``evaluations.csv`` and the two plots; where runs
    asked for gradient diagnostics, also ``gradient_curves.csv`` and ``gradient_diagnostics.png``.

    ``runs.csv`` holds each run's final return, success threshold and budget, ``evaluations.csv`` every
    evaluation of every run and ``gradient_curves.csv`` the gradient statistics over training (IQM over runs
    with 95% bands): small enough to commit, they keep a comparison's results when its run folders are gone,
    and ``rlrelax aggregate`` reads a folder holding ``runs.csv`` and ``evaluations.csv`` as it reads the
    run store.

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
    curves: Curves = {(s.env_id, s.label): gradient_curves(s, seed=seed) for s in summaries}
    diagnostics = any(_asked_for_diagnostics(s) for s in summaries)
    tables = {
        SUMMARY_FILE: _summary_csv(summaries),
        RUNS_FILE: _runs_csv(summaries),
        EVALUATIONS_FILE: _evaluations_csv(summaries),
    }
    if diagnostics:
        tables[GRADIENT_CURVES_FILE] = _gradient_curves_csv(curves)
    written = {}
    for name, table in tables.items():
        (directory / name).write_text(table)
        written[name] = directory / name
    plots: list[str] = []
    try:
        from rlrelax.compare.plots import plot_final_returns, plot_gradient_diagnostics, plot_learning_curves
    except ImportError:
        notes = ["- plots: not drawn, matplotlib is not installed (`pip install 'rlrelax[compare]'`)", *notes]
    else:
        plot_learning_curves(summaries, directory / CURVES_FILE)
        plot_final_returns(summaries, directory / FINAL_FILE)
        plots = [CURVES_FILE, FINAL_FILE]
        measured = [agent for agent in curves.values() if agent is not None]
        if measured:
            plot_gradient_diagnostics(summaries, measured, directory / GRADIENT_PLOT_FILE)
            plots.append(GRADIENT_PLOT_FILE)
        written.update({name: directory / name for name in plots})
    report = _markdown(directory.name, summaries, plots, curves, reps, seed, notes)
    (directory / REPORT_FILE).write_text(report)
    written[REPORT_FILE] = directory / REPORT_FILE
    return written
