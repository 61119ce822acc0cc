"""What each actor-gradient estimator costs in a GumbelAC gradient step on CartPole-v1: operators and time.

    python experiments/tuning/estimator_cost.py

One call of each estimator and its backward pass, as GumbelAC's actor loss makes it on a ``Discrete`` space
under the mixture critic: 128 states (the batch size), two actions, the critics' values held fixed (the
objective is linear in the action; ``score_function`` takes their state value as its baseline), the samples
per state that ``n_samples="auto"`` gives each estimator, and ``gumbel_rao`` also with the 8 samples it drew
before. Printed per estimator: the ATen operators one call dispatches (its backward included) and the median
microseconds per call over ``--rounds`` timings of ``--calls`` calls, in one process, one thread, subnormal
floats flushed. Used for ``experiments/tuning/speed.md``, "``gumbel_rao``: one sample a state".
"""

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from gradient_step_floor import OperatorCount

from rlrelax._platform import configure_torch_for_one_run, cpu_model
from rlrelax.agents.gumbel_ac.gumbel_ac import DEFAULT_N_SAMPLES, GUMBEL_RAO_N_SAMPLES
from rlrelax.estimators import ESTIMATORS

BATCH, N_ACTIONS = 128, 2
# name, estimator, samples per state, options: GumbelAC's defaults (temperature 1, 10 conditional draws).
SETTINGS: list[tuple[str, str, int, dict[str, object]]] = [
    ("gumbel_softmax", "gumbel_softmax", DEFAULT_N_SAMPLES, {"tau": 1.0}),
    ("exact", "exact", 1, {}),
    ("score_function", "score_function", DEFAULT_N_SAMPLES, {}),
    ("gumbel_rao", "gumbel_rao", GUMBEL_RAO_N_SAMPLES, {"tau": 1.0, "n_rao_samples": 10}),
    ("gumbel_rao, 8 samples", "gumbel_rao", 8, {"tau": 1.0, "n_rao_samples": 10}),
]


def estimator_call(estimator: str, n_samples: int, options: dict[str, object]) -> Callable[[], None]:
    """One estimator call and its backward pass on fixed logits and critic values."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(BATCH, N_ACTIONS, generator=generator, requires_grad=True)
    q_values = torch.randn(BATCH, N_ACTIONS, generator=generator)

    def value(actions: torch.Tensor) -> torch.Tensor:
        return (actions * q_values).sum(dim=-1)

    if estimator == "score_function":
        # GumbelAC's baseline: the critics' state value under the policy, which keeps the estimate unbiased.
        options = {**options, "baseline": (logits.detach().softmax(dim=-1) * q_values).sum(dim=-1)}

    def call() -> None:
        ESTIMATORS[estimator](logits, value, n_samples=n_samples, **options).backward()

    return call


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=500, help="calls per timing")
    parser.add_argument("--rounds", type=int, default=7, help="timings per estimator")
    args = parser.parse_args()
    configure_torch_for_one_run()
    print(f"{cpu_model()}, torch {torch.__version__}, {torch.get_num_threads()} thread, subnormals flushed")
    print(f"{'estimator':<24}{'samples':>8}{'operators':>11}{'µs a call':>11}")
    for name, estimator, n_samples, options in SETTINGS:
        call = estimator_call(estimator, n_samples, options)
        for _ in range(args.calls // 2):
            call()
        with OperatorCount() as count:
            call()
        timings = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            for _ in range(args.calls):
                call()
            timings.append((time.perf_counter() - start) / args.calls * 1e6)
        print(f"{name:<24}{n_samples:>8}{count.calls:>11}{statistics.median(timings):>11.0f}")


if __name__ == "__main__":
    main()
