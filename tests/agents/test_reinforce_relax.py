"""REINFORCE with RELAX's action-dependent control variate (``baseline="relax"``)."""

import csv
import re
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import VecEnv
from test_factorised_actions import ContextualChoices

import rlrelax.envs  # noqa: F401  (registers rlrelax/Slate-v0)
from rlrelax.agents.reinforce import REINFORCE
from rlrelax.agents.reinforce.policies import ActionControlVariate
from rlrelax.agents.reinforce.reinforce import EpisodeBatch
from rlrelax.relax import gumbel_noise

# Acrobot-v1 has three actions, so the relaxation and the conditional samples are not the binary special case.
ENV_ID = "Acrobot-v1"
# Returns far from zero: a baseline has much to remove, as in CartPole, where every return is positive.
RETURN_OF_ACTION = th.tensor([10.0, 11.0, 13.0])


def relax_model(**kwargs: object) -> REINFORCE:
    return REINFORCE("MlpPolicy", ENV_ID, baseline="relax", normalize_advantage=False, seed=0, **kwargs)


def one_state_batch(model: REINFORCE, n_steps: int, seed: int) -> EpisodeBatch:
    """``n_steps`` one-step episodes from one fixed state, the return a fixed function of the action.

    The actions are drawn as the agent draws them, by the Gumbel-max trick on the policy's logits, and the
    noise is kept, as a rollout keeps it.
    """
    observations = th.tensor([[1.0, 0.0, 0.5, 0.5, 0.3, -0.2]]).repeat(n_steps, 1)
    generator = th.Generator().manual_seed(seed)
    with th.no_grad():
        logits = model._action_logits(observations)
    noise = gumbel_noise(logits.shape, generator=generator)
    actions = (logits + noise).argmax(dim=-1)
    returns = RETURN_OF_ACTION[actions]
    return EpisodeBatch(observations, actions, returns[None, :], th.ones(1, n_steps, dtype=th.bool), noise)


def mean_estimate(model: REINFORCE, batch: EpisodeBatch, generator: th.Generator) -> th.Tensor:
    """The mean over the batch's steps of the estimate w.r.t. the logits, read off the output layer's bias
    (every step has the same state, so d logits / d bias is the identity)."""
    _, info = model._actor_loss(batch, generator)
    (gradient,) = th.autograd.grad(info["policy_loss"], model.policy.action_net.bias)
    return -gradient


def exact_gradient(model: REINFORCE, batch: EpisodeBatch) -> th.Tensor:
    with th.no_grad():
        probs = th.softmax(model._action_logits(batch.observations[:1])[0], dim=-1)
    return probs * (RETURN_OF_ACTION - (probs * RETURN_OF_ACTION).sum())


def randomise_control_variate(model: REINFORCE, seed: int) -> None:
    generator = th.Generator().manual_seed(seed)
    with th.no_grad():
        for parameter in model.control_variate.parameters():
            parameter.add_(0.5 * th.randn(parameter.shape, generator=generator))


def test_estimate_is_unbiased_with_any_control_variate() -> None:
    model = relax_model()
    randomise_control_variate(model, seed=1)  # a c(z, s) far from zero and from optimal
    with th.no_grad():
        model.policy.action_net.bias.copy_(th.tensor([0.5, -0.3, 0.1]))
    generator = th.Generator().manual_seed(2)
    # Many chunks: with a random control variate the estimate has heavy tails, so a standard error from a
    # few chunks would itself be noisy.
    chunks = th.stack(
        [mean_estimate(model, one_state_batch(model, 1_000, seed=10 + i), generator) for i in range(100)]
    )
    standard_error = chunks.std(dim=0) / 100**0.5
    exact = exact_gradient(model, one_state_batch(model, 1, seed=0))
    assert ((chunks.mean(dim=0) - exact).abs() < 4 * standard_error + 1e-4).all(), (chunks.mean(0), exact)
    # The control variate changed the estimate: a zero one would give the plain score function.
    assert chunks.std(dim=0).max() > 0


