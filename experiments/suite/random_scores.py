"""A uniformly random policy's mean return on each env of the discrete-control suite: the 0 of its scores.

    python experiments/suite/random_scores.py    # writes experiments/suite/random_scores.csv

The suite's aggregate statistics (``rlrelax aggregate``) normalise each env's returns so that 0 is a
uniformly random policy's mean return and 1 the env's success threshold, as Agarwal et al. (2021, "Deep
Reinforcement Learning at the Edge of the Statistical Precipice") normalise Atari scores between a random
and a human score. Each env plays ``episodes`` episodes under its registered time limit, choosing every
action with ``action_space.sample()``: the env is reset with ``seed`` once, then continues its own random
stream, and the action space is seeded with ``seed`` too, so the numbers are reproducible. LunarLander-v3
needs Box2D (``pip install "rlrelax[box2d]"``) and is left out, with a message, without it.
"""

import csv
import importlib.util
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import tyro

ENVS = ("CartPole-v1", "Acrobot-v1", "LunarLander-v3", "MountainCar-v0")
BOX2D_ENVS = {"LunarLander-v3"}
COLUMNS = ("env_id", "episodes", "mean_return", "std", "seed")


@dataclass
class Args:
    episodes: int = 100
    """episodes per env"""
    seed: int = 0
    """seed of each env's first reset and of its action space"""
    out: str = "experiments/suite/random_scores.csv"
    """the CSV to write"""


def random_returns(env_id: str, episodes: int, seed: int) -> np.ndarray:
    """Play ``episodes`` episodes of uniformly random actions and return each one's undiscounted return.

    :param env_id: a Gymnasium env id
    :param episodes: how many episodes
    :param seed: seeds the env's first reset and the action space's sampler
    :return: the returns, shape ``(episodes,)``
    """
    env = gym.make(env_id)
    env.action_space.seed(seed)
    returns = np.zeros(episodes)
    for episode in range(episodes):
        # Seeded once: later resets continue the env's own stream, so the episodes differ.
        env.reset(seed=seed if episode == 0 else None)
        done = False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            returns[episode] += float(reward)
            done = terminated or truncated
    env.close()
    return returns


def main(args: Args) -> None:
    rows = []
    for env_id in ENVS:
        if env_id in BOX2D_ENVS and importlib.util.find_spec("Box2D") is None:
            print(f"{env_id}: left out, Box2D is not installed (pip install 'rlrelax[box2d]')")
            continue
        returns = random_returns(env_id, args.episodes, args.seed)
        # The sample standard deviation of the episodes' returns (ddof=1).
        rows.append((env_id, args.episodes, float(returns.mean()), float(returns.std(ddof=1)), args.seed))
        print(f"{env_id}: {returns.mean():.2f} ± {returns.std(ddof=1):.2f} over {args.episodes} episodes")
    with open(args.out, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(COLUMNS)
        writer.writerows(rows)


if __name__ == "__main__":
    # tyro (as CleanRL) reads the flags, their types and help off Args; underscores as in the docstrings.
    main(tyro.cli(Args, description=__doc__, use_underscores=True))
