"""Probe a GumbelAC (or SoftQ) training run: what the actor, the critics and the replay buffer hold over time.

    python experiments/tuning/gumbel_ac_probe.py Acrobot-v1 --seed 0 --steps 60000
    python experiments/tuning/gumbel_ac_probe.py Acrobot-v1 --seed 0 --kwargs '{"ent_coef": "auto"}'
    python experiments/tuning/gumbel_ac_probe.py Acrobot-v1 --seed 0 --agent SoftQ
    python experiments/tuning/gumbel_ac_probe.py Acrobot-v1 --random-policies
    python experiments/tuning/gumbel_ac_probe.py CartPole-v1 --seed 14 --steps 50000 --hyperparams \
        --kwargs '{"estimator": "exact"}'

Every ``--every`` env steps it prints one JSON line: ``--episodes`` evaluation episodes (env seeds 1000 + seed
+ i) acting greedily on the actor, sampling the actor, and greedily on the critics (their values pooled as the
model pools them, by default the minimum of the twin critics; for SoftQ, its Q-network), each with its mean
return and the share of its episodes that ran to the time limit (on LunarLander-v3: hovering), and, on 2,000
replay states drawn with a fixed seed, the critics' pooled values: their mean and range, their median action
gap (best minus second best), and the three states of the highest values with the env step that stored each;
the actor's median logit gap and mean entropy, how often the actor's and the critic's best actions agree, the
mean KL divergence from the critic's Boltzmann policy ``softmax(Q / alpha)`` to the actor, each action's share
of the actor's greedy choices, the shares of the actions taken in the last 5,000 steps, the entropy
coefficient, and how many transitions in the buffer earned more than the env's smallest reward (on Acrobot-v1:
reached the goal) and how many ended an episode with a positive reward (on LunarLander-v3: landed). The
training env is made as ``rlrelax compare`` makes it and the probe draws from its own generators, so a probe
run is the comparison's run of the same agent, seed and keywords (the keywords as given, and with
``--hyperparams`` the agent's entry for the env beneath them, its ``n_envs`` included; the replay states and
the actions taken are then every training env's). Used for the diagnoses in
``experiments/tuning/gumbel_ac.md``.
"""

import argparse
import json
from functools import partial

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env

from rlrelax._platform import configure_torch_for_one_run
from rlrelax.agents import GumbelAC, SoftQ
from rlrelax.compare.envs import make_env
from rlrelax.compare.hyperparams import hyperparameter_file, resolve_kwargs


def episode_returns(
    model: GumbelAC | SoftQ, env_id: str, seed: int, mode: str, episodes: int
) -> dict[str, float]:
    """Mean return of ``episodes`` episodes acting in ``mode`` (actor_greedy, actor_sample, critic_greedy),
    and the share of them that ran to the time limit."""
    env = gym.make(env_id)
    generator = th.Generator().manual_seed(seed)
    returns, timed_out = [], []
    for episode in range(episodes):
        observation, _ = env.reset(seed=1000 + seed + episode)
        done, total = False, 0.0
        while not done:
            batch = th.as_tensor(observation[None], dtype=th.float32)
            with th.no_grad():
                if mode == "critic_greedy":
                    values = (
                        model.q_net(batch)
                        if isinstance(model, SoftQ)
                        else model._pooled(model.policy.critic(batch))
                    )
                    action = int(values.argmax())
                else:
                    logits = model.policy.actor(batch)
                    if mode == "actor_greedy":
                        action = int(logits.argmax())
                    else:
                        action = int(th.multinomial(th.softmax(logits, -1), 1, generator=generator))
            observation, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
        timed_out.append(truncated and not terminated)
    return {"return": round(float(np.mean(returns)), 1), "timed_out": float(np.mean(timed_out))}


