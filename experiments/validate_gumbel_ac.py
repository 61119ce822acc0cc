"""Validate GumbelAC's defaults on CartPole-v1: train one estimator on seeds 0-9, evaluate each final policy.

    python experiments/validate_gumbel_ac.py --estimator gumbel_softmax

Each seed runs ``GumbelAC("MlpPolicy", "CartPole-v1", seed=s, estimator=...).learn(total_timesteps)`` with
every other argument at its default, then 10 deterministic episodes on a separately seeded, Monitor-wrapped
env (``reset(seed=1000 + s)``). Prints one row per seed (``<env>__<agent>__<seed>``) and the number of seeds
at or above the threshold.
"""

import argparse
import dataclasses
import time
from dataclasses import dataclass, field

import gymnasium as gym
import torch
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

from rlrelax.agents.gumbel_ac import ESTIMATOR_NAMES, GumbelAC


@dataclass
class Args:
    estimator: str = "gumbel_softmax"
    """the actor-gradient estimator to validate (one of GumbelAC's ESTIMATOR_NAMES)"""
    seeds: list[int] = field(default_factory=lambda: list(range(10)))
    """training seeds; seed s is evaluated on an env reset with seed 1000 + s"""
    total_timesteps: int = 50_000
    """environment steps per training run (the documented budget N)"""
    env_id: str = "CartPole-v1"
    """the Gymnasium environment id"""
    n_eval_episodes: int = 10
    """deterministic evaluation episodes after training"""
    threshold: float = 475.0
    """a seed passes when its final mean return is at least this"""


def parse_args() -> Args:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for f in dataclasses.fields(Args):
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
        if isinstance(default, list):
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=int, nargs="+", default=default)
        else:
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(default), default=default)
    args = Args(**vars(parser.parse_args()))
    if args.estimator not in ESTIMATOR_NAMES:
        parser.error(f"--estimator must be one of {list(ESTIMATOR_NAMES)}, got {args.estimator!r}")
    return args


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)  # tiny networks: more threads only contend
    print(f"{'run':<40} {'mean':>7} {'std':>6} {'train_s':>8}")
    passed, start = 0, time.perf_counter()
    for seed in args.seeds:
        t0 = time.perf_counter()
        model = GumbelAC("MlpPolicy", args.env_id, seed=seed, estimator=args.estimator)
        model.learn(args.total_timesteps)
        train_s = time.perf_counter() - t0
        eval_env = Monitor(gym.make(args.env_id))
        eval_env.reset(seed=1000 + seed)
        mean, std = evaluate_policy(model, eval_env, n_eval_episodes=args.n_eval_episodes, deterministic=True)
        passed += mean >= args.threshold
        run = f"{args.env_id}__GumbelAC-{args.estimator}__{seed}"
        print(f"{run:<40} {mean:7.1f} {std:6.1f} {train_s:8.1f}", flush=True)
    wall = time.perf_counter() - start
    summary = f"{passed}/{len(args.seeds)} seeds >= {args.threshold} after {args.total_timesteps} steps"
    print(f"{summary}; wall {wall:.0f}s")


if __name__ == "__main__":
    main()
