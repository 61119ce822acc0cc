"""What a GumbelAC gradient step costs under cheaper settings: ratios measured side by side in one process.

    python experiments/tuning/gradient_step_variants.py

Each variant is a GumbelAC (``gumbel_softmax``) on CartPole-v1 that has learnt for 2,000 env steps; then the
variants take turns, 60 gradient steps each (``train``: replay sample, critic and actor updates, target
update), for five timed rounds after one untimed. The ratios to the defaults hold on a loaded machine,
since every variant shares the same load; the milliseconds do not. Used for the speed notes in
``experiments/tuning/speed.md``, "Cheaper gradient steps".
"""

import time
from typing import Any

import torch
from stable_baselines3.common.env_util import make_vec_env

from rlrelax._platform import cpu_model
from rlrelax.agents import GumbelAC

SMALL_CRITIC = {"net_arch": {"pi": [64, 64], "qf": [64, 64]}}
VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "critic [64, 64]": {"policy_kwargs": SMALL_CRITIC},
    "batch 64": {"batch_size": 64},
    "critic [64, 64], batch 64": {"batch_size": 64, "policy_kwargs": SMALL_CRITIC},
    "critic [64, 64], batch 256": {"batch_size": 256, "policy_kwargs": SMALL_CRITIC},
    "batch 256": {"batch_size": 256},
    "one critic": {"policy_kwargs": {"n_critics": 1}},
}
STEPS_PER_TURN = 60
ROUNDS = 5


def main() -> None:
    torch.set_num_threads(1)
    models = {}
    for name, kwargs in VARIANTS.items():
        model = GumbelAC("MlpPolicy", make_vec_env("CartPole-v1", seed=0), seed=0, device="cpu", **kwargs)
        model.learn(2_000)
        models[name] = model
    seconds = dict.fromkeys(VARIANTS, 0.0)
    for round_ in range(ROUNDS + 1):
        for name, model in models.items():
            start = time.perf_counter()
            for _ in range(STEPS_PER_TURN):
                model.train(gradient_steps=1, batch_size=model.batch_size)
            if round_:  # the first round warms up
                seconds[name] += time.perf_counter() - start
    steps = ROUNDS * STEPS_PER_TURN
    print(f"{cpu_model()}, torch {torch.__version__}, 1 thread; {steps} gradient steps each")
    for name, total in seconds.items():
        per_step = total / steps
        print(f"{name:<28} {per_step * 1e3:6.2f} ms/step   speed x{seconds['defaults'] / total:.2f}")


if __name__ == "__main__":
    main()
