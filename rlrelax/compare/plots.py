"""Plots of a report: learning curves (IQM with a 95% band), interval estimates of the final return, and the
gradient diagnostics over training; and of the cross-env statistics of ``rlrelax aggregate``.

Drawn on matplotlib ``Figure`` objects directly, without ``pyplot``, so no global state or GUI backend is
touched (reports are also written from worker-free library calls and from CI).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from rlrelax.compare.aggregate import AggregateResult
from rlrelax.compare.summary import GRADIENT_CURVES, AgentSummary, Curve, GradientCurves

__all__ = [
    "plot_aggregate_iqm",
    "plot_final_returns",
    "plot_gradient_diagnostics",
    "plot_learning_curves",
    "plot_performance_profiles",
    "plot_sample_efficiency",
]

#: Each gradient statistic's title and axis scale: the SNR spans orders of magnitude too, but its unbiased
#: estimate can be negative, which a symmetric log scale shows.
_GRADIENT_AXES = {
    "variance": ("variance tr Cov(g) (log)", "log"),
    "snr": ("SNR |E g|² / tr Cov(g) (symlog)", "symlog"),
    "relative_bias_sq": ("relative bias² |E g - g*|² / |g*|²", "linear"),
    "cosine": ("cosine(E g, g*)", "linear"),
}

# PNG metadata without the matplotlib version, so the same runs draw the same file on other installs.
_METADATA = {"Software": None}


def _envs(summaries: Sequence[AgentSummary]) -> list[str]:
    return sorted({s.env_id for s in summaries})


def _band(ax: Axes, steps: np.ndarray, curve: Curve, label: str, color: str) -> None:
    """One IQM line with its 95% band."""
    middle, low, high = curve
    ax.plot(steps, middle, label=label, color=color)
    ax.fill_between(steps, low, high, color=color, alpha=0.2, linewidth=0)


def plot_learning_curves(summaries: Sequence[AgentSummary], path: Path) -> None:
    """Draw the IQM evaluation return against env steps, one line per agent and a panel per env.

    :param summaries: the report's summaries (:func:`rlrelax.compare.summarize`)
    :param path: the PNG to write
    """
    envs = _envs(summaries)
    figure = Figure(figsize=(6.4 * len(envs), 4.4), layout="constrained")
    axes = figure.subplots(1, len(envs), squeeze=False)[0]
    for ax, env_id in zip(axes, envs, strict=True):
        rows = [s for s in summaries if s.env_id == env_id]
        for index, s in enumerate(rows):
            _band(ax, s.timesteps, s.curve, f"{s.label} ({len(s.runs)} runs)", f"C{index % 10}")
        if rows[0].threshold is not None:
            ax.axhline(rows[0].threshold, color="black", linestyle="--", linewidth=0.8, label="threshold")
        ax.set(title=env_id, xlabel="env steps", ylabel="evaluation return (IQM, 95% CI)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    figure.savefig(path, dpi=120, metadata=_METADATA)


def plot_final_returns(summaries: Sequence[AgentSummary], path: Path) -> None:
    """Draw each agent's IQM final return with its 95% interval, a panel per env.

    :param summaries: the report's summaries
    :param path: the PNG to write
    """
    envs = _envs(summaries)
    height = max(2.0, 0.5 * max(sum(s.env_id == e for s in summaries) for e in envs) + 1.2)
    figure = Figure(figsize=(6.4 * len(envs), height), layout="constrained")
    axes = figure.subplots(1, len(envs), squeeze=False)[0]
    for ax, env_id in zip(axes, envs, strict=True):
        rows = [s for s in summaries if s.env_id == env_id]
        for y, s in enumerate(rows):
            middle, low, high = s.final_iqm
            ax.errorbar(
                [middle], [y], xerr=[[middle - low], [high - middle]], fmt="o", capsize=4, color=f"C{y % 10}"
            )
        if rows[0].threshold is not None:
            ax.axvline(rows[0].threshold, color="black", linestyle="--", linewidth=0.8)
        ax.set_yticks(range(len(rows)), [s.label for s in rows])
        ax.set_ylim(-0.6, len(rows) - 0.4)
        ax.invert_yaxis()
        ax.set(title=env_id, xlabel="final return (IQM, 95% CI)")
        ax.grid(axis="x", alpha=0.3)
    figure.savefig(path, dpi=120, metadata=_METADATA)


def plot_gradient_diagnostics(
    summaries: Sequence[AgentSummary], curves: Sequence[GradientCurves], path: Path
) -> None:
    """Draw each gradient statistic over training, IQM over runs with a 95% band: a row per env, a column per
    statistic, one line per agent in the colour of its learning curve.

    :param summaries: the report's summaries, which fix each agent's colour
    :param curves: the agents' gradient curves (:func:`rlrelax.compare.summary.gradient_curves`)
    :param path: the PNG to write
    """
    envs = sorted({c.env_id for c in curves})
    figure = Figure(figsize=(4.2 * len(GRADIENT_CURVES), 3.4 * len(envs)), layout="constrained")
    axes = figure.subplots(len(envs), len(GRADIENT_CURVES), squeeze=False)
    for row, env_id in zip(axes, envs, strict=True):
        labels = [s.label for s in summaries if s.env_id == env_id]
        for ax, name in zip(row, GRADIENT_CURVES, strict=True):
            title, scale = _GRADIENT_AXES[name]
            for c in curves:
                if c.env_id == env_id and name in c.curves:
                    color = f"C{labels.index(c.label) % 10}"
                    _band(ax, c.timesteps, c.curves[name], f"{c.label} ({len(c.runs)} runs)", color)
            ax.set_yscale(scale)
            ax.set(title=f"{env_id}: {title}", xlabel="env steps")
            ax.grid(alpha=0.3)
            if ax.has_data():
                ax.legend(fontsize="small")
            else:
                empty = "no exact gradient" if name in GRADIENT_CURVES[2:] else "no measurement"
                ax.text(0.5, 0.5, empty, ha="center", va="center", transform=ax.transAxes)
    figure.savefig(path, dpi=120, metadata=_METADATA)


def plot_aggregate_iqm(result: AggregateResult, path: Path) -> None:
    """Draw each label's aggregate IQM of the normalised final score with its 95% interval.

    :param result: the cross-env statistics (:func:`rlrelax.compare.aggregate.aggregate`)
    :param path: the PNG to write
    """
    labels = result.labels
    figure = Figure(figsize=(6.4, max(2.0, 0.5 * len(labels) + 1.2)), layout="constrained")
    ax = figure.subplots()
    for y, label in enumerate(labels):
        middle, low, high = result.final_iqm[label]
        ax.errorbar(
            [middle], [y], xerr=[[middle - low], [high - middle]], fmt="o", capsize=4, color=f"C{y % 10}"
        )
    for x, style in ((0.0, ":"), (1.0, "--")):  # random, threshold
        ax.axvline(x, color="black", linestyle=style, linewidth=0.8)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_ylim(-0.6, len(labels) - 0.4)
    ax.invert_yaxis()
    ax.set(
        title=f"{len(result.envs)} envs", xlabel="normalised final score (IQM, 95% CI; 0 random, 1 threshold)"
    )
    ax.grid(axis="x", alpha=0.3)
    figure.savefig(path, dpi=120, metadata=_METADATA)


def plot_performance_profiles(result: AggregateResult, path: Path) -> None:
    """Draw each label's performance profile: the fraction of runs with a final score above tau, with bands.

    :param result: the cross-env statistics
    :param path: the PNG to write
    """
    figure = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = figure.subplots()
    for index, label in enumerate(result.labels):
        _band(ax, result.taus, result.profiles[label], label, f"C{index % 10}")
    ax.axvline(1.0, color="black", linestyle="--", linewidth=0.8)
    ax.set(
        title=f"performance profiles, {len(result.envs)} envs",
        xlabel="normalised score τ (0 random, 1 threshold)",
        ylabel="fraction of runs with score > τ",
        ylim=(-0.02, 1.02),
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    figure.savefig(path, dpi=120, metadata=_METADATA)


def plot_sample_efficiency(result: AggregateResult, path: Path) -> None:
    """Draw each label's aggregate IQM of the normalised evaluation score against the fraction of its budget.

    :param result: the cross-env statistics
    :param path: the PNG to write
    """
    figure = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = figure.subplots()
    for index, label in enumerate(result.labels):
        _band(ax, result.fractions, result.efficiency[label], label, f"C{index % 10}")
    ax.axhline(1.0, color="black", linestyle="--", linewidth=0.8)
    ax.set(
        title=f"sample efficiency, {len(result.envs)} envs",
        xlabel="fraction of the agent's budget",
        ylabel="normalised evaluation score (IQM, 95% CI)",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    figure.savefig(path, dpi=120, metadata=_METADATA)
