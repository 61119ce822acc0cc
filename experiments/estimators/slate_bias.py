"""Bias and variance of GumbelAC's actor-gradient estimators on slates, against the exact gradient.

    python experiments/estimators/slate_bias.py

On ``rlrelax/Slate-v0`` with 20 items and slates of 3 (``experiments/combinatorial/slate.toml``), GumbelAC's
relaxed estimators have 5-8 times less variance than its score function and still learn slower, which points
to bias; that catalogue has 6,840 ordered slates, too many to enumerate, so the comparison could not measure
it. Here the same env has ``--n-items`` 10 (720 ordered slates, 1,000 joint actions of the factorised
policy), so every gradient has an exact reference: ``Σ_a ∇π(a|s) Q(s, a)`` over every joint action, under
the same critic.

For each policy class (``MlpPolicy``: a categorical per slot; ``TopKPolicy``: Plackett-Luce slates), training
estimator and seed, GumbelAC trains with its defaults for ``--steps`` env steps, and every ``--every`` steps
(from the first gradient step) it draws, on one fixed replay batch, each estimator's gradient ``--draws``
times at each temperature (the score function once: it has none) and compares them with the exact gradient
(:func:`rlrelax.callbacks.gradient_statistics`: relative squared bias ``|E g - g*|²/|g*|²``, cosine between
``E g`` and ``g*``, total variance and SNR, each free of the Monte Carlo term the draws' mean carries; the
summary also divides the variance by ``|g*|²``, so that relative bias² and relative variance add up to a
one-draw estimate's mean squared error relative to ``|g*|²``). The
estimators see the same actor and critic, so their differences are the estimators' alone; the training
estimator decides which actor and critic they see. Each run's final return (deterministic, 50 sessions) is
recorded next to it.

Writes into ``--out``: ``measurements.csv`` (one row per run, step, estimator and temperature),
``runs.csv`` (the final returns), ``summary.csv`` and ``summary.md`` (medians over seeds and measurements
with their interquartile ranges), and ``slate_bias.png``; ``--summarise-only`` rewrites the last three from
the first two.
"""

import csv
import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
import tyro
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy

import rlrelax.envs  # noqa: F401  (registers rlrelax/Slate-v0)
from rlrelax.agents import GumbelAC
from rlrelax.callbacks import gradient_statistics

#: The estimators each policy class accepts (Gumbel-Rao needs noise conditioned on a top-k: not for slates).
ESTIMATORS = {
    "MlpPolicy": ("gumbel_softmax", "straight_through", "gumbel_rao", "score_function"),
    "TopKPolicy": ("gumbel_softmax", "straight_through", "score_function"),
}
UNTEMPERED = "score_function"
#: What each measurement records, from :func:`rlrelax.callbacks.gradient_statistics` (with standard errors).
MEASURED = ("relative_bias_sq", "cosine", "variance", "snr")
#: What the summary reports: the variance relative to ``|g*|²`` as the bias is, and their sum, a one-draw
#: estimate's mean squared error relative to ``|g*|²``.
SUMMARISED = ("relative_bias_sq", "relative_variance", "relative_mse", "cosine", "snr")
LABELS = {
    "relative_bias_sq": "relative bias²",
    "relative_variance": "relative variance",
    "relative_mse": "relative MSE",
    "cosine": "cosine",
    "snr": "SNR",
}


@dataclass
class Args:
    seeds: int = 3
    """training runs per policy class and training estimator (seeds 0..seeds-1)"""
    steps: int = 12_000
    """env steps of each training run (experiments/combinatorial/slate.toml's budget)"""
    every: int = 2_000
    """env steps between measurements"""
    draws: int = 16
    """draws of each estimator's gradient per measurement"""
    batch_size: int = 256
    """replay observations per measurement"""
    temperatures: tuple[float, ...] = (0.1, 0.3, 1.0)
    """Gumbel temperatures of the relaxed estimators (GumbelAC's default is 1.0)"""
    train_estimators: tuple[str, ...] = ("score_function", "gumbel_softmax")
    """the estimators the measured models train with"""
    policies: tuple[str, ...] = ("MlpPolicy", "TopKPolicy")
    """GumbelAC's policy classes"""
    n_items: int = 10
    """the catalogue: 10 items make 720 ordered slates of 3"""
    slate_size: int = 3
    """items per slate"""
    eval_sessions: int = 50
    """deterministic sessions of each run's final evaluation"""
    out: str = "experiments/results/slate_bias"
    """folder of the CSVs, the summary and the figure"""
    summarise_only: bool = False
    """rewrite the summary and the figure from the measurements.csv and runs.csv in --out, without training"""


