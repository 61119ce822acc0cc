"""Several discrete choices at once: ``MultiDiscrete`` and ``MultiBinary`` action spaces.

The test problem is a contextual bandit whose best joint action depends on the observation, so a policy
that ignores the observation, or mixes up its choices, cannot reach the optimum.
"""

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_checker import check_env
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from rlrelax.agents import REINFORCE, SoftQ
from rlrelax.agents.common import action_value, boltzmann_entropy, state_soft_value

N_CONTEXTS = 3
SPACES = {
    "MultiDiscrete": spaces.MultiDiscrete([3, 4]),
    "MultiBinary": spaces.MultiBinary(4),
}


class ContextualChoices(gym.Env[np.ndarray, np.ndarray]):
    """One-step episodes: a one-hot context, and a reward of 1 for each choice that matches its target.

    The reward is the fraction of choices equal to the context's target action, so the optimum is 1 in
    every context, and a uniformly random policy gets the mean over choices of 1/n (1/2 per bit).

    :param action_space: a ``MultiDiscrete`` or ``MultiBinary`` space
    """

    def __init__(self, action_space: spaces.MultiDiscrete | spaces.MultiBinary) -> None:
        self.action_space = action_space
        self.observation_space = spaces.Box(0.0, 1.0, (N_CONTEXTS,), dtype=np.float32)
        sizes = action_space.nvec if isinstance(action_space, spaces.MultiDiscrete) else [2] * action_space.n
        # Different targets in every context, for every choice with more than one option.
        self.targets = np.array(
            [[(context + m) % n for m, n in enumerate(sizes)] for context in range(N_CONTEXTS)]
        )
        self.context = 0

    def _observation(self) -> np.ndarray:
        return np.eye(N_CONTEXTS, dtype=np.float32)[self.context]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.context = int(self.np_random.integers(N_CONTEXTS))
        return self._observation(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        reward = float(np.mean(np.asarray(action) == self.targets[self.context]))
        return self._observation(), reward, True, False, {}


# Settings that learn the bandit within a few thousand steps; what is tested is the joint action learnt.
LEARNERS: dict[str, tuple[type[BaseAlgorithm], dict[str, Any], int]] = {
    "REINFORCE": (REINFORCE, {"n_episodes": 16, "baseline": "leave_one_out"}, 6_000),
    "SoftQ": (
        SoftQ,
        {"learning_starts": 200, "train_freq": 1, "policy_kwargs": {"net_arch": [64, 64]}},
        3_000,
    ),
}
# Small settings so that each agent trains (not only collects) within a few hundred steps.
FAST: dict[type[BaseAlgorithm], dict[str, Any]] = {
    REINFORCE: {"n_episodes": 4},
    SoftQ: {"learning_starts": 64, "batch_size": 32, "buffer_size": 2_000},
}


def make_env(name: str, n_envs: int = 1, seed: int = 0) -> Any:
    return make_vec_env(lambda: ContextualChoices(SPACES[name]), n_envs=n_envs, seed=seed)


def observations() -> np.ndarray:
    return np.eye(N_CONTEXTS, dtype=np.float32)


@pytest.mark.parametrize("name", SPACES)
def test_the_test_env_is_a_valid_gymnasium_env(name: str) -> None:
    check_env(ContextualChoices(SPACES[name]))


@pytest.mark.parametrize("learner", LEARNERS)
@pytest.mark.parametrize("name", SPACES)
def test_learns_the_best_joint_action_of_each_context(learner: str, name: str) -> None:
    algorithm, kwargs, steps = LEARNERS[learner]
    model = algorithm("MlpPolicy", make_env(name, n_envs=4), seed=0, **kwargs)
    model.learn(steps)
    mean_return, _ = evaluate_policy(model, make_env(name, seed=1), n_eval_episodes=60, deterministic=True)
    # A uniformly random policy gets 0.29 (MultiDiscrete([3, 4])) or 0.5 (MultiBinary(4)); the optimum is 1.
    assert mean_return >= 0.95
    actions, _ = model.predict(observations(), deterministic=True)
    np.testing.assert_array_equal(actions, ContextualChoices(SPACES[name]).targets)


@pytest.mark.parametrize("name", SPACES)
def test_sampled_actions_follow_the_policy(name: str) -> None:
    """The rollout's sampler draws from the same distribution as SB3's ``get_actions``, choice by choice."""
    model = REINFORCE("MlpPolicy", make_env(name), seed=0)
    observation = torch.as_tensor(observations()[:1]).expand(20_000, -1)
    with torch.no_grad():
        sampled = model._sample_actions(observation)[0].float()
        reference = model.policy.get_distribution(observation).get_actions().float()
    assert sampled.shape == reference.shape == (20_000, SPACES[name].shape[0])
    for value in range(int(reference.max()) + 1):
        # Frequencies of each value per choice agree within 5 binomial standard errors.
        ours, theirs = (sampled == value).float().mean(0), (reference == value).float().mean(0)
        tolerance = 5 * torch.sqrt(theirs * (1 - theirs) / 20_000 * 2) + 1e-3
        assert torch.all((ours - theirs).abs() <= tolerance), (value, ours, theirs)


@pytest.mark.parametrize("agent", list(FAST))
@pytest.mark.parametrize("name", SPACES)
def test_same_seed_same_training_and_save_load(agent: type[BaseAlgorithm], name: str, tmp_path: Path) -> None:
    first, second = (agent("MlpPolicy", make_env(name), seed=3, **FAST[agent]).learn(300) for _ in range(2))
    for (key, a), b in zip(
        first.policy.state_dict().items(), second.policy.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=key)
    first.save(tmp_path / "model.zip")
    loaded = agent.load(tmp_path / "model.zip", env=make_env(name, seed=1))
    np.testing.assert_array_equal(
        loaded.predict(observations(), deterministic=True)[0],
        first.predict(observations(), deterministic=True)[0],
    )
    loaded.learn(100, reset_num_timesteps=False)


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (spaces.MultiDiscrete([[2, 3], [2, 2]]), "one-dimensional MultiDiscrete"),
        (spaces.MultiBinary([2, 2]), "one-dimensional MultiBinary"),
        (spaces.Box(-1.0, 1.0, (2,)), "needs a Discrete, MultiDiscrete or MultiBinary action space, got Box"),
    ],
)
@pytest.mark.parametrize("agent", list(FAST))
def test_other_action_spaces_are_refused_with_their_name(
    agent: type[BaseAlgorithm], space: spaces.Space, message: str
) -> None:
    env = ContextualChoices(SPACES["MultiBinary"])
    env.action_space = space
    with pytest.raises(ValueError, match=message):
        agent("MlpPolicy", env)


