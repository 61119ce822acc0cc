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

import rlrelax.envs  # noqa: F401  (registers rlrelax/Slate-v0)
from rlrelax.agents import REINFORCE, GumbelAC, SoftQ
from rlrelax.agents.common import (
    MAX_ENUMERATED_NEXT_ACTIONS,
    PlackettLuceDistribution,
    TopKLayout,
)
from rlrelax.callbacks import GradientStatsCallback

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
FAST: dict[type[BaseAlgorithm], dict[str, Any]] = {
    REINFORCE: {"n_episodes": 4},
    GumbelAC: {"learning_starts": 64, "batch_size": 32, "buffer_size": 2_000},
}


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


# --- TopKLayout, GumbelAC's view of a slate ------------------------------------------------------------


def enumerated_entropy(logits: torch.Tensor, k: int) -> torch.Tensor:
    probabilities = torch.stack(list(sequential_probabilities(logits, k).values()))
    return -(probabilities * probabilities.log()).sum(0)


def test_layout_counts_ordered_slates_and_encodes_the_set_shown() -> None:
    layout = TopKLayout.of(spaces.MultiDiscrete([5, 5, 5]))
    assert (layout.width, layout.k, layout.n_joint_actions) == (5, 3, 60)
    slates = layout.joint_actions()
    assert slates.shape == (60, 3) and len({tuple(slate) for slate in slates.tolist()}) == 60
    encoded = layout.encode(torch.tensor([[4.0, 0.0, 2.0], [2.0, 0.0, 4.0]]))
    torch.testing.assert_close(encoded, torch.tensor([[1.0, 0.0, 1.0, 0.0, 1.0]] * 2))
    logits = torch.randn(2, 5)
    assert layout.mode(logits).tolist() == logits.topk(3).indices.tolist()


@pytest.mark.parametrize(("n_items", "k"), [(5, 2), (7, 3)])
def test_layout_entropy_is_the_slates_exact_or_unbiased(n_items: int, k: int) -> None:
    """Exact by enumeration up to 64 ordered slates (5 x 4); beyond (7 x 6 x 5), unbiased in value and
    gradient."""
    layout = TopKLayout(n_items, k)
    torch.manual_seed(0)
    logits = torch.randn(n_items, dtype=torch.float64, requires_grad=True)
    exact = enumerated_entropy(logits, k)
    (exact_gradient,) = torch.autograd.grad(exact, logits)
    if layout.n_joint_actions <= MAX_ENUMERATED_NEXT_ACTIONS:
        estimate = layout.entropy(logits.unsqueeze(0))
        torch.testing.assert_close(estimate, exact.detach().unsqueeze(0))
        torch.testing.assert_close(torch.autograd.grad(estimate.sum(), logits)[0], exact_gradient)
        return
    n_states = 4_000
    # One leaf row per state, so one backward pass gives each state's gradient.
    states = logits.detach().expand(n_states, -1).clone().requires_grad_(True)
    estimates = layout.entropy(states)
    (per_state,) = torch.autograd.grad(estimates.sum(), states)
    estimates = estimates.detach()
    # Each state's estimate averages its own draws; their spread across states bounds the mean's error.
    assert abs(float(estimates.mean()) - float(exact.detach())) <= 5 * float(estimates.std()) / math.sqrt(
        n_states
    )
    error = (per_state.mean(0) - exact_gradient).abs()
    assert bool((error <= 5 * per_state.std(0) / math.sqrt(n_states)).all()), error


@pytest.mark.parametrize("estimator", ["gumbel_softmax", "straight_through"])
def test_relaxed_slates_are_the_relaxed_k_hot_of_the_sample(estimator: str) -> None:
    layout = TopKLayout(6, 2)
    logits = torch.randn(3, 6, requires_grad=True)
    relaxed = layout.relaxed_actions(
        logits, estimator, n_samples=5, tau=0.5, n_rao_samples=1, generator=torch.Generator().manual_seed(4)
    )
    samples = layout.sample(logits, 5, generator=torch.Generator().manual_seed(4))
    assert relaxed.shape == (5, 3, 6)
    torch.testing.assert_close(relaxed.sum(-1), torch.full((5, 3), 2.0))
    if estimator == "straight_through":
        torch.testing.assert_close(relaxed, layout.encode(samples))
    else:
        # The soft mask's largest entries are the sampled items.
        assert (relaxed.topk(2).indices.sort(-1).values == samples.sort(-1).values).all()
    (gradient,) = torch.autograd.grad((relaxed * torch.arange(6.0)).sum(), logits)
    assert gradient.abs().sum() > 0


def test_score_function_surrogate_is_unbiased_against_exact() -> None:
    layout = TopKLayout(4, 2)
    torch.manual_seed(0)
    logits = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(4, dtype=torch.float64)

    def f(slates: torch.Tensor) -> torch.Tensor:
        return (slates * weights).sum(-1) ** 2

    options: dict[str, Any] = {"tau": 1.0, "n_rao_samples": 1}
    exact = layout.surrogate(logits, f, "exact", n_samples=1, **options)
    reference = sum(
        p * f(layout.encode(torch.tensor(slate))) for slate, p in sequential_probabilities(logits, 2).items()
    )
    torch.testing.assert_close(exact, reference.sum())
    (exact_gradient,) = torch.autograd.grad(exact, logits)
    estimate = layout.surrogate(logits, f, "score_function", n_samples=20_000, **options)
    (gradient,) = torch.autograd.grad(estimate, logits)
    torch.testing.assert_close(gradient, exact_gradient, atol=0.05, rtol=0.0)


