"""GradientStatsCallback on the rlrelax agents and on SB3's PPO and A2C."""

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import CallbackList, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure

from rlrelax.agents import REINFORCE, GumbelAC, SoftQ
from rlrelax.agents.common import ActorGradientDraws
from rlrelax.callbacks import GradientStatsCallback, gradient_statistics

SETTINGS: dict[str, tuple[type[BaseAlgorithm], dict[str, Any]]] = {
    "REINFORCE": (REINFORCE, {"n_episodes": 2}),
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
    expected = {"variance", "snr", "mean_norm", "seconds", "total_seconds"}
    if name in WITH_EXACT:
        expected |= {"bias_cosine", "bias_relative_error"}
    assert {f"gradient_stats/{key}" for key in expected} <= set(header)
    assert "eval/mean_reward" in header
    assert list(tmp_path.glob("events.out.tfevents.*"))
    for measurement in stats.history:
        assert measurement["variance"] > 0 and np.isfinite(measurement["snr"])
        assert -1.0 <= measurement.get("bias_cosine", 0.0) <= 1.0
    assert stats.total_seconds == pytest.approx(sum(m["seconds"] for m in stats.history))


@pytest.mark.parametrize("name", list(SETTINGS))
def test_training_is_identical_with_and_without_the_callback(name: str) -> None:
    plain = make(name, seed=1).learn(800)
    measured = make(name, seed=1).learn(800, callback=GradientStatsCallback(every_n_steps=100, n_draws=3))
    for key, value in plain.policy.state_dict().items():
        torch.testing.assert_close(measured.policy.state_dict()[key], value, rtol=0, atol=0)


def test_exact_expectation_estimator_has_no_bias() -> None:
    model = GumbelAC(
        "MlpPolicy", "CartPole-v1", estimator="expected", learning_starts=100, batch_size=32, seed=0
    )
    stats = GradientStatsCallback(every_n_steps=300, n_draws=3)
    model.learn(700, callback=stats)
    for measurement in stats.history:
        assert measurement["bias_cosine"] == pytest.approx(1.0, abs=1e-5)
        assert measurement["bias_relative_error"] == pytest.approx(0.0, abs=1e-5)


def test_statistics_of_known_draws() -> None:
    estimates = torch.tensor([[1.0, 0.0], [3.0, 2.0]])
    stats = gradient_statistics(ActorGradientDraws(estimates, exact=torch.tensor([2.0, 0.0])))
    # mean (2, 1); per-coordinate unbiased variances 2 and 2.
    assert stats["variance"] == pytest.approx(4.0)
    assert stats["mean_norm"] == pytest.approx(5**0.5)
    assert stats["snr"] == pytest.approx(5 / 4)
    assert stats["bias_cosine"] == pytest.approx(2 / 5**0.5)
    assert stats["bias_relative_error"] == pytest.approx(0.5)


def test_unsupported_model_is_refused_when_training_starts() -> None:
    model = DQN("MlpPolicy", "CartPole-v1", seed=0)
    with pytest.raises(TypeError, match="DQN"):
        model.learn(100, callback=GradientStatsCallback(every_n_steps=10))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"every_n_steps": 0}, "every_n_steps"), ({"every_n_steps": 10, "n_draws": 1}, "n_draws")],
)
def test_bad_arguments_are_refused(kwargs: dict[str, int], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        GradientStatsCallback(**kwargs)
