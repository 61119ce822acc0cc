"""How often a policy, acting stochastically, ends an episode before the env's time limit (reaches the goal).

    python experiments/tuning/reach_rate.py Acrobot-v1 initial:0 initial:1 runs/.../seed-0/model.zip
    python experiments/tuning/reach_rate.py Acrobot-v1 uniform --episodes 200

Each policy plays ``--episodes`` episodes (env seeds 10,000, 10,001, ...) sampling its actions, and the
script prints the share that terminated rather than being truncated: on Acrobot-v1, the episodes that
swung the links up. A policy is a saved model of ``--algorithm`` (a ``model.zip``), ``initial:SEED`` (that
algorithm's untrained policy for the seed: what training starts from) or ``uniform``
(``action_space.sample()``). Used for the diagnosis in ``experiments/tuning/reinforce.md``, "Acrobot-v1".
"""

import argparse

import gymnasium as gym
from stable_baselines3.common.base_class import BaseAlgorithm

from rlrelax.compare.registry import resolve_algorithm


def reach_rate(env_id: str, policy: BaseAlgorithm | None, episodes: int) -> float:
    """The share of ``episodes`` sampled episodes that terminate before the time limit.

    :param env_id: a Gymnasium env id with a time limit
    :param policy: the model whose stochastic policy acts, or ``None`` for uniformly random actions
    :param episodes: the number of episodes, on env seeds 10,000 onwards
    :return: the share of terminated episodes
    """
    env = gym.make(env_id)
    env.action_space.seed(0)
    reached = 0
    for episode in range(episodes):
        observation, _ = env.reset(seed=10_000 + episode)
        while True:
            if policy is None:
                action = env.action_space.sample()
            else:
                action, _ = policy.predict(observation, deterministic=False)
            observation, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                reached += int(terminated)
                break
    return reached / episodes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("env_id", help="e.g. Acrobot-v1")
    parser.add_argument("policies", nargs="+", help="model.zip paths, initial:SEED or uniform")
    parser.add_argument("--algorithm", default="REINFORCE", help="the models' algorithm (default: REINFORCE)")
    parser.add_argument("--episodes", type=int, default=100, help="episodes per policy (default: 100)")
    args = parser.parse_args()
    if args.episodes < 1:
        parser.error(f"--episodes must be at least 1, got {args.episodes}")
    _, algorithm = resolve_algorithm(args.algorithm)
    for name in args.policies:
        if name == "uniform":
            policy = None
        elif name.startswith("initial:"):
            policy = algorithm("MlpPolicy", args.env_id, seed=int(name.removeprefix("initial:")))
        else:
            policy = algorithm.load(name)
        print(f"{name}: {reach_rate(args.env_id, policy, args.episodes):.1%} of {args.episodes} episodes")


if __name__ == "__main__":
    main()