def test_gumbel_rao_is_refused_for_slates() -> None:
    with pytest.raises(ValueError, match=r"gumbel_rao.*not available for slates"):
        GumbelAC("TopKPolicy", make_env(), estimator="gumbel_rao")
    with pytest.raises(ValueError, match="'gumbel_softmax' or 'straight_through' to relax a slate"):
        TopKLayout(4, 2).relaxed_actions(torch.zeros(4), "gumbel_rao", n_samples=1, tau=1.0, n_rao_samples=1)


def test_exact_is_refused_for_too_many_slates() -> None:
    env = TopKBandit()
    env.action_space = spaces.MultiDiscrete([20] * 3)  # 6840 ordered slates
    with pytest.raises(
        ValueError, match="6840, more than 4096; use a sampling estimator such as 'gumbel_softmax'"
    ):
        GumbelAC("TopKPolicy", env, estimator="exact")


def test_gumbel_ac_topk_actor_and_critic_read_n_items() -> None:
    model = GumbelAC("TopKPolicy", make_env(), seed=0, **FAST[GumbelAC])
    assert isinstance(model._layout, TopKLayout)
    assert model.actor.logits_net[-1].out_features == N_ITEMS
    assert model.critic.n_actions == N_ITEMS
    assert (model.critic_input, model.next_value) == ("concat", "policy")
    # The warm-up's random slates hold distinct items, as the policy's do.
    model.learn(100)
    assert model.replay_buffer is not None
    stored = model.replay_buffer.actions[: model.replay_buffer.pos, 0]
    assert all(len(set(slate.tolist())) == K for slate in stored)


@pytest.mark.parametrize("estimator", ["gumbel_softmax", "straight_through", "score_function", "exact"])
def test_every_estimator_trains_on_slates(estimator: str) -> None:
    model = GumbelAC("TopKPolicy", make_env(), seed=0, estimator=estimator, **FAST[GumbelAC])
    before = {name: value.clone() for name, value in model.actor.state_dict().items()}
    model.learn(150)
    assert any(not torch.equal(before[name], value) for name, value in model.actor.state_dict().items())
    assert all(torch.isfinite(value).all() for value in model.policy.state_dict().values())


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


# --- both agents ---------------------------------------------------------------------------------------


LEARNERS: dict[str, tuple[type[BaseAlgorithm], dict[str, Any], int]] = {
    "REINFORCE": (REINFORCE, {"n_episodes": 16, "baseline": "leave_one_out"}, 3_000),
    "GumbelAC": (GumbelAC, {"learning_starts": 100, "train_freq": 1, "batch_size": 64}, 600),
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


# --- gradient diagnostics on rlrelax/Slate-v0, whose 6,840 ordered slates are too many to enumerate ---------

REPLAY = {"learning_starts": 64, "batch_size": 32, "buffer_size": 2_000}
SLATE_AGENTS: dict[str, tuple[type[BaseAlgorithm], str, dict[str, Any], bool]] = {
    # label: (agent, policy, kwargs, whether an exact reference gradient exists)
    "GumbelAC-TopK-gumbel_softmax": (GumbelAC, "TopKPolicy", REPLAY, False),
    "GumbelAC-TopK-score_function": (
        GumbelAC,
        "TopKPolicy",
        {**REPLAY, "estimator": "score_function"},
        False,
    ),
    "GumbelAC-factorised": (GumbelAC, "MlpPolicy", REPLAY, False),
    "REINFORCE-TopK": (REINFORCE, "TopKPolicy", {"n_episodes": 2}, False),
    # SoftQ's Boltzmann policy is one softmax per slot, so its exact gradient enumerates 3 x 20 options.
    "SoftQ": (SoftQ, "MlpPolicy", REPLAY, True),
}


@pytest.mark.parametrize("label", SLATE_AGENTS)
def test_gradient_diagnostics_measure_every_agent_on_the_slate_env(label: str) -> None:
    agent, policy, kwargs, has_exact = SLATE_AGENTS[label]
    model = agent(policy, gym.make("rlrelax/Slate-v0"), seed=0, **kwargs)
    assert model.action_space == spaces.MultiDiscrete([20] * 3)
    callback = GradientStatsCallback(every_n_steps=100, n_draws=3, batch_size=32)
    model.learn(300, callback=callback)
    assert len(callback.history) >= 1
    for stats in callback.history:
        assert math.isfinite(stats["variance"]) and stats["variance"] > 0.0
        assert math.isfinite(stats["snr"])
        # Without an exact gradient the bias and cosine are left out, and the report leaves them empty.
        assert ("relative_bias_sq" in stats) == ("cosine" in stats) == has_exact
