"""GradientStatsCallback on the rlrelax agents and on SB3's PPO and A2C."""

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure

from rlrelax.agents import REINFORCE, GumbelAC, SoftQ
from rlrelax.agents.common import ActorGradientDraws
from rlrelax.callbacks import GradientStatsCallback, gradient_statistics
from rlrelax.estimators import ESTIMATORS, exact_gradient

SETTINGS: dict[str, tuple[type[BaseAlgorithm], dict[str, Any]]] = {
    "REINFORCE": (REINFORCE, {"n_episodes": 4}),
    "SoftQ": (SoftQ, {"learning_starts": 100, "batch_size": 32}),
    "GumbelAC": (GumbelAC, {"learning_starts": 100, "batch_size": 32}),
    "GumbelAC-score_function": (
        GumbelAC,
        {"learning_starts": 100, "batch_size": 32, "estimator": "score_function"},
    ),
    "PPO": (PPO, {"n_steps": 128, "batch_size": 64, "n_epochs": 2}),
    "A2C": (A2C, {}),
}
# Where the exact gradient of the same objective is known, the bias is logged too.
WITH_EXACT = {"SoftQ", "GumbelAC", "GumbelAC-score_function"}


def make(name: str, seed: int = 0) -> BaseAlgorithm:
    algorithm, kwargs = SETTINGS[name]
    return algorithm("MlpPolicy", "CartPole-v1", seed=seed, **kwargs)


@pytest.mark.parametrize("name", list(SETTINGS))
def test_logged_keys_next_to_eval_callback(name: str, tmp_path: Path) -> None:
    model = make(name)
    model.set_logger(configure(str(tmp_path), ["csv", "tensorboard"]))
    stats = GradientStatsCallback(every_n_steps=200, n_draws=4, batch_size=32)
    evaluation = EvalCallback(make_vec_env("CartPole-v1", seed=9), eval_freq=250, n_eval_episodes=1)
    model.learn(1_000, callback=CallbackList([stats, evaluation]))

    assert len(stats.history) >= 2
    header = (tmp_path / "progress.csv").read_text().splitlines()[0].split(",")
    estimated = {"variance", "signal", "snr"}
    if name in WITH_EXACT:
        estimated |= {"relative_bias_sq", "cosine"}
    expected = estimated | {f"{key}_se" for key in estimated} | {"seconds", "total_seconds"}
    if name in WITH_EXACT:
        expected.add("exact_norm")
    assert {f"gradient_stats/{key}" for key in expected} <= set(header)
    assert "eval/mean_reward" in header
    assert list(tmp_path.glob("events.out.tfevents.*"))
    for measurement in stats.history:
        assert set(measurement) == expected | {"timesteps"}
        assert measurement["variance"] > 0 and measurement["variance_se"] > 0
        assert np.isfinite(measurement["snr"]) and np.isfinite(measurement["signal_se"])
    assert stats.total_seconds == pytest.approx(sum(m["seconds"] for m in stats.history))


