"""The binary toy of Tucker et al. (2017) and Grathwohl et al. (2018): minimise E[(b - 0.499)²].

    python experiments/estimators/binary_toy.py
    python experiments/estimators/binary_toy.py --target 0.45 --out experiments/results/binary_toy/t0.45

``b ~ Bernoulli(sigmoid(θ))`` as the K = 2 categorical with logits ``(0, θ)``; the loss is minus the reward of
``rlrelax/BinaryTarget-v0``. The two outcomes cost 0.249001 and 0.251001, so the best ``θ`` is ``-inf``
(``sigmoid(θ) -> 0``) and the true gradient is at most 0.0005. Each estimator drives Adam on ``θ`` from
``θ = 0`` (REBAR and RELAX train their control variates on the same draws, as in the papers); every
``every`` steps the variance of its gradient estimate at the current ``θ`` is measured from ``draws``
independent estimates. To tell a wrong fixed point from slow progress, the expected gradient of the
biased estimators is also measured on a grid of ``sigmoid(θ)``. Writes ``binary_toy.csv``,
``binary_toy_expected_gradient.csv`` and ``binary_toy.png`` into ``--out``.
"""

import csv
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
import tyro
from torch import Tensor

from rlrelax.envs import BinaryTargetEnv
from rlrelax.estimators import (
    ESTIMATORS,
    RebarControlVariate,
    RelaxControlVariate,
    estimate_with_variance_gradient,
    exact_gradient,
)

DEFAULT_TARGET = BinaryTargetEnv().target


@dataclass
class Args:
    steps: int = 5_000
    """Adam steps on θ per run (Grathwohl et al.'s toy code runs 5,000)"""
    seeds: int = 5
    """runs per estimator, seeds 0..seeds-1"""
    lr: float = 0.01
    """Adam's learning rate for θ and for the control variates (that of Grathwohl et al.'s toy code)"""
    n_samples: int = 2
    """samples per step, the same for every estimator (the leave-one-out baseline needs 2)"""
    tau: float = 0.5
    """temperature of the relaxations, and the initial temperature of REBAR's and RELAX's"""
    every: int = 50
    """steps between two measurements of the variance"""
    draws: int = 2_000
    """independent gradient estimates per measurement"""
    grid_draws: int = 400_000
    """independent estimates per point of the expected-gradient grid"""
    target: float = DEFAULT_TARGET
    """the target t of the loss (b - t)²: 0.499 as Grathwohl et al., 0.45 as Tucker et al."""
    out: str = "experiments/results/binary_toy"
    """folder of the CSV and the figure"""


@dataclass
class Method:
    label: str
    estimator: str
    options: dict[str, object]
    control_variate: Callable[[int], RebarControlVariate | RelaxControlVariate] | None = None


def methods(args: Args) -> list[Method]:
    return [
        Method("REINFORCE", "score_function", {}),
        Method("REINFORCE, leave-one-out baseline", "score_function", {"baseline": "leave_one_out"}),
        Method("Gumbel-softmax (Concrete)", "gumbel_softmax", {"tau": args.tau}),
        Method("straight-through Gumbel", "straight_through", {"tau": args.tau}),
        Method("Gumbel-Rao", "gumbel_rao", {"tau": args.tau}),
        Method("REBAR", "rebar", {}, lambda seed: RebarControlVariate(eta=1.0, tau=args.tau)),
        Method(
            "RELAX",
            "relax",
            {},
            lambda seed: RelaxControlVariate(2, tau=args.tau, generator=torch.Generator().manual_seed(seed)),
        ),
    ]


def squared_distance_to(target: float) -> Callable[[Tensor], Tensor]:
    """The loss ``(b - target)²`` of one-hot or relaxed actions ``(..., 2)``, ``b`` the weight of action 1."""
    return lambda actions: (actions[..., 1] - target) ** 2


def logits_of(theta: Tensor) -> Tensor:
    return torch.stack([torch.zeros_like(theta), theta], dim=-1)


def measure(
    method: Method, theta: Tensor, options: dict[str, object], generator: torch.Generator, args: Args
) -> dict[str, float]:
    """Mean and variance of ``draws`` independent estimates at ``θ``, and the exact gradient."""
    loss = squared_distance_to(args.target)
    copies = theta.detach().expand(args.draws).clone().requires_grad_(True)
    surrogate = ESTIMATORS[method.estimator](
        logits_of(copies), loss, n_samples=args.n_samples, generator=generator, **options
    )
    (estimates,) = torch.autograd.grad(surrogate, copies)
    return {
        "probability": float(torch.sigmoid(theta.detach())),
        "exact_gradient": float(exact_gradient(logits_of(theta.detach()), loss)[1]),
        "gradient_mean": float(estimates.mean()),
        "gradient_variance": float(estimates.var()),
    }


def run(method: Method, seed: int, args: Args) -> list[dict[str, object]]:
    loss = squared_distance_to(args.target)
    theta = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.Adam([theta], lr=args.lr)
    control_variate = method.control_variate(seed) if method.control_variate else None
    options = dict(method.options)
    if control_variate is not None:
        options["control_variate"] = control_variate
        cv_optimizer = torch.optim.Adam(control_variate.parameters(), lr=args.lr)
    training = torch.Generator().manual_seed(seed)
    measuring = torch.Generator().manual_seed(10_000 + seed)  # measurements leave the training draws alone
    rows: list[dict[str, object]] = []
    for step in range(args.steps + 1):
        if step % args.every == 0 or step == args.steps:
            row = {"estimator": method.label, "seed": seed, "step": step}
            rows.append(row | measure(method, theta, options, measuring, args))
        if step == args.steps:
            break
        if control_variate is None:
            surrogate = ESTIMATORS[method.estimator](
                logits_of(theta), loss, n_samples=args.n_samples, generator=training, **options
            )
            (theta.grad,) = torch.autograd.grad(surrogate, theta)
        else:
            cv_optimizer.zero_grad()
            estimate = estimate_with_variance_gradient(
                logits_of(theta.detach()), loss, control_variate, n_samples=args.n_samples, generator=training
            )
            cv_optimizer.step()
            theta.grad = estimate[1]
        optimizer.step()
    return rows


