"""The one-step toys: exact rewards, known optima, seeded noise, exact policy gradients."""

import numpy as np
import pytest
import torch

from rlrelax.envs import BinaryTargetEnv, CategoricalBanditEnv


def test_binary_target_rewards_and_optimum() -> None:
    env = BinaryTargetEnv()
    assert env.target == 0.499
    obs, info = env.reset(seed=0)
    assert obs.shape == (1,) and info == {}
    for action in (0, 1):
        env.reset()
        obs, reward, terminated, truncated, _ = env.step(action)
        assert reward == -((action - 0.499) ** 2) == env.means[action]
        assert terminated and not truncated and obs in env.observation_space
    assert env.optimal_action == 0
    assert BinaryTargetEnv(target=0.7).optimal_action == 1
    # The signal the toy is about: d/dp E[r] = 2 t - 1 for P(a = 1) = p.
    assert env.means[1] - env.means[0] == pytest.approx(2 * 0.499 - 1)
    with pytest.raises(ValueError, match="read-only"):
        env.means[0] = 0.0


def test_categorical_bandit_means_are_seeded_and_known() -> None:
    env = CategoricalBanditEnv()
    assert env.means.shape == (10,)
    np.testing.assert_array_equal(env.means, CategoricalBanditEnv(means_seed=0).means)
    assert not np.array_equal(env.means, CategoricalBanditEnv(means_seed=1).means)
    assert env.optimal_arm == int(np.argmax(env.means)) and env.optimal_mean == env.means.max()
    assert CategoricalBanditEnv(n_arms=3).means.shape == (3,)
    given = CategoricalBanditEnv(means=[0.1, 0.5, 0.2], noise_std=0.0)
    assert given.optimal_arm == 1 and given.action_space.n == 3
    given.reset(seed=0)
    assert given.step(2)[1] == 0.2  # no noise: the mean itself
    with pytest.raises(ValueError, match="read-only"):
        env.means[0] = 0.0


def pulls(env: CategoricalBanditEnv, seed: int, actions: np.ndarray) -> np.ndarray:
    env.reset(seed=seed)
    rewards = []
    for action in actions:
        _, reward, terminated, _, _ = env.step(int(action))
        assert terminated
        env.reset()
        rewards.append(reward)
    return np.array(rewards)


def test_categorical_bandit_noise_is_seeded_and_unbiased() -> None:
    env = CategoricalBanditEnv(n_arms=4, noise_std=2.0, means_seed=3)
    actions = np.repeat(np.arange(4), 5000)
    rewards = pulls(env, 11, actions)
    np.testing.assert_array_equal(
        rewards, pulls(CategoricalBanditEnv(n_arms=4, noise_std=2.0, means_seed=3), 11, actions)
    )
    assert not np.array_equal(rewards, pulls(env, 12, actions))
    per_arm = rewards.reshape(4, 5000)
    np.testing.assert_allclose(per_arm.mean(axis=1), env.means, atol=5 * 2.0 / np.sqrt(5000))
    np.testing.assert_allclose(per_arm.std(axis=1), 2.0, rtol=0.05)


def test_exact_policy_gradient_and_regret_from_the_exposed_means() -> None:
    """A score-function estimate from the env's rewards agrees with the exact gradient of means @ softmax."""
    env = CategoricalBanditEnv(n_arms=5, noise_std=0.5, means_seed=2)
    logits = torch.tensor([0.3, -0.2, 0.1, 0.0, 0.5], dtype=torch.float64, requires_grad=True)
    means = torch.tensor(env.means)
    probs = torch.softmax(logits, 0)
    (means @ probs).backward()
    assert logits.grad is not None
    exact = logits.grad.clone()
    gen = np.random.default_rng(0)
    n = 40000
    actions = gen.choice(5, size=n, p=probs.detach().numpy())
    rewards = pulls(env, 0, actions)
    score = np.eye(5)[actions] - probs.detach().numpy()  # ∇ log softmax(logits)[a]
    estimates = (rewards - rewards.mean())[:, None] * score
    stderr = estimates.std(axis=0) / np.sqrt(n)
    np.testing.assert_allclose(estimates.mean(axis=0), exact.numpy(), atol=5 * stderr.max())


def test_optimal_arm_and_regret_of_known_means() -> None:
    env = CategoricalBanditEnv(means=[0.0, 1.0, 0.5])
    assert (env.optimal_arm, env.optimal_mean) == (1, 1.0)
    # The uniform policy's regret, by hand: 1 - (0 + 1 + 0.5) / 3.
    assert env.optimal_mean - float(np.mean(env.means)) == pytest.approx(0.5)


@pytest.mark.parametrize("env_cls", [BinaryTargetEnv, CategoricalBanditEnv])
def test_invalid_actions_raise(env_cls: type[BinaryTargetEnv] | type[CategoricalBanditEnv]) -> None:
    env = env_cls()
    env.reset(seed=0)
    for bad in (-1, 99, 0.5, "1", None):
        with pytest.raises(ValueError, match="action"):
            env.step(bad)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n_arms": 1}, "n_arms"),
        ({"n_arms": 2.0}, "n_arms"),
        ({"noise_std": -1.0}, "noise_std"),
        ({"noise_std": float("nan")}, "noise_std"),
        ({"means_seed": -1}, "means_seed"),
        ({"means": [1.0]}, "means"),
        ({"means": [0.0, float("inf")]}, "means"),
        ({"means": [0.0, 1.0], "n_arms": 3}, "n_arms"),
    ],
)
def test_bandit_bad_arguments_raise(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        CategoricalBanditEnv(**kwargs)  # type: ignore[arg-type]


def test_binary_target_bad_arguments_raise() -> None:
    for bad in (float("nan"), float("inf"), "0.5", True):
        with pytest.raises(ValueError, match="target"):
            BinaryTargetEnv(target=bad)  # type: ignore[arg-type]
