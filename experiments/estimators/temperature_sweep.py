"""Bias and variance of the relaxed estimators against the temperature, for K = 2, 10 and 100 categories.

    python experiments/estimators/temperature_sweep.py

The objective is ``f(a) = ‖a - t‖²`` of one-hot or relaxed actions ``a``, with a fixed target
``t ~ U(0, 1)^K`` and logits ``~ N(0, 1)`` (both seeded); the reference is the exact gradient by
enumeration. For every ``K``, ``tau`` and estimator, ``draws`` independent one-sample estimates give the
squared bias ``‖E[ĝ] - ∇‖²`` (less the Monte Carlo floor ``tr(Σ) / draws`` that the squared error of a
mean carries on average) and the total variance ``tr(Σ)``, both relative to ``‖∇‖²``. The score function
with the exact ``E[f]`` as its baseline (unbiased, no temperature) is the reference line. Paulus,
Maddison and Krause (2021) prove that Gumbel-Rao has the expectation of straight-through and no more
variance; this shows by how much. Writes ``temperature_sweep.csv`` and ``temperature_sweep.png`` into
``--out``.
"""

import csv
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
import tyro
from torch import Tensor

from rlrelax.estimators import ESTIMATORS, exact_gradient

RELAXED = {
    "gumbel_softmax": "Gumbel-softmax",
    "straight_through": "straight-through",
    "gumbel_rao": "Gumbel-Rao",
}


@dataclass
class Args:
    draws: int = 20_000
    """independent one-sample estimates per point"""
    n_rao_samples: int = 10
    """conditional Gumbel draws of Gumbel-Rao per estimate (rlrelax's default)"""
    seed: int = 0
    """seed of the objective, the logits and the draws"""
    out: str = "experiments/results/temperature_sweep"
    """folder of the CSV and the figure"""


SIZES = (2, 10, 100)
TAUS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 2.0, 5.0)


def objective(n_actions: int, seed: int) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    """Logits ``(K,)`` and ``f(a) = ‖a - t‖²``."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(n_actions, generator=generator, dtype=torch.float64)
    target = torch.rand(n_actions, generator=generator, dtype=torch.float64)
    return logits, lambda actions: ((actions - target) ** 2).sum(-1)


def statistics(
    estimator: str, logits: Tensor, f: Callable[[Tensor], Tensor], args: Args, **options: object
) -> dict[str, float]:
    """Squared bias and total variance of one-sample estimates, relative to the exact gradient's size."""
    truth = exact_gradient(logits, f)
    copies = logits.expand(args.draws, -1).clone().requires_grad_(True)
    generator = torch.Generator().manual_seed(args.seed + 1)
    ESTIMATORS[estimator](copies, f, n_samples=1, generator=generator, **options).backward()
    assert copies.grad is not None
    draws = copies.grad
    error = draws.mean(0) - truth
    covariance = torch.cov(draws.T)
    variance = float(covariance.trace())
    # ‖mean - truth‖² overestimates the squared bias by tr(Σ)/n on average; its standard error is
    # sqrt(4 eᵀΣe/n + 2 tr(Σ²)/n²) for the error e.
    n = args.draws
    squared_bias = float(error @ error) - variance / n
    bias_se = float(
        (4 * error @ covariance @ error / n + 2 * (covariance @ covariance).trace() / n**2).sqrt()
    )
    scale = float(truth @ truth)
    return {
        "relative_squared_bias": squared_bias / scale,
        "relative_squared_bias_se": bias_se / scale,
        "relative_variance": variance / scale,
    }


def plot(rows: list[dict[str, object]], path: Path) -> None:
    figure, axes = plt.subplots(2, len(SIZES), figsize=(13, 7), constrained_layout=True, sharex=True)
    for column, n_actions in enumerate(SIZES):
        mine = [row for row in rows if row["K"] == n_actions]
        reference = next(row for row in mine if row["estimator"] == "score_function")
        for color, (estimator, label) in zip(plt.cm.tab10.colors, RELAXED.items(), strict=False):
            points = [row for row in mine if row["estimator"] == estimator]
            taus = [float(row["tau"]) for row in points]
            resolved = [
                row
                for row in points
                if float(row["relative_squared_bias"]) > 2 * float(row["relative_squared_bias_se"])
            ]
            axes[0, column].errorbar(
                [float(row["tau"]) for row in resolved],
                [float(row["relative_squared_bias"]) for row in resolved],
                yerr=[2 * float(row["relative_squared_bias_se"]) for row in resolved],
                color=color,
                marker="o",
                markersize=3,
                capsize=2,
                label=label,
            )
            axes[1, column].plot(
                taus,
                [float(row["relative_variance"]) for row in points],
                color=color,
                marker="o",
                markersize=3,
            )
        axes[1, column].axhline(
            float(reference["relative_variance"]),
            color="black",
            linestyle=":",
            label="REINFORCE, baseline E[f]",
        )
        axes[0, column].set(title=f"K = {n_actions}", xscale="log", yscale="log")
        axes[1, column].set(xlabel="temperature τ", xscale="log", yscale="log")
    axes[0, 0].set_ylabel("squared bias / ‖∇‖²\n(points resolved from 0 by 2 s.e.)")
    axes[1, 0].set_ylabel("total variance / ‖∇‖²")
    axes[0, 0].legend(fontsize=8)
    axes[1, 0].legend(fontsize=8)
    figure.suptitle("f(a) = ‖a - t‖², one sample per estimate: bias and variance against the temperature")
    figure.savefig(path, dpi=120)


def main(args: Args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows: list[dict[str, object]] = []
    for n_actions in SIZES:
        logits, f = objective(n_actions, args.seed)
        # The exact E[f] as baseline: without one, the offset ‖t‖² of f alone dominates the variance.
        expected = ESTIMATORS["exact"](logits, f, n_samples=1)
        rows.append(
            {"K": n_actions, "estimator": "score_function", "tau": ""}
            | statistics("score_function", logits, f, args, baseline=expected)
        )
        for tau in TAUS:
            for estimator in RELAXED:
                options: dict[str, object] = {"tau": tau}
                if estimator == "gumbel_rao":
                    options["n_rao_samples"] = args.n_rao_samples
                rows.append(
                    {"K": n_actions, "estimator": estimator, "tau": tau}
                    | statistics(estimator, logits, f, args, **options)
                )
            straight, rao = (
                next(
                    row
                    for row in rows
                    if row["K"] == n_actions and row["tau"] == tau and row["estimator"] == name
                )
                for name in ("straight_through", "gumbel_rao")
            )
            print(
                f"K={n_actions:>3} tau={tau:<4}: variance Gumbel-Rao / straight-through = "
                f"{float(rao['relative_variance']) / float(straight['relative_variance']):.3f}"
            )
    with (out / "temperature_sweep.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, out / "temperature_sweep.png")
    print(f"wall time {time.perf_counter() - start:.0f} s; wrote {out}/temperature_sweep.csv and .png")


if __name__ == "__main__":
    torch.set_num_threads(1)
    # tyro (as CleanRL) reads the flags, their types and help off Args; underscores as in the docstrings.
    main(tyro.cli(Args, description=__doc__, use_underscores=True))