def expected_gradients(args: Args) -> list[dict[str, object]]:
    """Mean (and standard error) of the biased estimators' gradient on a grid of ``sigmoid(θ)``."""
    loss = squared_distance_to(args.target)
    rows: list[dict[str, object]] = []
    for method in methods(args):
        if method.estimator not in ("gumbel_softmax", "straight_through", "gumbel_rao"):
            continue
        for probability in (0.2, 0.35, 0.45, 0.5, 0.55, 0.65, 0.8):
            theta = torch.logit(torch.tensor(probability))
            copies = theta.expand(args.grid_draws).clone().requires_grad_(True)
            generator = torch.Generator().manual_seed(20_000)
            surrogate = ESTIMATORS[method.estimator](
                logits_of(copies), loss, n_samples=1, generator=generator, **method.options
            )
            (estimates,) = torch.autograd.grad(surrogate, copies)
            rows.append(
                {
                    "estimator": method.label,
                    "probability": probability,
                    "exact_gradient": float(exact_gradient(logits_of(theta), loss)[1]),
                    "gradient_mean": float(estimates.mean()),
                    "gradient_mean_se": float(estimates.std() / args.grid_draws**0.5),
                }
            )
    return rows


def write_csv(rows: list[dict[str, object]], path: Path) -> None:
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def plot(
    rows: list[dict[str, object]], grid: list[dict[str, object]], labels: list[str], target: float, path: Path
) -> None:
    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(17, 4.8), constrained_layout=True)
    colors = dict(zip(labels, plt.cm.tab10.colors, strict=False))
    for label in labels:
        mine = [row for row in rows if row["estimator"] == label]
        steps = sorted({int(row["step"]) for row in mine})
        for axis, key, transform in (
            (left, "probability", lambda x: x),
            (middle, "gradient_variance", math.log10),
        ):
            by_step = np.array(
                [[transform(float(row[key])) for row in mine if row["step"] == step] for step in steps]
            )
            axis.plot(steps, np.median(by_step, axis=1), color=colors[label], label=label)
            axis.fill_between(
                steps, by_step.min(axis=1), by_step.max(axis=1), color=colors[label], alpha=0.15
            )
        points = [row for row in grid if row["estimator"] == label]
        if points:
            right.errorbar(
                [float(row["probability"]) for row in points],
                [float(row["gradient_mean"]) for row in points],
                yerr=[2 * float(row["gradient_mean_se"]) for row in points],
                color=colors[label],
                marker="o",
                markersize=3,
                label=label,
            )
    exact = [row for row in grid if row["estimator"] == grid[0]["estimator"]]  # the same for every estimator
    right.plot(
        [float(row["probability"]) for row in exact],
        [float(row["exact_gradient"]) for row in exact],
        color="black",
        linestyle=":",
        label="exact gradient",
    )
    left.axhline(0.0, color="black", linewidth=0.8, linestyle=":")
    left.set(xlabel="Adam step", ylabel="sigmoid(θ) = P(b = 1)", title="Probability (optimum: 0)")
    middle.set(xlabel="Adam step", ylabel="log10 Var[estimate of dL/dθ]", title="Variance of the estimate")
    right.axhline(0.0, color="black", linewidth=0.8)
    right.set(
        xlabel="sigmoid(θ)",
        ylabel="E[estimate of dL/dθ] (± 2 s.e.)",
        title="Expected gradient of the relaxations",
    )
    left.legend(fontsize=8, loc="best")
    right.legend(fontsize=8, loc="best")
    figure.suptitle(
        f"L(θ) = E[(b - {target})²], b ~ Bernoulli(sigmoid(θ)): median and range over seeds", fontsize=11
    )
    figure.savefig(path, dpi=120)


def main(args: Args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows: list[dict[str, object]] = []
    all_methods = methods(args)
    for method in all_methods:
        for seed in range(args.seeds):
            rows += run(method, seed, args)
        final = [
            float(row["probability"])
            for row in rows
            if row["estimator"] == method.label and row["step"] == args.steps
        ]
        variances = [
            math.log10(float(row["gradient_variance"]))
            for row in rows
            if row["estimator"] == method.label and int(row["step"]) >= args.steps // 2
        ]
        print(
            f"{method.label:>34}: final sigmoid(θ) median {np.median(final):.3f} "
            f"[{min(final):.3f}, {max(final):.3f}], median log10 variance over the second half "
            f"{np.median(variances):.2f}"
        )
    grid = expected_gradients(args)
    for row in grid:
        print(
            f"{row['estimator']:>34} at sigmoid(θ) = {row['probability']}: expected gradient "
            f"{row['gradient_mean']:+.2e} ± {row['gradient_mean_se']:.0e} "
            f"(exact {row['exact_gradient']:+.2e})"
        )
    write_csv(rows, out / "binary_toy.csv")
    write_csv(grid, out / "binary_toy_expected_gradient.csv")
    plot(rows, grid, [method.label for method in all_methods], args.target, out / "binary_toy.png")
    print(f"wall time {time.perf_counter() - start:.0f} s; wrote {out}/")


if __name__ == "__main__":
    torch.set_num_threads(1)
    # tyro (as CleanRL) reads the flags, their types and help off Args; underscores as in the docstrings.
    main(tyro.cli(Args, description=__doc__, use_underscores=True))