@pytest.mark.parametrize("name", SPACES)
def test_softq_predicts_each_choices_greedy_and_boltzmann_action(name: str) -> None:
    model = SoftQ("MlpPolicy", make_env(name), seed=0, ent_coef=0.5)
    observation = torch.as_tensor(observations())
    with torch.no_grad():
        _, *advantages = model.q_net(observation).split([1, *model._choice_sizes], dim=1)
    greedy, _ = model.predict(observations(), deterministic=True)
    np.testing.assert_array_equal(greedy, torch.stack([a.argmax(dim=1) for a in advantages], dim=1).numpy())
    # Sampled: each choice's frequencies match its own softmax(A_m / alpha), whatever V is.
    many = np.repeat(observations()[:1], 20_000, axis=0)
    sampled, _ = model.predict(many, deterministic=False)
    for m, advantage in enumerate(advantages):
        expected = torch.softmax(advantage[0] / 0.5, dim=0).numpy()
        frequencies = np.bincount(sampled[:, m], minlength=len(expected)) / len(sampled)
        np.testing.assert_allclose(frequencies, expected, atol=5 * np.sqrt(0.25 / len(sampled)))


def test_factorised_soft_value_and_log_policy_match_enumeration() -> None:
    """The factorised critic's soft value and Munchausen term equal those of the enumerated joint Q."""
    sizes = (3, 2, 4)
    generator = torch.Generator().manual_seed(0)
    outputs = torch.randn(5, 1 + sum(sizes), generator=generator, dtype=torch.float64)
    value, *advantages = outputs.split([1, *sizes], dim=1)
    joint = torch.cartesian_prod(*(torch.arange(n) for n in sizes))  # (24, 3)
    joint_q = value + sum(a[:, joint[:, m]] for m, a in enumerate(advantages))  # (5, 24)
    alpha = 0.3
    torch.testing.assert_close(
        state_soft_value(outputs, alpha, sizes), alpha * torch.logsumexp(joint_q / alpha, dim=1, keepdim=True)
    )
    actions = joint[torch.tensor([0, 5, 11, 17, 23])]
    torch.testing.assert_close(
        action_value(outputs, actions, sizes), joint_q.gather(1, torch.tensor([[0], [5], [11], [17], [23]]))
    )
    joint_policy = torch.softmax(joint_q / alpha, dim=1)
    torch.testing.assert_close(
        boltzmann_entropy(outputs, alpha, sizes), -(joint_policy * joint_policy.log()).sum(dim=1).mean()
    )