def entropy_coefficient(model: GumbelAC | SoftQ) -> float:
    """The entropy coefficient alpha now: SoftQ's policy holds it, GumbelAC's is fixed or learned."""
    if isinstance(model, SoftQ):
        return float(model.policy.ent_coef)
    return float(model.ent_coef_tensor if model.log_ent_coef is None else model.log_ent_coef.detach().exp())


class Probe(BaseCallback):
    """Print the probe's JSON line every ``every`` env steps.

    :param env_id: the env, for the evaluation episodes
    :param seed: the run's seed
    :param every: env steps between two probes
    :param episodes: evaluation episodes per mode
    """

    def __init__(self, env_id: str, seed: int, every: int, episodes: int) -> None:
        super().__init__()
        self.env_id, self.seed, self.every, self.episodes = env_id, seed, every, episodes

    def returns(self, mode: str) -> dict[str, float]:
        """Evaluate the model now in ``mode``."""
        assert isinstance(self.model, GumbelAC | SoftQ)
        return episode_returns(self.model, self.env_id, self.seed, mode, self.episodes)

    def _on_step(self) -> bool:
        if self.num_timesteps % self.every:
            return True
        model = self.model
        assert isinstance(model, GumbelAC | SoftQ)
        buffer = model.replay_buffer
        assert buffer is not None
        stored = buffer.buffer_size if buffer.full else buffer.pos
        # Rows of every training env: (step, env) pairs flattened.
        picks = np.random.default_rng(0).integers(0, stored * buffer.n_envs, 2_000)
        observations = th.as_tensor(
            buffer.observations[:stored].reshape(stored * buffer.n_envs, -1)[picks], dtype=th.float32
        )
        with th.no_grad():
            if isinstance(model, SoftQ):
                q_values = model.q_net(observations)
                logits = q_values / float(model.policy.ent_coef)
            else:
                q_values = model._pooled(model.policy.critic(observations))
                logits = model.policy.actor(observations)
        n_actions = q_values.shape[-1]
        best_two = q_values.topk(2, dim=-1).values
        logit_gaps = logits.topk(2, dim=-1).values
        entropy = -(th.softmax(logits, -1) * th.log_softmax(logits, -1)).sum(-1)
        boltzmann = th.log_softmax(q_values / entropy_coefficient(model), -1)
        # The last 5,000 transitions stored, which wrap around the end of a full buffer.
        recent_rows = (buffer.pos - 1 - np.arange(min(5_000, stored))) % buffer.buffer_size
        recent = buffer.actions[recent_rows].reshape(-1).astype(np.int64)
        smallest_reward = float(buffer.rewards[:stored].min())
        row = {
            "step": self.num_timesteps,
            "actor_greedy": None if isinstance(model, SoftQ) else self.returns("actor_greedy"),
            "actor_sample": None if isinstance(model, SoftQ) else self.returns("actor_sample"),
            "critic_greedy": self.returns("critic_greedy"),
            "mean_q": float(q_values.mean()),
            "min_q": float(q_values.min()),
            "max_q": float(q_values.max()),
            # Where the largest values are: the replay states of the three highest, with the env step at which
            # each was stored (every env's step counted, as num_timesteps counts them).
            "highest": [
                {
                    "observation": [round(float(x), 2) for x in observations[index]],
                    "value": round(float(q_values[index].max()), 1),
                    "stored_at": int(picks[index]) // buffer.n_envs * buffer.n_envs,
                }
                for index in q_values.max(-1).values.topk(3).indices.tolist()
            ],
            "critic_gap": float((best_two[:, 0] - best_two[:, 1]).median()),
            "logit_gap": float((logit_gaps[:, 0] - logit_gaps[:, 1]).median()),
            "entropy": float(entropy.mean()),
            "agree": float((logits.argmax(-1) == q_values.argmax(-1)).float().mean()),
            "kl_boltzmann_actor": float(
                (boltzmann.exp() * (boltzmann - th.log_softmax(logits, -1))).sum(-1).mean()
            ),
            "actor_shares": [
                round(float(x), 3) for x in th.bincount(logits.argmax(-1), minlength=n_actions) / len(logits)
            ],
            "taken_shares": [
                round(float(x), 3) for x in np.bincount(recent, minlength=n_actions) / max(len(recent), 1)
            ],
            "ent_coef": entropy_coefficient(model),
            "above_smallest_reward": int((buffer.rewards[:stored] > smallest_reward).sum()),
            # SB3 stores a time limit's truncation as done, and its flag in `timeouts`.
            "positive_terminals": int(
                ((buffer.rewards[:stored] > 0) & (buffer.dones[:stored] > buffer.timeouts[:stored])).sum()
            ),
        }
        print(json.dumps(row), flush=True)
        return True