def test_untrained_control_variate_gives_reinforce_without_a_baseline() -> None:
    relax = relax_model()
    plain = REINFORCE("MlpPolicy", ENV_ID, baseline="none", normalize_advantage=False, seed=0)
    batch = one_state_batch(relax, 50, seed=3)
    th.testing.assert_close(
        mean_estimate(relax, batch, th.Generator().manual_seed(4)),
        mean_estimate(plain, batch, th.Generator().manual_seed(4)),
    )


def test_variance_training_lowers_the_variance_far_below_the_score_function() -> None:
    model = relax_model()
    generator = th.Generator().manual_seed(5)
    optimizer = model.control_variate_optimizer

    def second_moment() -> float:
        # E ‖ĝ_t‖²: the variance plus ‖E ĝ_t‖², which is the same for every unbiased estimate.
        _, info = model._actor_loss(one_state_batch(model, 4_000, seed=6), generator)
        return float(info["control_variate_loss"].detach())

    untrained = second_moment()  # c = 0: the score function without a baseline
    for step in range(300):
        _, info = model._actor_loss(one_state_batch(model, 256, seed=100 + step), generator)
        optimizer.zero_grad()
        info["control_variate_loss"].backward()
        optimizer.step()
    exact_squared = float(exact_gradient(model, one_state_batch(model, 1, seed=0)).square().sum())
    assert second_moment() - exact_squared < 0.05 * (untrained - exact_squared)


def test_relax_trains_its_control_variate_and_logs_it(tmp_path: Path) -> None:
    model = REINFORCE("MlpPolicy", "CartPole-v1", baseline="relax", seed=0, n_episodes=2)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    before = [p.detach().clone() for p in model.control_variate.parameters()]
    model.learn(1_000)
    assert model._n_updates > 0
    after = list(model.control_variate.parameters())
    assert all(not th.equal(a, b) for a, b in zip(before, after, strict=True))
    with open(tmp_path / "progress.csv") as file:
        keys = set(next(csv.reader(file)))
    assert {"train/control_variate_loss", "train/policy_loss", "time/episodes"} <= keys


def test_save_load_restores_the_control_variate_and_its_optimizer(tmp_path: Path) -> None:
    model = REINFORCE("MlpPolicy", "CartPole-v1", baseline="relax", seed=0, n_episodes=2)
    model.learn(600)
    model.save(tmp_path / "model.zip")
    loaded = REINFORCE.load(tmp_path / "model.zip", env=make_vec_env("CartPole-v1", n_envs=1, seed=1))
    assert isinstance(loaded.control_variate, ActionControlVariate)
    for a, b in zip(model.control_variate.parameters(), loaded.control_variate.parameters(), strict=True):
        assert th.equal(a, b)
    saved = model.control_variate_optimizer.state_dict()["state"]
    restored = loaded.control_variate_optimizer.state_dict()["state"]
    assert saved.keys() == restored.keys() and len(saved) > 0
    loaded.learn(400, reset_num_timesteps=False)
    assert loaded.num_timesteps == 1_000


def test_same_seed_same_result() -> None:
    def train() -> list[np.ndarray]:
        model = REINFORCE("MlpPolicy", "CartPole-v1", baseline="relax", seed=3, n_episodes=2)
        model.learn(800)
        return [
            p.detach().numpy().copy()
            for p in [*model.policy.parameters(), *model.control_variate.parameters()]
        ]

    for a, b in zip(train(), train(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "env",
    [
        pytest.param(lambda: gym.make("rlrelax/Slate-v0"), id="MultiDiscrete"),
        pytest.param(lambda: ContextualChoices(spaces.MultiBinary(4)), id="MultiBinary"),
    ],
)
def test_relax_needs_a_discrete_action_space(env: Callable[[], gym.Env | VecEnv]) -> None:
    made = env()
    message = rf"baseline='relax' needs a Discrete action space.*{re.escape(repr(made.action_space))}"
    with pytest.raises(ValueError, match=message):
        REINFORCE("MlpPolicy", made, baseline="relax")
