"""Top-k slate policies: ``MultiDiscrete([N] * k)`` actions as ``k`` distinct items drawn without replacement.

The Plackett-Luce distribution and layout are checked against enumeration of the ordered slates; the agents
against SB3's contract and a contextual top-k bandit whose optimum is known: each context has a best set of
``k`` items, and a slate earns one per item of that set it shows.
"""

import itertools
import math
import re
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.env_checker import check_env
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from rlrelax.agents import REINFORCE
from rlrelax.agents.common import PlackettLuceDistribution

N_CONTEXTS, N_ITEMS, K = 3, 6, 2


class TopKBandit(gym.Env[np.ndarray, np.ndarray]):
    """One-step episodes: a one-hot context; the reward is how many of the context's best items are shown.

    Context ``c``'s best set is items ``c k, ..., c k + k - 1`` (mod ``N``); a repeated item counts once. The
    optimum is ``k`` in every context; a uniformly random slate of distinct items earns ``k² / N``.
    """

    def __init__(self) -> None:
        self.action_space = spaces.MultiDiscrete([N_ITEMS] * K)
        self.observation_space = spaces.Box(0.0, 1.0, (N_CONTEXTS,), dtype=np.float32)
        self.best = [{(context * K + j) % N_ITEMS for j in range(K)} for context in range(N_CONTEXTS)]
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
        shown = {int(item) for item in action}
        return self._observation(), float(len(shown & self.best[self.context])), True, False, {}


def make_env(n_envs: int = 1, seed: int = 0) -> Any:
    return make_vec_env(TopKBandit, n_envs=n_envs, seed=seed)


def contexts() -> np.ndarray:
    return np.eye(N_CONTEXTS, dtype=np.float32)


# Small settings so that each agent trains (not only collects) within a few hundred steps.
FAST: dict[type[BaseAlgorithm], dict[str, Any]] = {REINFORCE: {"n_episodes": 4}}


# --- the Plackett-Luce distribution, against enumeration ------------------------------------------------


def sequential_probabilities(logits: torch.Tensor, k: int) -> dict[tuple[int, ...], torch.Tensor]:
    """Each ordered slate's probability, drawing one item at a time from the softmax of the rest."""
    n = logits.shape[-1]
    table = {}
    for slate in itertools.permutations(range(n), k):
        probability = torch.ones(logits.shape[:-1], dtype=logits.dtype)
        remaining = list(range(n))
        for item in slate:
            probability = (
                probability * torch.softmax(logits[..., remaining], dim=-1)[..., remaining.index(item)]
            )
            remaining.remove(item)
        table[slate] = probability
    return table


def test_plackett_luce_log_prob_matches_sequential_softmax() -> None:
    torch.manual_seed(0)
    logits = torch.randn(3, 4, dtype=torch.float64)
    distribution = PlackettLuceDistribution(4, 2).proba_distribution(logits)
    table = sequential_probabilities(logits, 2)
    assert len(table) == 12
    total = torch.zeros(3, dtype=torch.float64)
    for slate, probability in table.items():
        # Floats, as SB3's buffers hold actions of several choices.
        actions = torch.tensor([slate] * 3, dtype=torch.float32)
        log_prob = distribution.log_prob(actions)
        torch.testing.assert_close(log_prob.exp(), probability)
        total = total + log_prob.exp()
    torch.testing.assert_close(total, torch.ones(3, dtype=torch.float64))


def test_plackett_luce_samples_follow_the_probabilities() -> None:
    logits = torch.tensor([[1.0, 0.0, -0.5, 0.7]]).expand(40_000, -1)
    distribution = PlackettLuceDistribution(4, 2).proba_distribution(logits)
    torch.manual_seed(1)
    samples = distribution.sample()
    assert samples.shape == (40_000, 2) and samples.dtype == torch.int64
    assert bool((samples[:, 0] != samples[:, 1]).all())
    for slate, probability in sequential_probabilities(logits[0].double(), 2).items():
        frequency = (samples == torch.tensor(slate)).all(dim=-1).double().mean()
        standard_error = math.sqrt(probability * (1 - probability) / 40_000)
        assert abs(frequency - probability) <= 5 * standard_error, (slate, frequency, probability)


def test_mode_is_the_top_k_in_order_and_entropy_is_the_first_draws() -> None:
    logits = torch.tensor([[0.1, 2.0, -1.0, 1.5, 0.3]])
    distribution = PlackettLuceDistribution(5, 3).proba_distribution(logits)
    assert distribution.mode().tolist() == [[1, 3, 4]]
    assert distribution.get_actions(deterministic=True).tolist() == [[1, 3, 4]]
    first = torch.distributions.Categorical(logits=logits).entropy()
    torch.testing.assert_close(distribution.entropy(), first)
    # A lower bound of the slate's entropy.
    slate_entropy = -sum(p * p.log() for p in sequential_probabilities(logits.double(), 3).values())
    assert float(first) < float(slate_entropy)


# --- REINFORCE("TopKPolicy") ---------------------------------------------------------------------------


