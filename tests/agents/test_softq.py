"""Tests for SoftQ: options, bad input, the soft target, alpha → 0, save/load, determinism, logging."""

import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.buffers import NStepReplayBuffer
from stable_baselines3.common.logger import configure
from test_factorised_actions import make_env
from torch.nn import functional as F

from rlrelax.agents.common import AUTO_TARGET_ENTROPY_FRACTION, soft_value
from rlrelax.agents.softq import SoftQ
from rlrelax.agents.softq.policies import boltzmann_sample

# Small and quick: learning starts early and every step trains, so a few hundred steps exercise train().
FAST = {"learning_starts": 64, "batch_size": 32, "train_freq": 1, "policy_kwargs": {"net_arch": [16]}}


def _fast(**kwargs: object) -> SoftQ:
    return SoftQ("MlpPolicy", "CartPole-v1", seed=0, **{**FAST, **kwargs})  # type: ignore[arg-type]


def _observations(n: int = 16) -> np.ndarray:
    return np.random.default_rng(0).uniform(-0.2, 0.2, size=(n, 4)).astype(np.float32)


@pytest.mark.parametrize("ent_coef", [0.05, "auto", "auto_0.1"])
@pytest.mark.parametrize("munchausen_coef", [0.0, 0.9])
def test_smoke_options(ent_coef: float | str, munchausen_coef: float) -> None:
    model = _fast(ent_coef=ent_coef, munchausen_coef=munchausen_coef).learn(300)
    values = model.logger.name_to_value
    for key in ("train/critic_loss", "train/q_values", "train/entropy", "train/ent_coef"):
        assert math.isfinite(values[key]), key
    assert ("train/ent_coef_loss" in values) == (ent_coef != 0.05)
    assert model._n_updates > 200
    if ent_coef == 0.05:
        assert model.policy.ent_coef == pytest.approx(0.05, rel=1e-6)
    else:
        assert model.log_ent_coef.requires_grad
        assert model.policy.ent_coef != pytest.approx(1.0 if ent_coef == "auto" else 0.1)


def test_vec_env_with_several_envs() -> None:
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env("CartPole-v1", n_envs=3, seed=0)
    model = SoftQ("MlpPolicy", env, seed=0, **FAST).learn(300)  # type: ignore[arg-type]
    assert model.num_timesteps >= 300
    actions, _ = model.predict(env.reset(), deterministic=False)
    assert actions.shape == (3,)


