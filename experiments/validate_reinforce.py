"""Validate REINFORCE's defaults on CartPole-v1: train each seed, then evaluate deterministically.

    python experiments/validate_reinforce.py                      # seeds 0-9, the documented budget
    python experiments/validate_reinforce.py --seeds 0 1 2 --total-timesteps 100000

Prints one row per seed (``CartPole-v1__REINFORCE__<seed>``) and how many reach ``threshold``.
"""

import argparse
import dataclasses
import json
import time
from dataclasses import dataclass, field

import gymnasium as gym
import torch
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

from rlrelax.agents.reinforce import REINFORCE


@dataclass
class Args:
    env_id: str = "CartPole-v1"
    """the Gymnasium environment to train and evaluate on"""
    seeds: list[int] = field(default_factory=lambda: list(range(10)))
    """the training seeds; the evaluation env of seed s is reset with seed 1000 + s"""
    total_timesteps: int = 200_000
    """the env steps each seed trains for (the documented budget N)"""
    n_eval_episodes: int = 10
    """deterministic evaluation episodes after training"""
    threshold: float = 475.0
    """the mean evaluation return that counts as solved"""
    agent_kwargs: str = "{}"
    """JSON of constructor overrides, for exploring; the validation itself uses the defaults"""


def parse_args() -> Args:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for item in dataclasses.fields(Args):
        default = item.default_factory() if item.default_factory is not dataclasses.MISSING else item.default
        flag = "--" + item.name.replace("_", "-")
        if isinstance(default, list):
            parser.add_argument(flag, type=int, nargs="+", default=default)
        else:
            parser.add_argument(flag, type=type(default), default=default)
    return Args(**vars(parser.parse_args()))


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    kwargs = json.loads(args.agent_kwargs)
    print(f"{'run':<32} {'eval mean':>10} {'eval std':>9} {'steps':>8} {'wall s':>7}")
    solved, start = 0, time.perf_counter()
    for seed in args.seeds:
        seed_start = time.perf_counter()
        model = REINFORCE("MlpPolicy", args.env_id, seed=seed, **kwargs).learn(args.total_timesteps)
        eval_env = Monitor(gym.make(args.env_id))
        eval_env.reset(seed=1000 + seed)
        mean, std = evaluate_policy(model, eval_env, n_eval_episodes=args.n_eval_episodes, deterministic=True)
        solved += float(mean) >= args.threshold
        name = f"{args.env_id}__REINFORCE__{seed}"
        wall = time.perf_counter() - seed_start
        print(f"{name:<32} {mean:>10.1f} {std:>9.1f} {model.num_timesteps:>8} {wall:>7.1f}", flush=True)
    wall = time.perf_counter() - start
    print(f"solved (eval >= {args.threshold}): {solved}/{len(args.seeds)}; total wall {wall:.0f} s")


if __name__ == "__main__":
    main()
