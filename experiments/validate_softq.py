"""Validate SoftQ's defaults on CartPole-v1: train seeds 0-9 for `total_timesteps`, then evaluate each.

Run: `nice -n 10 python experiments/validate_softq.py` (about 1 min of one CPU core per seed).
The bar (issue): the final deterministic evaluation is >= 475 on at least 9 of the 10 seeds with N <= 50,000.
"""

import time
from dataclasses import dataclass, field

import gymnasium as gym
import torch
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

from rlrelax.agents.softq import SoftQ


@dataclass
class Args:
    env_id: str = "CartPole-v1"
    """the Gymnasium environment"""
    seeds: list[int] = field(default_factory=lambda: list(range(10)))
    """training seeds; seed s is evaluated on an env reset with seed `eval_seed_offset + s`"""
    total_timesteps: int = 50_000
    """environment steps per seed (the documented N for SoftQ)"""
    n_eval_episodes: int = 10
    """deterministic evaluation episodes after training"""
    eval_seed_offset: int = 1000
    """the evaluation env is seeded separately from training"""
    threshold: float = 475.0
    """a seed passes when its mean evaluation return reaches this"""


def main(args: Args) -> None:
    torch.set_num_threads(1)
    print(f"{'run':<32} {'eval mean':>10} {'eval std':>9} {'wall s':>7}")
    passed, start = 0, time.perf_counter()
    for seed in args.seeds:
        tic = time.perf_counter()
        model = SoftQ("MlpPolicy", args.env_id, seed=seed).learn(args.total_timesteps)
        wall = time.perf_counter() - tic
        eval_env = Monitor(gym.make(args.env_id))
        eval_env.reset(seed=args.eval_seed_offset + seed)
        mean, std = evaluate_policy(model, eval_env, n_eval_episodes=args.n_eval_episodes, deterministic=True)
        passed += mean >= args.threshold
        print(f"{f'{args.env_id}__SoftQ__{seed}':<32} {mean:>10.1f} {std:>9.1f} {wall:>7.1f}", flush=True)
    total = time.perf_counter() - start
    n_seeds, steps = len(args.seeds), args.total_timesteps
    print(f"{passed}/{n_seeds} seeds >= {args.threshold} after {steps} steps each; total wall {total:.0f} s")


if __name__ == "__main__":
    main(Args())
