"""What an off-policy gradient step costs under other settings: ratios measured side by side in one process.

    python experiments/tuning/gradient_step_variants.py                  # GumbelAC: smaller critics, batches
    python experiments/tuning/gradient_step_variants.py --agent SoftQ    # SoftQ: fused Adam, two threads

Each variant is an agent on CartPole-v1 that has learnt for 2,000 env steps with the keyword arguments of its
row; then the variants take turns, 60 gradient steps each (``train``: replay sample, critic update, for
GumbelAC the actor update, target update), for five timed rounds after one untimed, each turn under its row's
number of torch threads. The ratios to the defaults hold on a loaded machine, since every variant shares the
same load; the milliseconds do not. Used for the speed notes in ``experiments/tuning/speed.md``, "Cheaper
gradient steps" and "Two threads and fused Adam".
"""

import argparse
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from rlrelax._platform import configure_torch_for_one_run, cpu_model
from rlrelax.agents import GumbelAC, SoftQ


@dataclass(frozen=True)
class Variant:
    """One row: the agent's keyword arguments and the torch threads its gradient steps run on."""

    kwargs: dict[str, Any] = field(default_factory=dict)
    threads: int = 1


SMALL_CRITIC = {"net_arch": {"pi": [64, 64], "qf": [64, 64]}}
# SoftQ's optimiser is SB3's default Adam (a loop over parameter tensors); GumbelAC's is already fused.
FUSED_ADAM = {"optimizer_kwargs": {"fused": True}}
VARIANTS: dict[str, dict[str, Variant]] = {
    "GumbelAC": {
        "defaults": Variant(),
        "critic [64, 64]": Variant({"policy_kwargs": SMALL_CRITIC}),
        "batch 64": Variant({"batch_size": 64}),
        "critic [64, 64], batch 64": Variant({"batch_size": 64, "policy_kwargs": SMALL_CRITIC}),
        "critic [64, 64], batch 256": Variant({"batch_size": 256, "policy_kwargs": SMALL_CRITIC}),
        "batch 256": Variant({"batch_size": 256}),
        "one critic": Variant({"policy_kwargs": {"n_critics": 1}}),
        "2 threads": Variant(threads=2),
    },
    "SoftQ": {
        "defaults": Variant(),
        "fused Adam": Variant({"policy_kwargs": FUSED_ADAM}),
        "2 threads": Variant(threads=2),
        "fused Adam, 2 threads": Variant({"policy_kwargs": FUSED_ADAM}, threads=2),
    },
}
ALGORITHMS: dict[str, type[OffPolicyAlgorithm]] = {"GumbelAC": GumbelAC, "SoftQ": SoftQ}
STEPS_PER_TURN = 60
ROUNDS = 5


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--agent", choices=sorted(VARIANTS), default="GumbelAC", help="whose gradient step")
    args = parser.parse_args()
    variants = VARIANTS[args.agent]
    algorithm = ALGORITHMS[args.agent]

    configure_torch_for_one_run()
    models = {}
    for name, variant in variants.items():
        model = algorithm(
            "MlpPolicy", make_vec_env("CartPole-v1", seed=0), seed=0, device="cpu", **variant.kwargs
        )
        model.learn(2_000)
        models[name] = model
    seconds = dict.fromkeys(variants, 0.0)
    for round_ in range(ROUNDS + 1):
        for name, model in models.items():
            torch.set_num_threads(variants[name].threads)
            start = time.perf_counter()
            for _ in range(STEPS_PER_TURN):
                model.train(gradient_steps=1, batch_size=model.batch_size)
            if round_:  # the first round warms up
                seconds[name] += time.perf_counter() - start
    steps = ROUNDS * STEPS_PER_TURN
    print(f"{cpu_model()}, torch {torch.__version__}; {args.agent}, {steps} gradient steps each")
    for name, total in seconds.items():
        per_step = total / steps
        threads = variants[name].threads
        print(
            f"{name:<28} {threads} thread{'s' if threads > 1 else ' '} {per_step * 1e3:6.2f} ms/step"
            f"   speed x{seconds['defaults'] / total:.2f}"
        )


if __name__ == "__main__":
    main()