@pytest.mark.parametrize(("n_envs", "interval"), [(1, 1), (1, 3), (4, 1), (4, 3), (3, 8)])
def test_target_network_moves_once_per_target_update_interval_env_steps(n_envs: int, interval: int) -> None:
    from stable_baselines3.common.env_util import make_vec_env

    tau = 0.1
    env = make_vec_env("CartPole-v1", n_envs=n_envs, seed=0)
    model = SoftQ("MlpPolicy", env, seed=0, tau=tau, target_update_interval=interval, **FAST)  # type: ignore[arg-type]
    with th.no_grad():
        for param in model.q_net.parameters():
            param.add_(1.0)
    online = [param.detach().clone() for param in model.q_net.parameters()]
    start = [param.detach().clone() for param in model.q_net_target.parameters()]
    for calls in range(1, 13):
        model._on_step()
        # Polyak updates every `interval` env steps, n_envs env steps a call: as many as multiples passed.
        kept = (1.0 - tau) ** (calls * n_envs // interval)
        for target, first, theta in zip(model.q_net_target.parameters(), start, online, strict=True):
            th.testing.assert_close(target, theta + kept * (first - theta))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ent_coef": 0.0}, "ent_coef"),
        ({"ent_coef": -0.1}, "ent_coef"),
        ({"ent_coef": float("nan")}, "ent_coef"),
        ({"ent_coef": float("inf")}, "ent_coef"),
        ({"ent_coef": "automatic"}, "automatic"),
        ({"ent_coef": "auto_-1"}, "auto_-1"),
        ({"ent_coef": "auto_x"}, "auto_x"),
        ({"target_entropy": 0.0}, "target_entropy"),
        ({"target_entropy": math.log(2)}, "target_entropy"),
        ({"target_entropy": 0.98 * math.log(2) + 0.1}, "target_entropy"),
        ({"target_entropy": -0.5, "ent_coef": "auto"}, "target_entropy"),
        ({"target_entropy": "max"}, "max"),
        ({"target_entropy": float("nan")}, "target_entropy"),
        ({"munchausen_coef": -0.1}, "munchausen_coef"),
        ({"munchausen_coef": float("nan")}, "munchausen_coef"),
        ({"munchausen_clip": 0.0}, "munchausen_clip"),
        ({"tau": 0.0}, "tau"),
        ({"tau": 1.5}, "tau"),
        ({"target_update_interval": 0}, "target_update_interval"),
        ({"max_grad_norm": 0.0}, "max_grad_norm"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SoftQ("MlpPolicy", "CartPole-v1", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ent_coef": True}, "ent_coef must be .*got True of type bool"),
        ({"target_update_interval": 2.5}, "target_update_interval must be an int, got 2.5"),
        ({"munchausen_clip": "-1"}, "munchausen_clip must be a real number"),
    ],
)
def test_arguments_of_the_wrong_type(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(TypeError, match=message):
        SoftQ("MlpPolicy", "CartPole-v1", **kwargs)  # type: ignore[arg-type]


def test_auto_target_entropy_is_a_reachable_fraction_of_the_maximum() -> None:
    assert _fast(ent_coef="auto")._target_entropy == pytest.approx(AUTO_TARGET_ENTROPY_FRACTION * math.log(2))
    assert 0.0 < AUTO_TARGET_ENTROPY_FRACTION < 0.98


def test_soft_value_matches_logsumexp_and_limits() -> None:
    q = th.tensor([[1.0, 2.0, -3.0], [0.5, 0.5, 0.5]], dtype=th.float64)
    for alpha in (0.3, 1.0, 7.0):
        expected = alpha * th.logsumexp(q / alpha, dim=1, keepdim=True)
        assert th.allclose(soft_value(q, alpha), expected, atol=1e-12)
    # alpha → 0: the hard maximum; alpha → ∞: the mean plus alpha·log|A|.
    assert th.allclose(soft_value(q, 1e-6), q.max(dim=1, keepdim=True).values, atol=1e-5)
    big = 1e6
    assert th.allclose(soft_value(q, big) - big * math.log(3), q.mean(dim=1, keepdim=True), atol=1e-3)


@pytest.mark.parametrize("alpha", [1e-6, 1e-30, 1e-300])
def test_soft_value_is_finite_and_bounded_for_tiny_alpha(alpha: float) -> None:
    q = th.tensor([[100.0, 99.0], [3.0, 3.0], [-1e4, 1e4]])
    value = soft_value(q, alpha)
    q_max = q.max(dim=1, keepdim=True).values
    assert th.isfinite(value).all()
    assert (value >= q_max).all() and (value <= q_max + alpha * math.log(2) + 1e-3).all()


def test_boltzmann_sample_frequencies() -> None:
    th.manual_seed(0)
    q = th.tensor([[1.0, 0.0, -0.5]]).expand(40_000, 3)
    alpha = 0.7
    counts = th.bincount(boltzmann_sample(q, alpha), minlength=3).double() / q.shape[0]
    expected = th.softmax(q[0].double() / alpha, dim=0)
    # binomial standard error is below 0.0025 here; 4 of them
    assert th.allclose(counts, expected, atol=0.01)
    greedy = boltzmann_sample(q[:100], 1e-30)
    assert (greedy == 0).all()


@pytest.mark.parametrize("munchausen_coef", [0.0, 0.9])
@pytest.mark.parametrize("n_steps", [1, 3])
def test_critic_loss_matches_the_soft_bellman_target(munchausen_coef: float, n_steps: int) -> None:
    """One gradient step's logged loss equals the loss recomputed by hand from the same minibatch; with
    ``n_steps`` > 1 the rewards are n-step returns and the next value is discounted by the batch's own
    discounts (gamma to the number of steps before the episode ended), the Munchausen term rewarding the
    first action."""
    alpha, clip = 0.5, -0.2
    model = _fast(
        ent_coef=alpha, munchausen_coef=munchausen_coef, munchausen_clip=clip, tau=0.5, n_steps=n_steps
    )
    model.learn(200)
    # SB3's ReplayBuffer.sample draws indices from numpy's legacy global RNG: replay the same draw.
    state = np.random.get_state()  # noqa: NPY002
    data = model.replay_buffer.sample(32)  # type: ignore[union-attr]
    if n_steps == 1:
        assert data.discounts is None
        discounts = th.tensor(model.gamma)
    else:
        assert isinstance(model.replay_buffer, NStepReplayBuffer)
        discounts = data.discounts.squeeze(1)
        # Some transitions end their episode within the n steps, so the discounts are not all gamma ** n.
        assert discounts.unique().numel() > 1 and discounts.min().item() == pytest.approx(
            model.gamma**n_steps
        )
    with th.no_grad():
        next_v = alpha * th.logsumexp(model.q_net_target(data.next_observations).double() / alpha, dim=1)
        log_pi = F.log_softmax(model.q_net_target(data.observations).double() / alpha, dim=1)
        log_pi_a = log_pi.gather(1, data.actions.long()).squeeze(1)
        bonus = munchausen_coef * (alpha * log_pi_a).clamp(clip, 0.0)
        target = data.rewards.squeeze(1) + bonus + discounts * (1 - data.dones.squeeze(1)) * next_v
        current = model.q_net(data.observations).gather(1, data.actions.long()).squeeze(1).double()
        expected = F.smooth_l1_loss(current, target).item()
    if munchausen_coef > 0.0:
        assert (alpha * log_pi_a < clip).any() and (alpha * log_pi_a > clip).any(), "clip not exercised"
    np.random.set_state(state)  # noqa: NPY002
    model.train(gradient_steps=1, batch_size=32)
    assert model.logger.name_to_value["train/critic_loss"] == pytest.approx(expected, rel=1e-5)


def test_tiny_alpha_trains_finitely_and_acts_greedily() -> None:
    model = _fast(ent_coef=1e-6, munchausen_coef=0.9).learn(400)
    values = model.logger.name_to_value
    assert math.isfinite(values["train/critic_loss"]) and math.isfinite(values["train/q_values"])
    assert values["train/entropy"] == pytest.approx(0.0, abs=1e-3)
    assert all(th.isfinite(p).all() for p in model.policy.parameters())
    obs = _observations(64)
    stochastic, _ = model.predict(obs, deterministic=False)
    greedy, _ = model.predict(obs, deterministic=True)
    with th.no_grad():
        q = model.q_net(th.as_tensor(obs))
    top2 = q.topk(2, dim=1).values
    clear = (top2[:, 0] - top2[:, 1]) > 1e-3  # ties within float error may break either way
    assert (stochastic[clear.numpy()] == greedy[clear.numpy()]).all()


def test_auto_ent_coef_moves_toward_the_target_entropy() -> None:
    # Starting at alpha = 100 the Boltzmann policy is near uniform (entropy above the target): alpha falls.
    model = _fast(ent_coef="auto_100", learning_starts=0).learn(200)
    assert model.policy.ent_coef < 100.0
    # Starting alpha = 1e-4 makes it near greedy (entropy below the target): alpha must rise.
    model = _fast(ent_coef="auto_0.0001", learning_starts=0).learn(200)
    assert model.policy.ent_coef > 1e-4


def test_save_load_round_trip(tmp_path: Path) -> None:
    model = _fast(ent_coef="auto", munchausen_coef=0.9).learn(300)
    model.save(tmp_path / "model.zip")
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    obs = _observations(32)

    loaded = SoftQ.load(tmp_path / "model.zip", env=gym.make("CartPole-v1"))
    loaded.load_replay_buffer(tmp_path / "buffer.pkl")
    assert loaded.log_ent_coef is loaded.policy.log_ent_coef
    assert loaded.log_ent_coef.requires_grad
    assert th.equal(loaded.log_ent_coef, model.log_ent_coef)
    assert loaded.ent_coef == "auto" and loaded._target_entropy == model._target_entropy
    assert loaded.ent_coef_optimizer is not None and model.ent_coef_optimizer is not None
    assert str(loaded.ent_coef_optimizer.state_dict()) == str(model.ent_coef_optimizer.state_dict())
    for a, b in zip(model.policy.state_dict().values(), loaded.policy.state_dict().values(), strict=True):
        assert th.equal(a, b)
    assert loaded.replay_buffer is not None and model.replay_buffer is not None
    assert loaded.replay_buffer.size() == model.replay_buffer.size()
    assert np.array_equal(loaded.replay_buffer.observations, model.replay_buffer.observations)
    greedy_before = model.predict(obs, deterministic=True)[0]
    assert np.array_equal(loaded.predict(obs, deterministic=True)[0], greedy_before)
    th.manual_seed(3)
    stochastic_before = model.predict(obs, deterministic=False)[0]
    th.manual_seed(3)
    assert np.array_equal(loaded.predict(obs, deterministic=False)[0], stochastic_before)

    log_alpha = loaded.log_ent_coef.item()
    updates = loaded._n_updates
    loaded.learn(200, reset_num_timesteps=False)
    assert loaded.num_timesteps == 500 and loaded._n_updates > updates
    assert loaded.log_ent_coef.item() != log_alpha


def test_fixed_ent_coef_survives_save_load(tmp_path: Path) -> None:
    model = _fast(ent_coef=0.02)
    model.save(tmp_path / "model.zip")
    loaded = SoftQ.load(tmp_path / "model.zip")
    assert loaded.policy.ent_coef == pytest.approx(0.02, rel=1e-6)
    assert not loaded.log_ent_coef.requires_grad and loaded.ent_coef_optimizer is None


def test_logged_keys_reach_the_csv(tmp_path: Path) -> None:
    model = _fast(ent_coef="auto")
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(600, log_interval=1)
    header = (tmp_path / "progress.csv").read_text().splitlines()[0].split(",")
    keys = ("train/critic_loss", "train/ent_coef", "train/entropy", "train/q_values", "train/ent_coef_loss")
    for key in keys:
        assert key in header, key


@pytest.mark.parametrize("space", ["Discrete", "MultiDiscrete"])
def test_layer_normalised_q_network(space: str, tmp_path: Path) -> None:
    env = "CartPole-v1" if space == "Discrete" else make_env(space)
    policy_kwargs = {"net_arch": [16, 8], "layer_norm": True}
    model = SoftQ("MlpPolicy", env, seed=0, **{**FAST, "policy_kwargs": policy_kwargs})
    for network in (model.q_net, model.q_net_target):
        norms = [layer for layer in network.q_net if isinstance(layer, th.nn.LayerNorm)]
        # One per hidden layer, before its activation; none on the output.
        assert [norm.normalized_shape for norm in norms] == [(16,), (8,)]
        kinds = [type(layer).__name__ for layer in network.q_net]
        assert kinds == ["Linear", "LayerNorm", "ReLU", "Linear", "LayerNorm", "ReLU", "Linear"]
    model.learn(200)
    model.save(tmp_path / "model.zip")
    loaded = SoftQ.load(tmp_path / "model.zip", env=model.get_env())
    assert loaded.policy.layer_norm is True
    for a, b in zip(model.policy.state_dict().values(), loaded.policy.state_dict().values(), strict=True):
        assert th.equal(a, b)


def test_q_network_without_layer_norm_by_default() -> None:
    model = _fast()
    assert model.policy.layer_norm is False
    assert not any(isinstance(layer, th.nn.LayerNorm) for layer in model.policy.modules())


def test_layer_norm_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="layer_norm must be a bool, got 1"):
        _fast(policy_kwargs={"layer_norm": 1})
