"""The SB3 VecEnv adapter: SB3's conventions, seeding, and training SB3's PPO and DQN on it."""

import time
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecCheckNan, VecEnv, VecMonitor

from rlrelax.agents import REINFORCE, GumbelAC, SoftQ
from rlrelax.envs import CartPoleVecEnv, TorchCartPoleVectorEnv


def test_dones_infos_and_terminal_observations_follow_sb3() -> None:
    venv = CartPoleVecEnv(16, max_episode_steps=12)
    assert isinstance(venv, VecEnv) and venv.num_envs == 16
    # The reference: the same torch env in NEXT_STEP mode shows each final observation as a step's output.
    ref = TorchCartPoleVectorEnv(16, max_episode_steps=12)
    venv.seed(4)
    obs = venv.reset()
    np.testing.assert_array_equal(obs, ref.reset(seed=4)[0].numpy())
    assert obs.dtype == np.float32 and obs.shape == (16, 4) and all(o in venv.observation_space for o in obs)
    rng = np.random.default_rng(0)
    first_episode = np.ones(16, dtype=bool)
    saw_terminated = saw_truncated = False
    while first_episode.any():
        actions = rng.integers(0, 2, size=16)
        obs, rewards, dones, infos = venv.step(actions)
        ref_obs, _, ref_terminated, ref_truncated, _ = ref.step(actions)
        assert isinstance(obs, np.ndarray) and all(o in venv.observation_space for o in obs)
        assert rewards.dtype == np.float32 and dones.dtype == np.bool_ and len(infos) == 16
        for i in range(16):
            assert ("terminal_observation" in infos[i]) == dones[i] == ("TimeLimit.truncated" in infos[i])
            if not first_episode[i]:
                continue
            assert dones[i] == bool(ref_terminated[i] | ref_truncated[i])
            if dones[i]:
                np.testing.assert_array_equal(infos[i]["terminal_observation"], ref_obs[i].numpy())
                time_limited = bool(ref_truncated[i] and not ref_terminated[i])
                assert infos[i]["TimeLimit.truncated"] == time_limited
                saw_truncated |= time_limited
                saw_terminated |= not time_limited
                assert np.all(np.abs(obs[i]) <= 0.05)  # already reset, in the same step
                first_episode[i] = False
            else:
                np.testing.assert_array_equal(obs[i], ref_obs[i].numpy())
    assert saw_terminated and saw_truncated


def test_seed_makes_resets_reproducible_and_options_pass_through() -> None:
    venv = CartPoleVecEnv(8)
    venv.seed(11)
    first = venv.reset()
    venv.seed(11)
    np.testing.assert_array_equal(venv.reset(), first)
    assert not np.array_equal(venv.reset(), first)  # the seed is used once, like DummyVecEnv's
    venv.set_options({"low": -0.3, "high": -0.2})
    obs = venv.reset()
    assert np.all((obs >= -0.3) & (obs <= -0.2))


def test_attribute_access_and_bad_actions() -> None:
    venv = CartPoleVecEnv(4)
    venv.reset()
    assert venv.get_attr("max_episode_steps") == [500] * 4 and venv.get_attr("num_envs", [1]) == [4]
    assert venv.env_is_wrapped(gym.Wrapper) == [False] * 4
    venv.set_attr("max_episode_steps", 5)
    assert venv.env.max_episode_steps == 5
    with pytest.raises(ValueError, match="indices"):
        venv.set_attr("max_episode_steps", 6, indices=[0])
    with pytest.raises(ValueError, match="actions"):
        venv.step(np.array([0, 1, 2, 0]))
    with pytest.raises(ValueError, match="actions"):
        venv.step(np.array([0, 1]))
    with pytest.raises(RuntimeError, match="step_async"):
        venv.step_wait()


def test_vec_check_nan_and_vec_monitor() -> None:
    venv = VecMonitor(VecCheckNan(CartPoleVecEnv(32), raise_exception=True, warn_once=False))
    venv.seed(0)
    venv.reset()
    rng = np.random.default_rng(0)
    episodes = []
    for _ in range(200):
        _, _, dones, infos = venv.step(rng.integers(0, 2, size=32))
        episodes += [info["episode"]["l"] for info, done in zip(infos, dones, strict=True) if done]
    assert len(episodes) > 100 and 8 <= np.mean(episodes) <= 40  # random play lasts ~22 steps


OFF_POLICY_FAST = {"learning_starts": 64, "buffer_size": 1000}


@pytest.mark.parametrize(
    ("algo", "kwargs"),
    [
        (PPO, {"n_steps": 32, "batch_size": 64}),
        (DQN, OFF_POLICY_FAST),
        (REINFORCE, {"n_episodes": 4}),
        (SoftQ, OFF_POLICY_FAST),
        (GumbelAC, OFF_POLICY_FAST),
    ],
)
def test_sb3_and_rlrelax_algorithms_run_on_the_adapter(
    algo: type[BaseAlgorithm], kwargs: dict[str, Any]
) -> None:
    torch.set_num_threads(1)
    model = algo("MlpPolicy", VecMonitor(CartPoleVecEnv(4)), seed=0, **kwargs)
    model.learn(256)
    assert model.num_timesteps >= 256
    actions, _ = model.predict(np.zeros((4, 4), dtype=np.float32), deterministic=True)
    assert actions.shape == (4,)


def train_rl_zoo_ppo(env: VecEnv, seed: int) -> tuple[float, float]:
    """RL Zoo's PPO hyperparameters for CartPole-v1, 1e5 steps; mean return on a fresh CartPole-v1."""
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=32,
        batch_size=256,
        gae_lambda=0.8,
        gamma=0.98,
        n_epochs=20,
        ent_coef=0.0,
        learning_rate=lambda progress: 0.001 * progress,
        clip_range=lambda progress: 0.2 * progress,
        seed=seed,
        device="cpu",
    )
    start = time.perf_counter()
    model.learn(100_000)
    elapsed = time.perf_counter() - start
    eval_env = Monitor(gym.make("CartPole-v1"))
    eval_env.reset(seed=10_000 + seed)
    mean_return, _ = evaluate_policy(model, eval_env, n_eval_episodes=20, deterministic=True)
    return float(mean_return), elapsed


@pytest.mark.learning
def test_ppo_reaches_cartpole_v1_results_as_on_gymnasiums_env() -> None:
    torch.set_num_threads(1)
    ours, ours_s = train_rl_zoo_ppo(VecMonitor(CartPoleVecEnv(8)), seed=0)
    theirs, theirs_s = train_rl_zoo_ppo(make_vec_env("CartPole-v1", n_envs=8, seed=0), seed=0)
    print(
        f"PPO 1e5 steps: torch adapter {ours:.1f} ({ours_s:.0f} s), Gymnasium {theirs:.1f} ({theirs_s:.0f} s)"
    )
    assert ours >= 475 and theirs >= 475