def test_the_test_env_is_a_valid_gymnasium_env() -> None:
    check_env(TopKBandit())


def test_reinforce_topk_policy_has_one_logit_per_item() -> None:
    model = REINFORCE("TopKPolicy", make_env(), seed=0)
    assert isinstance(model.policy.action_dist, PlackettLuceDistribution)
    assert model.policy.action_net.out_features == N_ITEMS


def test_reinforce_samples_gumbel_top_k_from_the_policy() -> None:
    """The rollout's sampler draws the same distribution as SB3's ``get_actions``: distinct items."""
    model = REINFORCE("TopKPolicy", make_env(), seed=0)
    with torch.no_grad():
        model.policy.action_net.bias.copy_(torch.linspace(-1.0, 1.0, N_ITEMS))
    observation = torch.as_tensor(contexts()[:1]).expand(20_000, -1)
    with torch.no_grad():
        sampled, noise = model._sample_actions(observation)
        reference = model.policy.get_distribution(observation).get_actions()
    assert noise is None
    assert sampled.shape == reference.shape == (20_000, K)
    assert bool((sampled[:, 0] != sampled[:, 1]).all())
    for item in range(N_ITEMS):
        ours, theirs = (sampled == item).float().mean(0), (reference == item).float().mean(0)
        tolerance = 5 * torch.sqrt(theirs * (1 - theirs) / 20_000 * 2) + 1e-3
        assert torch.all((ours - theirs).abs() <= tolerance), (item, ours, theirs)


@pytest.mark.parametrize("agent", list(FAST))
def test_predict_shapes_and_distinct_items(agent: type[BaseAlgorithm]) -> None:
    model = agent("TopKPolicy", make_env(), seed=0, **FAST[agent])
    for deterministic in (True, False):
        actions, _ = model.predict(contexts(), deterministic=deterministic)
        assert actions.shape == (N_CONTEXTS, K)
        assert all(len(set(slate.tolist())) == K for slate in actions)
        single, _ = model.predict(contexts()[0], deterministic=deterministic)
        assert single.shape == (K,)


@pytest.mark.parametrize("agent", list(FAST))
def test_same_seed_same_training_and_save_load(agent: type[BaseAlgorithm], tmp_path: Path) -> None:
    first, second = (agent("TopKPolicy", make_env(), seed=3, **FAST[agent]).learn(300) for _ in range(2))
    for (key, a), b in zip(
        first.policy.state_dict().items(), second.policy.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=key)
    first.save(tmp_path / "model.zip")
    loaded = agent.load(tmp_path / "model.zip", env=make_env(seed=1))
    assert type(loaded.policy) is type(first.policy)
    np.testing.assert_array_equal(
        loaded.predict(contexts(), deterministic=True)[0], first.predict(contexts(), deterministic=True)[0]
    )
    loaded.learn(100, reset_num_timesteps=False)


@pytest.mark.parametrize("agent", list(FAST))
def test_eval_callback(agent: type[BaseAlgorithm], tmp_path: Path) -> None:
    callback = EvalCallback(make_env(seed=100), eval_freq=100, n_eval_episodes=3, log_path=str(tmp_path))
    agent("TopKPolicy", make_env(), seed=0, **FAST[agent]).learn(300, callback=callback)
    evaluations = np.load(tmp_path / "evaluations.npz")
    assert list(evaluations["timesteps"]) == [100, 200, 300]


@pytest.mark.parametrize(
    "space",
    [
        spaces.Discrete(4),
        spaces.MultiDiscrete([4, 5]),
        spaces.MultiDiscrete([2, 2, 2]),
        spaces.MultiBinary(3),
    ],
    ids=repr,
)
@pytest.mark.parametrize("agent", list(FAST))
def test_other_action_spaces_are_refused_with_their_name(
    agent: type[BaseAlgorithm], space: spaces.Space
) -> None:
    env = TopKBandit()
    env.action_space = space
    message = (
        re.escape("needs a slate action space MultiDiscrete([N] * k)") + ".*got " + re.escape(repr(space))
    )
    with pytest.raises(ValueError, match=message):
        agent("TopKPolicy", env)


LEARNERS: dict[str, tuple[type[BaseAlgorithm], dict[str, Any], int]] = {
    "REINFORCE": (REINFORCE, {"n_episodes": 16, "baseline": "leave_one_out"}, 3_000),
}


@pytest.mark.parametrize("learner", LEARNERS)
def test_learns_the_best_slate_of_each_context(learner: str) -> None:
    algorithm, kwargs, steps = LEARNERS[learner]
    model = algorithm("TopKPolicy", make_env(n_envs=4), seed=0, **kwargs).learn(steps)
    # The optimum is K = 2 per step; a uniformly random slate of distinct items earns K² / N = 0.67.
    mean_return, _ = evaluate_policy(model, make_env(seed=1), n_eval_episodes=60, deterministic=True)
    assert mean_return == K
    stochastic_return, _ = evaluate_policy(model, make_env(seed=1), n_eval_episodes=200)
    assert stochastic_return >= 0.9 * K