class Choices(gym.Env[np.ndarray, np.ndarray]):
    """One-step episodes with a fixed observation: reward 1 for choosing 1 in the first choice."""

    def __init__(self, action_space: spaces.MultiDiscrete | spaces.MultiBinary) -> None:
        self.observation_space = spaces.Box(0.0, 1.0, (2,), np.float32)
        self.action_space = action_space

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return np.ones(2, np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        return np.ones(2, np.float32), float(action[0] == 1), True, False, {}


@pytest.mark.parametrize("algorithm", [PPO, A2C])
@pytest.mark.parametrize("space", [spaces.MultiDiscrete([3, 4]), spaces.MultiBinary(4)], ids=repr)
def test_on_policy_draws_on_several_choices(algorithm: type[BaseAlgorithm], space: spaces.Space) -> None:
    # SB3's PPO and A2C keep one action entry per choice for these spaces; flattening them like Discrete
    # indices would mismatch the distribution's shape.
    model = algorithm("MlpPolicy", Choices(space), seed=0, n_steps=64)
    stats = GradientStatsCallback(every_n_steps=64, n_draws=3, batch_size=32)
    model.learn(128, callback=stats)
    assert len(stats.history) >= 1
    assert all(m["variance"] > 0 and np.isfinite(m["snr"]) for m in stats.history)


@pytest.mark.parametrize("name", list(SETTINGS))
def test_training_is_identical_with_and_without_the_callback(name: str) -> None:
    plain = make(name, seed=1).learn(800)
    measured = make(name, seed=1).learn(800, callback=GradientStatsCallback(every_n_steps=100, n_draws=3))
    for key, value in plain.policy.state_dict().items():
        torch.testing.assert_close(measured.policy.state_dict()[key], value, rtol=0, atol=0)


class FullRollouts(BaseCallback):
    """Records the env steps at the end of each of REINFORCE's rollouts that it trains on."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[int] = []

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        assert isinstance(self.model, REINFORCE)
        if self.model.episode_buffer.is_full:  # not the last rollout, which the budget cut short
            self.steps.append(self.num_timesteps)


def test_measurements_follow_the_multiples_of_every_n_steps() -> None:
    # REINFORCE's rollouts are whole episodes, of any length: each measurement is at the first rollout end at
    # or after a multiple of every_n_steps (not every_n_steps after the last measurement, which would drift
    # differently in each run), so runs of other seeds measure at the same points of training.
    ends = FullRollouts()
    stats = GradientStatsCallback(every_n_steps=300, n_draws=3)
    make("REINFORCE").learn(3_000, callback=CallbackList([ends, stats]))
    expected = sorted({next(t for t in ends.steps if t >= k) for k in range(300, ends.steps[-1] + 1, 300)})
    assert [int(m["timesteps"]) for m in stats.history] == expected
    assert len(expected) >= 5


def test_statistics_of_known_draws() -> None:
    # Computed by hand: the sums of the draws are (6, 6) and of their squared norms 34; g_i·g_j for the
    # three pairs are 3, 2 and 14.
    estimates = torch.tensor([[1.0, 0.0], [3.0, 2.0], [2.0, 4.0]])
    stats = gradient_statistics(ActorGradientDraws(estimates, exact=torch.tensor([2.0, 0.0])))
    assert stats["variance"] == pytest.approx((34 - 72 / 3) / 2)  # 5
    assert stats["signal"] == pytest.approx(2 * (3 + 2 + 14) / 6)  # 19/3, where |mean|² would be 8
    assert stats["snr"] == pytest.approx(19 / 15)
    assert stats["exact_norm"] == pytest.approx(2.0)
    # (|E g|² - 2 E[g]·g* + |g*|²) / |g*|², with E[g]·g* estimated by mean·g* = 4.
    assert stats["relative_bias_sq"] == pytest.approx((19 / 3 - 8 + 4) / 4)
    assert stats["cosine"] == pytest.approx(4 / (2 * (19 / 3) ** 0.5))
    # Jackknife: leaving out one draw leaves one pair, whose signal is its dot product: 14, 2 and 3.
    spread = sum((x - 19 / 3) ** 2 for x in (14, 2, 3))
    assert stats["signal_se"] == pytest.approx((2 / 3 * spread) ** 0.5)


def test_identical_draws_have_no_variance() -> None:
    # A deterministic estimate (GumbelAC's "exact"): identical draws, whose raw sums differ by rounding.
    gradient = torch.randn(5_000, generator=torch.Generator().manual_seed(0)) * 1e3 + 7.1
    stats = gradient_statistics(ActorGradientDraws(gradient.repeat(12, 1), exact=gradient))
    assert stats["variance"] == 0.0 and stats["variance_se"] == 0.0
    assert stats["snr"] == np.inf
    assert stats["relative_bias_sq"] == pytest.approx(0.0, abs=1e-12)
    assert stats["cosine"] == pytest.approx(1.0, abs=1e-12)


def test_signal_and_bias_carry_no_monte_carlo_bias() -> None:
    # A true SNR of 0.001: |E g|² = 1 against tr Cov = 1000, and draws that are unbiased for g* = E g. With 4
    # draws, |mean|² averages 1 + 1000/4 and |mean - g*|²/|g*|² averages 1000/4; the estimates must average
    # 1 and 0.
    generator = torch.Generator().manual_seed(0)
    mean = torch.zeros(1_000, dtype=torch.float64)
    mean[0] = 1.0
    signals, biases = [], []
    for _ in range(400):
        draws = mean + torch.randn(4, 1_000, generator=generator, dtype=torch.float64)
        stats = gradient_statistics(ActorGradientDraws(draws, mean))
        signals.append(stats["signal"])
        biases.append(stats["relative_bias_sq"])
    for values, truth in ((signals, 1.0), (biases, 0.0)):
        average, error = np.mean(values), np.std(values) / np.sqrt(len(values))
        assert abs(average - truth) < 4 * error, (average, error, truth)
        assert error < 2.0  # so the test tells the truth from the naive 250


@pytest.mark.parametrize(("estimator", "options"), [("score_function", {}), ("gumbel_softmax", {"tau": 5.0})])
def test_bias_is_detected_where_there_is_one(estimator: str, options: dict[str, float]) -> None:
    # A categorical objective with a known answer: the exact gradient by enumeration of the 5 actions.
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, generator=generator, dtype=torch.float64)
    values = torch.randn(3, 5, generator=generator, dtype=torch.float64)

    def f(actions: torch.Tensor) -> torch.Tensor:
        return (actions * values).sum(-1)

    def draw() -> torch.Tensor:
        leaf = logits.clone().requires_grad_(True)
        surrogate = ESTIMATORS[estimator](leaf, f, n_samples=4, generator=generator, **options)
        (grad,) = torch.autograd.grad(surrogate, leaf)
        return grad.reshape(-1)

    exact = exact_gradient(logits, f).reshape(-1)
    stats = gradient_statistics(ActorGradientDraws(torch.stack([draw() for _ in range(64)]), exact))
    if estimator == "score_function":  # unbiased: zero within 3 standard errors
        assert abs(stats["relative_bias_sq"]) < 3 * stats["relative_bias_sq_se"], stats
    else:  # at a high temperature the relaxed sample's Jacobian is far from the softmax's
        assert stats["relative_bias_sq"] > 5 * stats["relative_bias_sq_se"], stats
        assert stats["relative_bias_sq"] > 0.1


@pytest.mark.parametrize(("estimator", "biased"), [("score_function", False), ("gumbel_softmax", True)])
def test_the_callback_logs_the_bias_of_a_gumbel_ac_estimator(estimator: str, biased: bool) -> None:
    model = GumbelAC(
        "MlpPolicy",
        "CartPole-v1",
        estimator=estimator,
        temperature=5.0,
        learning_starts=100,
        batch_size=32,
        seed=0,
    )
    stats = GradientStatsCallback(every_n_steps=400, n_draws=32, batch_size=64)
    model.learn(1_300, callback=stats)
    assert len(stats.history) == 3
    for measurement in stats.history:
        bias, error = measurement["relative_bias_sq"], measurement["relative_bias_sq_se"]
        if biased:
            assert bias > 5 * error and bias > 0.05, measurement
        else:
            assert abs(bias) < 3 * error, measurement


def test_unsupported_model_is_refused_when_training_starts() -> None:
    model = DQN("MlpPolicy", "CartPole-v1", seed=0)
    with pytest.raises(TypeError, match="DQN"):
        model.learn(100, callback=GradientStatsCallback(every_n_steps=10))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"every_n_steps": 0}, ValueError, "every_n_steps must be an int >= 1, got 0"),
        ({"every_n_steps": 10, "n_draws": 2}, ValueError, "n_draws must be an int >= 3, got 2"),
        ({"every_n_steps": 10.0}, TypeError, "every_n_steps must be an int, got 10.0"),
        ({"every_n_steps": 10, "batch_size": "64"}, TypeError, "batch_size must be an int"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        GradientStatsCallback(**kwargs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["REINFORCE", "SoftQ", "GumbelAC", "GumbelAC-score_function", "PPO"])
def test_measures_on_cuda(name: str) -> None:
    algorithm, kwargs = SETTINGS[name]
    model = algorithm("MlpPolicy", "CartPole-v1", seed=0, device="cuda", **kwargs)
    stats = GradientStatsCallback(every_n_steps=200, n_draws=4, batch_size=32)
    model.learn(600, callback=stats)
    assert stats.history and all(np.isfinite(m["variance"]) for m in stats.history)
