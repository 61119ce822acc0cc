"""Steps per second of the torch CartPole against Gymnasium's own numpy ``CartPoleVectorEnv``.

Both run in this process on the same pre-generated random actions (int64, cycled from a pool of 64 batches,
so that generating them is not timed); only ``step`` calls are timed, after a warm-up that includes
``torch.compile``'s compilation. Each configuration is timed ``--repeats`` times and the best is kept,
because the machine may be shared. Both envs autoreset in ``NEXT_STEP`` mode.

    python benchmarks/bench_cartpole.py --threads 2
"""

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

from rlrelax.envs import TorchCartPoleVectorEnv

POOL = 64  # distinct action batches, cycled


def steps_per_second(step: Callable[[Any], object], actions: list[Any], n_steps: int, num_envs: int) -> float:
    """Time ``n_steps`` calls of ``step`` on the pooled actions.

    :param step: the env's step function
    :param actions: the action pool
    :param n_steps: number of timed calls
    :param num_envs: sub-envs per call
    :return: sub-env steps per second
    """
    start = time.perf_counter()
    for i in range(n_steps):
        step(actions[i % POOL])
    return n_steps * num_envs / (time.perf_counter() - start)


def main() -> None:
    """Print a table of steps per second and ratios to Gymnasium's vector env."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--num-envs", type=int, nargs="+", default=[256, 4096, 65536])
    parser.add_argument("--env-steps", type=float, default=1e7, help="sub-env steps timed per configuration")
    parser.add_argument("--repeats", type=int, default=3, help="timings per configuration; the best is kept")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    configs: dict[str, dict[str, Any]] = {
        "torch f64 eager": {"dtype": torch.float64, "compile": False},
        "torch f64 compiled": {"dtype": torch.float64, "compile": True},
        "torch f32 compiled": {"dtype": torch.float32, "compile": True},
    }
    print(
        f"torch {torch.__version__}, {args.threads} threads; steps/s (millions), ratio to Gymnasium",
        flush=True,
    )
    print(f"{'num_envs':>9} {'gymnasium':>10} " + " ".join(f"{name:>26}" for name in configs), flush=True)
    rng = np.random.default_rng(0)
    for num_envs in args.num_envs:
        n_steps = max(20, int(args.env_steps) // num_envs)
        np_actions = [rng.integers(0, 2, num_envs) for _ in range(POOL)]
        torch_actions = [torch.from_numpy(a) for a in np_actions]

        reference = CartPoleVectorEnv(num_envs=num_envs)
        reference.reset(seed=0)
        steps_per_second(reference.step, np_actions, POOL, num_envs)
        baseline = max(
            steps_per_second(reference.step, np_actions, n_steps, num_envs) for _ in range(args.repeats)
        )

        cells = []
        for options in configs.values():
            env = TorchCartPoleVectorEnv(num_envs, **options)
            env.reset(seed=0)
            steps_per_second(env.step, torch_actions, POOL, num_envs)
            rate = max(
                steps_per_second(env.step, torch_actions, n_steps, num_envs) for _ in range(args.repeats)
            )
            cells.append(f"{rate / 1e6:8.1f}M  (x{rate / baseline:4.2f})")
        print(
            f"{num_envs:>9} {baseline / 1e6:9.1f}M " + " ".join(f"{cell:>26}" for cell in cells), flush=True
        )


if __name__ == "__main__":
    main()