def random_policy_successes(env_id: str, scales: tuple[float, ...] = (0.3, 1.0, 3.0, 100.0)) -> None:
    """Print, per logit scale, the mean return and the share of episodes ended before the time limit."""
    env = gym.make(env_id)
    assert isinstance(env.action_space, gym.spaces.Discrete)
    assert env.spec is not None and env.spec.max_episode_steps is not None
    n_inputs, n_actions = int(np.prod(env.observation_space.shape)), int(env.action_space.n)
    th.manual_seed(0)
    generator = th.Generator().manual_seed(0)
    for scale in scales:
        returns, ended = [], []
        for network_index in range(12):
            network = th.nn.Sequential(
                th.nn.Linear(n_inputs, 64),
                th.nn.ReLU(),
                th.nn.Linear(64, 64),
                th.nn.ReLU(),
                th.nn.Linear(64, n_actions),
            )
            for episode in range(3):
                observation, _ = env.reset(seed=100 * network_index + episode)
                done, total, steps = False, 0.0, 0
                while not done:
                    with th.no_grad():
                        logits = scale * network(th.as_tensor(observation, dtype=th.float32))
                    action = int(th.multinomial(th.softmax(logits, -1), 1, generator=generator))
                    observation, reward, terminated, truncated, _ = env.step(action)
                    total, steps, done = total + float(reward), steps + 1, terminated or truncated
                returns.append(total)
                ended.append(steps < env.spec.max_episode_steps)
        print(
            json.dumps(
                {"logit_scale": scale, "mean_return": float(np.mean(returns)), "ended": float(np.mean(ended))}
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("env_id")
    parser.add_argument("--agent", choices=["GumbelAC", "SoftQ"], default="GumbelAC")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--every", type=int, default=10_000)
    parser.add_argument("--episodes", type=int, default=5, help="evaluation episodes per mode and probe")
    parser.add_argument("--kwargs", default="{}", help="constructor keywords as JSON")
    parser.add_argument(
        "--hyperparams",
        action="store_true",
        help="apply the agent's entry for the env, n_envs included, beneath --kwargs (as `rlrelax compare`)",
    )
    parser.add_argument("--save", help="save the trained model to this path")
    parser.add_argument("--random-policies", action="store_true", help="measure untrained policies instead")
    args = parser.parse_args()
    configure_torch_for_one_run()  # as the comparison's runs, which these probes rerun
    if args.random_policies:
        random_policy_successes(args.env_id)
        return
    agent = GumbelAC if args.agent == "GumbelAC" else SoftQ
    kwargs, n_envs = json.loads(args.kwargs), 1
    if args.hyperparams:
        entry = hyperparameter_file(f"rlrelax.agents:{args.agent}").get(args.env_id)
        if entry is not None:
            kwargs, n_envs = {**entry.kwargs, **kwargs}, entry.n_envs or 1
    env = make_vec_env(partial(make_env, args.env_id), n_envs=n_envs)
    model = agent("MlpPolicy", env, seed=args.seed, **resolve_kwargs(kwargs))
    model.learn(args.steps, callback=Probe(args.env_id, args.seed, args.every, args.episodes))
    if args.save:
        model.save(args.save)


if __name__ == "__main__":
    main()