class MeasureEstimators(BaseCallback):
    """Every ``every`` env steps once training has started, measure each estimator against the exact gradient.

    :param args: the experiment's settings
    :param estimators: the estimators to measure
    :param run: the run's keys, copied into each row
    """

    def __init__(self, args: Args, estimators: tuple[str, ...], run: dict[str, object]) -> None:
        super().__init__()
        self.args, self.estimators, self.run = args, estimators, run
        self.rows: list[dict[str, object]] = []

    def _on_step(self) -> bool:
        model = self.model
        assert isinstance(model, GumbelAC)
        if self.num_timesteps % self.args.every or model._n_updates == 0:
            return True
        for estimator in self.estimators:
            for temperature in (None,) if estimator == UNTEMPERED else self.args.temperatures:
                # The same seed for every estimator: the same replay batch, so one exact gradient for all.
                generator = torch.Generator(device=model.device).manual_seed(self.num_timesteps)
                draws = model.actor_gradient_draws(
                    self.args.draws,
                    self.args.batch_size,
                    generator,
                    estimator=estimator,
                    temperature=temperature,
                )
                stats = gradient_statistics(draws)
                self.rows.append(
                    {
                        **self.run,
                        "step": self.num_timesteps,
                        "estimator": estimator,
                        "temperature": "" if temperature is None else temperature,
                        **{name: stats[name] for name in ("exact_norm", *MEASURED)},
                        **{f"{name}_se": stats[f"{name}_se"] for name in MEASURED},
                    }
                )
        return True


def make_env(args: Args, seed: int) -> gym.Env:
    env = gym.make("rlrelax/Slate-v0", n_items=args.n_items, slate_size=args.slate_size)
    env.reset(seed=seed)
    return env


def train_and_measure(
    args: Args, policy: str, train_estimator: str, seed: int
) -> tuple[list[dict[str, object]], dict[str, object]]:
    """One training run with its measurements, and its final return."""
    run: dict[str, object] = {"policy": policy, "train_estimator": train_estimator, "seed": seed}
    torch.set_num_threads(1)
    model = GumbelAC(policy, make_env(args, seed), seed=seed, estimator=train_estimator)
    callback = MeasureEstimators(args, ESTIMATORS[policy], run)
    start = time.perf_counter()
    model.learn(args.steps, callback=callback)
    returns, _ = evaluate_policy(
        model,
        make_env(args, seed + 1000),
        n_eval_episodes=args.eval_sessions,
        deterministic=True,
        return_episode_rewards=True,
    )
    final = {
        **run,
        "final_return": float(np.mean(returns)),
        "final_return_std": float(np.std(returns)),
        "wall_time_s": time.perf_counter() - start,
    }
    return callback.rows, final


