"""Train and compare agents from Python: the same runs, store and report as ``rlrelax compare``.

    python experiments/compare_from_python.py --seeds 3 --workers 2

Part 1 trains one agent the plain SB3 way; part 2 compares agents across seeds with honest statistics.
"""

from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import torch
import tyro
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

from rlrelax.agents import SoftQ
from rlrelax.compare import run_experiment, spec_from_dict, summarize


@dataclass
class Args:
    steps: int = 50_000
    """training budget of every agent, in env steps (the documented budget of SoftQ and GumbelAC)"""
    seeds: int = 3
    """seeds 0..seeds-1 for the comparison"""
    workers: int = 2
    """runs at once, one CPU core each"""
    out: str = "runs"
    """root of the run store; this comparison goes to <out>/from_python/"""


def main(args: Args) -> None:
    # 1. One agent: an rlrelax agent is an SB3 algorithm, trained and evaluated like any other.
    model = SoftQ("MlpPolicy", "CartPole-v1", seed=0).learn(args.steps)
    eval_env = Monitor(gym.make("CartPole-v1"))
    eval_env.reset(seed=1000)  # a separately seeded evaluation env
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True)
    print(f"SoftQ, seed 0: {mean:.1f} +/- {std:.1f} over 10 evaluation episodes")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    model.save(f"{args.out}/softq_cartpole.zip")
    model = SoftQ.load(f"{args.out}/softq_cartpole.zip")  # as SB3 loads any of its algorithms

    # 2. A comparison: the content of a TOML spec as a dict, checked before any run starts.
    spec = spec_from_dict(
        {
            "name": "from_python",
            "envs": ["CartPole-v1"],
            "seeds": args.seeds,
            "evaluation": {"every": 5_000, "episodes": 10},
            "agents": [
                {"label": "SoftQ", "algorithm": "SoftQ", "total_timesteps": args.steps},
                {
                    "label": "GumbelAC-straight_through",
                    "algorithm": "GumbelAC",
                    "total_timesteps": args.steps,
                    "kwargs": {"estimator": "straight_through"},
                },
            ],
        }
    )
    result = run_experiment(spec, out=args.out, workers=args.workers)  # resumable: rerun to finish
    for s in summarize(result.experiment_dir):
        iqm, low, high = s.final_iqm
        print(f"{s.label:>28}: IQM final return {iqm:.1f} [{low:.1f}, {high:.1f}], solved {s.solved:.0%}")
    print(f"report: {result.experiment_dir / 'report.md'}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    # tyro (as CleanRL) reads the flags, their types and help off Args; underscores as in the docstrings.
    main(tyro.cli(Args, description=__doc__, use_underscores=True))
