"""The slate recommendation MDP: its documented model, seeding, the exact myopic oracle, reference returns."""

import itertools
import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from scipy import stats

from rlrelax.envs import SlateEnv
from rlrelax.envs.slate import reference_returns


def click_probabilities(env: SlateEnv, shown: list[int]) -> np.ndarray:
    # The docstring's logit model, written out: P(click i) for each shown item, then P(no click).
    weights = [math.exp(3.0 * env.interests[env.item_topics[i]]) for i in shown]
    return np.array([*weights, 1.0]) / (1.0 + sum(weights))


def test_spaces_and_the_seeded_catalogue() -> None:
    env = SlateEnv()
    assert env.action_space == spaces.MultiDiscrete([20, 20, 20])
    assert env.observation_space.shape == (6,) and env.observation_space.dtype == np.float32
    np.testing.assert_array_equal(env.item_topics, np.arange(20) % 5)
    assert np.all(np.abs(env.item_quality) <= 1.0)
    assert np.all((env.item_engagement >= 1.0) & (env.item_engagement <= 3.0))
    # The topics' mean qualities rise from -1 to 1, so some topics are worth far more of the budget.
    topic_quality = [env.item_quality[env.item_topics == t].mean() for t in range(5)]
    assert topic_quality == sorted(topic_quality) and topic_quality[0] < -0.7 and topic_quality[-1] > 0.7
    np.testing.assert_array_equal(env.item_engagement, SlateEnv(item_seed=0).item_engagement)
    assert not np.array_equal(env.item_engagement, SlateEnv(item_seed=1).item_engagement)
    with pytest.raises(ValueError, match="read-only"):
        env.item_quality[0] = 1.0
    small = gym.make("rlrelax/Slate-v0", n_items=10, slate_size=2, n_topics=3, budget=4.0)
    assert small.action_space == spaces.MultiDiscrete([10, 10]) and small.observation_space.shape == (4,)
    assert small.spec is not None and small.spec.max_episode_steps == 50


def session(seed: int, policy: str) -> list[object]:
    env = gym.make("rlrelax/Slate-v0")
    slate_env: SlateEnv = env.unwrapped  # type: ignore[assignment]
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    trace: list[object] = [obs]
    done = False
    while not done:
        action = env.action_space.sample() if policy == "random" else slate_env.myopic_slate()
        obs, reward, terminated, truncated, info = env.step(action)
        trace += [action, obs, reward, info["clicked"]]
        done = terminated or truncated
    return trace


@pytest.mark.parametrize("policy", ["random", "myopic"])
def test_same_seed_same_session(policy: str) -> None:
    first = session(3, policy)
    assert len(first) > 20
    assert all(np.array_equal(a, b) for a, b in zip(first, session(3, policy), strict=True))
    other = session(4, policy)
    assert len(other) != len(first) or not all(
        np.array_equal(a, b) for a, b in zip(first, other, strict=True)
    )


def test_steps_follow_the_documented_model() -> None:
    env = SlateEnv()
    obs, info = env.reset(seed=0)
    assert info == {} and obs in env.observation_space and env.budget == 10.0
    np.testing.assert_allclose(obs, [*env.interests, 1.0], rtol=1e-6)
    outcomes = set()
    for _ in range(8):
        interests, budget = env.interests, env.budget
        obs, reward, terminated, truncated, info = env.step(np.array([1, 2, 3]))
        clicked = info["clicked"]
        outcomes.add(clicked >= 0)
        expected = interests.copy()
        if clicked < 0:
            assert reward == 0.0 and env.budget == budget - 1.0
        else:
            assert clicked in (1, 2, 3) and reward == env.item_engagement[clicked]
            change = env.item_quality[clicked] - 0.25 * env.item_engagement[clicked]
            assert env.budget == pytest.approx(min(budget + change, 10.0))
            topic = env.item_topics[clicked]
            expected[topic] += 0.1 * (1.0 - interests[topic])
        np.testing.assert_allclose(env.interests, expected)
        np.testing.assert_allclose(obs, [*expected, max(env.budget, 0.0) / 10.0], rtol=1e-6)
        assert terminated == (env.budget <= 0.0) and not truncated
    assert outcomes == {True, False}


def test_session_ends_when_the_budget_runs_out_or_at_the_time_limit() -> None:
    env = gym.make("rlrelax/Slate-v0", budget=2.0)
    env.reset(seed=0)
    env.action_space.seed(0)
    terminated = truncated = False
    while not (terminated or truncated):
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
    assert terminated and not truncated and obs[-1] == 0.0 and obs in env.observation_space
    assert env.unwrapped.budget <= 0.0  # type: ignore[attr-defined]
    short = gym.make("rlrelax/Slate-v0", max_episode_steps=3)
    short.reset(seed=0)
    slate_env: SlateEnv = short.unwrapped  # type: ignore[assignment]
    ends = [short.step(slate_env.myopic_slate(1.0))[2:4] for _ in range(3)]
    assert ends == [(False, False), (False, False), (False, True)]


