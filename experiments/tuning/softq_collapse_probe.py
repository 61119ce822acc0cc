"""Why a SoftQ run that balances falls late: its greedy actions and action gaps around the fall.

Trains SoftQ on CartPole-v1 as a run of a spec with ``n_envs = 8`` does (the same env construction and seed;
the comparison's evaluations do not draw from the training RNG, so the run is the same one), with
``--set``-style keyword arguments, keeps the policy every 1,000 env steps from ``--from``, then, on the states
of three greedy episodes of the policy at ``--reference`` (eval env seeds 1001-1003), prints for each kept
policy its own greedy episode lengths, the mean Q-value, the median and 10% quantile of the action gap
``|Q(s, 0) - Q(s, 1)|``, and on how many of those states its greedy action differs from the reference's.
Used in experiments/tuning/speed.md ("Eight envs and one gradient step per 8 env steps")::

    python experiments/tuning/softq_collapse_probe.py --seed 1
"""

import argparse
import copy
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

from rlrelax._platform import configure_torch_for_one_run
from rlrelax.agents import SoftQ
from rlrelax.compare.envs import make_env

ENV_ID = "CartPole-v1"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument(
        "--steps", type=int, default=50_000, help="the run's budget (the learning rate decays to 0 over it)"
    )
    parser.add_argument("--from", dest="start", type=int, default=40_000, help="first env step kept")
    parser.add_argument(
        "--reference", type=int, default=44_000, help="the kept step whose greedy states are probed"
    )
    args = parser.parse_args()
    configure_torch_for_one_run()  # as the comparison's runs, which these probes rerun

    env = make_vec_env(partial(make_env, ENV_ID), n_envs=args.n_envs)
    model = SoftQ("MlpPolicy", env, seed=args.seed, train_freq=1, gradient_steps=1)
    kept: dict[int, dict[str, Any]] = {}

    class Keep(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % 1_000 == 0 and self.num_timesteps >= args.start:
                kept[self.num_timesteps] = copy.deepcopy(model.policy.state_dict())
            return True

    model.learn(args.steps, callback=Keep())
    probe = copy.deepcopy(model.policy)

    def q_values(weights: dict[str, Any], observations: np.ndarray) -> th.Tensor:
        probe.load_state_dict(weights)
        with th.no_grad():
            return probe.q_net(th.as_tensor(observations, dtype=th.float32))

    def greedy_episodes(weights: dict[str, Any]) -> tuple[np.ndarray, list[int]]:
        eval_env, states, lengths = gym.make(ENV_ID), [], []
        for episode in range(3):
            observation, _ = eval_env.reset(seed=1001 + episode)
            length, done = 0, False
            while not done:
                states.append(observation)
                action = int(q_values(weights, observation[None]).argmax())
                observation, _, terminated, truncated, _ = eval_env.step(action)
                length, done = length + 1, terminated or truncated
            lengths.append(length)
        return np.array(states), lengths

    states, lengths = greedy_episodes(kept[args.reference])
    reference_actions = q_values(kept[args.reference], states).argmax(dim=1)
    print(
        f"seed {args.seed}: {len(states)} states of the {args.reference:,}-step policy's "
        f"greedy episodes {lengths}"
    )
    for step, weights in sorted(kept.items()):
        q = q_values(weights, states)
        gap = (q[:, 0] - q[:, 1]).abs()
        changed = (q.argmax(dim=1) != reference_actions).float().mean()
        print(
            f"{step:>7,}: greedy episodes {greedy_episodes(weights)[1]}, mean Q {q.mean():.2f}, "
            f"action gap median {gap.median():.3f}, 10% quantile {gap.quantile(0.1):.3f}, "
            f"greedy action changed on {changed:.1%}"
        )


if __name__ == "__main__":
    main()
