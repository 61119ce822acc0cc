"""Can any REBAR control variate lower the variance on the binary toy? A grid over its scale and temperature.

    python experiments/estimators/rebar_variance.py

The binary toy (``binary_toy.py``): ``L(θ) = E[(b - t)²]``, ``b ~ Bernoulli(sigmoid(θ))``. REBAR (Tucker et
al., 2017) learns its scale ``η`` and temperature ``τ`` to minimise the variance; when it fails to beat
REINFORCE, either the optimiser missed a better ``(η, τ)`` or none exists. This measures the variance of
the one-sample estimate of ``dL/dθ`` at fixed ``θ`` for every ``(η, τ)`` of a grid, from ``draws``
independent estimates each, next to REINFORCE without a baseline (``η = 0``) and with the exact ``L(θ)``
as its baseline (the best constant baseline up to a small correction), for Tucker et al.'s target 0.45 and
Grathwohl et al.'s 0.499. Writes ``rebar_variance.csv`` into ``--out`` and prints the best ``(η, τ)``.
"""

import csv
import itertools
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import tyro
from torch import Tensor

from rlrelax.estimators import ESTIMATORS, RebarControlVariate


@dataclass
class Args:
    draws: int = 200_000
    """independent one-sample estimates per grid point"""
    out: str = "experiments/results/binary_toy"
    """folder of the CSV"""


TARGETS = (0.45, 0.499)
PROBABILITIES = (0.5, 0.2)
ETAS = (-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
TAUS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 20.0)


def variance(
    estimator: str, probability: float, target: float, draws: int, seed: int, **options: object
) -> float:
    """Variance of ``draws`` one-sample estimates of ``dL/dθ`` at ``sigmoid(θ) = probability``."""
    theta = torch.logit(torch.tensor(probability, dtype=torch.float64))
    copies = theta.expand(draws).clone().requires_grad_(True)
    logits = torch.stack([torch.zeros_like(copies), copies], dim=-1)

    def loss(actions: Tensor) -> Tensor:
        return (actions[..., 1] - target) ** 2

    surrogate = ESTIMATORS[estimator](
        logits, loss, n_samples=1, generator=torch.Generator().manual_seed(seed), **options
    )
    (estimates,) = torch.autograd.grad(surrogate, copies)
    return float(estimates.var())


def main(args: Args) -> None:
    start = time.perf_counter()
    rows: list[dict[str, object]] = []
    for target, probability in itertools.product(TARGETS, PROBABILITIES):
        exact_loss = probability * (1 - target) ** 2 + (1 - probability) * target**2
        point = {"target": target, "probability": probability}
        reference = {
            "REINFORCE": variance("score_function", probability, target, args.draws, seed=0),
            "REINFORCE, exact L(θ) as baseline": variance(
                "score_function",
                probability,
                target,
                args.draws,
                seed=0,
                baseline=torch.tensor(exact_loss, dtype=torch.float64),
            ),
        }
        for label, value in reference.items():
            rows.append(point | {"estimator": label, "eta": "", "tau": "", "variance": value})
        grid = []
        for eta, tau in itertools.product(ETAS, TAUS):
            rebar = RebarControlVariate(eta=eta, tau=tau).double()
            value = variance("rebar", probability, target, args.draws, seed=0, control_variate=rebar)
            grid.append((value, eta, tau))
            rows.append(point | {"estimator": "REBAR", "eta": eta, "tau": tau, "variance": value})
        best, eta, tau = min(grid)
        print(
            f"t = {target}, sigmoid(θ) = {probability}: REINFORCE {reference['REINFORCE']:.3e}, "
            f"with the exact baseline {reference['REINFORCE, exact L(θ) as baseline']:.3e}; "
            f"best REBAR {best:.3e} at eta = {eta}, tau = {tau}"
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "rebar_variance.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wall time {time.perf_counter() - start:.0f} s; wrote {out}/rebar_variance.csv")


if __name__ == "__main__":
    torch.set_num_threads(1)
    # tyro (as CleanRL) reads the flags, their types and help off Args; underscores as in the docstrings.
    main(tyro.cli(Args, description=__doc__, use_underscores=True))