def test_clicks_follow_the_logit_model_and_repeats_leave_slots_empty() -> None:
    env = SlateEnv()
    env.reset(seed=2)
    slate = np.array([7, 7, 3])  # item 7 is shown once: the user chooses among {7, 3} and not clicking
    probs = click_probabilities(env, [7, 3])
    draws = 3000
    counts = np.zeros(3)
    rewards = []
    for draw in range(draws):
        env.reset(seed=2)  # the same user each time, with fresh randomness for the choice
        env.np_random = np.random.default_rng(draw)
        _, reward, _, _, info = env.step(slate)
        counts[[7, 3, -1].index(info["clicked"])] += 1
        rewards.append(reward)
    assert stats.chisquare(counts, probs * draws).pvalue > 1e-3
    env.reset(seed=2)
    expected = env.expected_reward(slate)
    assert expected == pytest.approx(probs[:2] @ env.item_engagement[[7, 3]])
    assert abs(np.mean(rewards) - expected) < 5 * np.std(rewards) / math.sqrt(draws)
    assert env.expected_reward(np.array([3, 7, 3])) == pytest.approx(expected)


def shaped_value(env: SlateEnv, action: tuple[int, ...], budget_weight: float) -> float:
    # The expected reward plus budget_weight times the expected budget change, straight from the model.
    shown = list(dict.fromkeys(action))
    probs = click_probabilities(env, shown)
    changes = [env.item_quality[i] - 0.25 * env.item_engagement[i] for i in shown]
    return float(probs[:-1] @ env.item_engagement[shown] + budget_weight * (probs @ [*changes, -1.0]))


@pytest.mark.parametrize("budget_weight", [0.0, 1.0])
@pytest.mark.parametrize("kwargs", [{}, {"n_items": 8, "n_topics": 3}])
def test_oracle_slate_is_the_best_of_every_slate(budget_weight: float, kwargs: dict[str, int]) -> None:
    env = SlateEnv(**kwargs)
    actions = list(itertools.product(range(env.n_items), repeat=3))
    padded = 0
    for seed in range(4):
        env.reset(seed=seed)
        slate = env.myopic_slate(budget_weight)
        assert slate in env.action_space
        padded += len(set(slate.tolist())) < 3
        values = [shaped_value(env, action, budget_weight) for action in actions]
        assert shaped_value(env, tuple(slate.tolist()), budget_weight) == pytest.approx(
            max(values), abs=1e-12
        )
        if budget_weight == 0.0:
            assert env.expected_reward(slate) == pytest.approx(max(values), abs=1e-12)
    if kwargs:
        assert padded > 0, "the cases checked include a best slate of fewer distinct items than slots"


def test_myopic_oracle_beats_random_slates_and_looking_ahead_beats_it() -> None:
    results = reference_returns(n_episodes=30, seed=0)
    (random_mean, random_se), (myopic_mean, myopic_se), (aware_mean, aware_se) = (
        results["random"],
        results["myopic"],
        results["budget_aware"],
    )
    assert myopic_mean > 1.4 * random_mean
    assert myopic_mean - random_mean > 3 * math.hypot(random_se, myopic_se)
    assert aware_mean - myopic_mean > 3 * math.hypot(myopic_se, aware_se)


def test_invalid_actions_raise() -> None:
    env = SlateEnv()
    env.reset(seed=0)
    for bad in ([20, 0, 0], [-1, 0, 0], [0, 1], [0.5, 1, 2], "012", None, 3):
        with pytest.raises(ValueError, match="action must be 3 item indices"):
            env.step(bad)
        with pytest.raises(ValueError, match="action must be 3 item indices"):
            env.expected_reward(bad)


def test_state_is_only_there_after_reset() -> None:
    env = SlateEnv()
    for ask in (env.myopic_slate, lambda: env.interests, lambda: env.expected_reward([0, 1, 2])):
        with pytest.raises(gym.error.ResetNeeded, match="reset"):
            ask()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"n_items": 20.0}, TypeError, "n_items must be an int, got 20.0"),
        ({"n_items": 1}, ValueError, "n_items must be an int >= 2, got 1"),
        ({"slate_size": 0}, ValueError, "slate_size must be an int >= 1, got 0"),
        ({"slate_size": 21}, ValueError, "slate_size=21 exceeds n_items=20"),
        ({"n_topics": 1}, ValueError, "n_topics must be an int >= 2, got 1"),
        ({"n_items": 4, "slate_size": 2}, ValueError, "n_topics=5 exceeds n_items=4"),
        ({"budget": 0.0}, ValueError, "budget must be a finite number > 0, got 0.0"),
        ({"budget": math.nan}, ValueError, "budget must be a finite number > 0, got nan"),
        ({"budget": "10"}, TypeError, "budget must be a real number, got '10'"),
        ({"item_seed": -1}, ValueError, "item_seed must be an int >= 0, got -1"),
    ],
)
def test_bad_arguments_raise_naming_the_value(kwargs: dict[str, object], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        SlateEnv(**kwargs)  # type: ignore[arg-type]


def test_bad_reference_arguments_raise() -> None:
    env = SlateEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"budget_weight must be a finite number >= 0, got -1\.0"):
        env.myopic_slate(-1.0)
    with pytest.raises(ValueError, match="n_episodes must be an int >= 2, got 1"):
        reference_returns(n_episodes=1)