def write_csv(path: Path, rows: Sequence[Mapping[str, object]]) -> None:
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def summarise(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """Median and quartiles of each statistic over seeds and measurements, per set-up and estimator."""
    keys = ("policy", "train_estimator", "estimator", "temperature")
    groups: dict[tuple[str, ...], list[dict[str, str]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[key] for key in keys), []).append(row)
    summary = []
    for group_key, members in groups.items():
        entry = dict(zip(keys, group_key, strict=True))
        entry["measurements"] = str(len(members))
        values = {name: np.array([float(member[name]) for member in members]) for name in MEASURED}
        exact_sq = np.array([float(member["exact_norm"]) ** 2 for member in members])
        values["relative_variance"] = values["variance"] / exact_sq
        values["relative_mse"] = values["relative_bias_sq"] + values["relative_variance"]
        for name in SUMMARISED:
            low, median, high = np.nanpercentile(values[name], [25, 50, 75])
            entry.update({name: f"{median:.6g}", f"{name}_q25": f"{low:.6g}", f"{name}_q75": f"{high:.6g}"})
        summary.append(entry)
    return summary


def setups(rows: list[dict[str, str]]) -> list[tuple[str, str]]:
    """The (policy, training estimator) pairs, in the order they ran."""
    return list(dict.fromkeys((row["policy"], row["train_estimator"]) for row in rows))


def markdown(summary: list[dict[str, str]], finals: list[dict[str, str]]) -> str:
    def cell(row: dict[str, str], name: str) -> str:
        low, median, high = (float(row[key]) for key in (f"{name}_q25", name, f"{name}_q75"))
        return f"{median:.3g} [{low:.3g}, {high:.3g}]"

    seeds = sorted({int(final["seed"]) for final in finals})
    minutes = sum(float(final["wall_time_s"]) for final in finals) / 60
    lines = [
        "# GumbelAC's estimators against the exact gradient on slates",
        "",
        f"Median [quartiles] over seeds {seeds} and every measurement of each run; {len(finals)} runs, "
        f"{minutes:.0f} minutes of training and measuring. Relative bias² ``|E g - g*|²/|g*|²``, relative "
        "variance ``tr(Σ)/|g*|²``, relative MSE (their sum: a one-draw estimate's mean squared error "
        "relative to ``|g*|²``), cosine between ``E g`` and ``g*``, SNR ``|E g|²/tr(Σ)``.",
        "",
    ]
    for setup in setups(summary):
        returns = ", ".join(
            f"{float(final['final_return']):.1f}"
            for final in finals
            if (final["policy"], final["train_estimator"]) == setup
        )
        header = " | ".join(LABELS[name] for name in SUMMARISED)
        lines += [
            f"## {setup[0]}, trained with {setup[1]} (final returns by seed: {returns})",
            "",
            f"| estimator | temperature | {header} |",
            "| --- | ---: |" + " --- |" * len(SUMMARISED),
        ]
        for row in summary:
            if (row["policy"], row["train_estimator"]) == setup:
                cells = " | ".join(cell(row, name) for name in SUMMARISED)
                lines.append(f"| {row['estimator']} | {row['temperature'] or '-'} | {cells} |")
        lines.append("")
    return "\n".join(lines)


def plot(summary: list[dict[str, str]], path: Path) -> None:
    pairs = setups(summary)
    shown = ("relative_bias_sq", "relative_variance", "cosine")
    figure, axes = plt.subplots(len(pairs), len(shown), figsize=(13, 3.2 * len(pairs)), squeeze=False)
    for (policy, train_estimator), row_axes in zip(pairs, axes, strict=True):
        rows = [r for r in summary if (r["policy"], r["train_estimator"]) == (policy, train_estimator)]
        for axis, name in zip(row_axes, shown, strict=True):
            for estimator in dict.fromkeys(r["estimator"] for r in rows):
                points = [r for r in rows if r["estimator"] == estimator]
                middle = [float(p[name]) for p in points]
                if estimator == UNTEMPERED:
                    axis.axhline(middle[0], color="black", linestyle="--", label=estimator)
                    continue
                errors = [
                    [m - float(p[f"{name}_q25"]) for m, p in zip(middle, points, strict=True)],
                    [float(p[f"{name}_q75"]) - m for m, p in zip(middle, points, strict=True)],
                ]
                taus = [float(p["temperature"]) for p in points]
                axis.errorbar(taus, middle, yerr=errors, marker="o", capsize=3, label=estimator)
            axis.set_xscale("log")
            if name == "relative_bias_sq":
                # The score function's bias is 0 within its error, and so may be measured below 0.
                axis.set_yscale("symlog", linthresh=1e-2)
            elif name == "relative_variance":
                axis.set_yscale("log")
            axis.set_xlabel("temperature")
            axis.set_title(f"{policy}, trained with {train_estimator}: {LABELS[name]}", fontsize=9)
        row_axes[0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(args: Args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.summarise_only:
        rows: list[dict[str, object]] = []
        finals: list[dict[str, object]] = []
        for policy, train_estimator, seed in itertools.product(
            args.policies, args.train_estimators, range(args.seeds)
        ):
            run_rows, final = train_and_measure(args, policy, train_estimator, seed)
            rows += run_rows
            finals.append(final)
            print(
                f"{policy} {train_estimator} seed {seed}: final return {final['final_return']:.1f}, "
                f"{final['wall_time_s']:.0f} s",
                flush=True,
            )
        write_csv(out / "measurements.csv", rows)
        write_csv(out / "runs.csv", finals)
    summary = summarise(read_csv(out / "measurements.csv"))
    write_csv(out / "summary.csv", summary)
    (out / "summary.md").write_text(markdown(summary, read_csv(out / "runs.csv")) + "\n")
    plot(summary, out / "slate_bias.png")


if __name__ == "__main__":
    main(tyro.cli(Args))
