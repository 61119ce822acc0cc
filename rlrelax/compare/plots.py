"""Plots of a report: learning curves (IQM with a 95% band) and interval estimates of the final return.

Drawn on matplotlib ``Figure`` objects directly, without ``pyplot``, so no global state or GUI backend is
touched (reports are also written from worker-free library calls and from CI).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from rlrelax.compare.summary import AgentSummary

__all__ = ["plot_final_returns", "plot_learning_curves"]

# PNG metadata without the matplotlib version, so the same runs draw the same file on other installs.
_METADATA = {"Software": None}


def _envs(summaries: Sequence[AgentSummary]) -> list[str]:
    return sorted({s.env_id for s in summaries})


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
        for s in rows:
            middle, low, high = s.curve
            (line,) = ax.plot(s.timesteps, middle, label=f"{s.label} ({len(s.runs)} runs)")
            ax.fill_between(s.timesteps, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
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
