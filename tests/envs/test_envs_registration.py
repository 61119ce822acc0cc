"""Every registered ``rlrelax/`` id passes Gymnasium's and SB3's env checkers without a single warning."""

import importlib.util
import warnings
from collections.abc import Iterable
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import rlrelax.envs
from rlrelax.envs import ENV_IDS, DiscretizeAction, TorchCartPoleVectorEnv

REGISTERED = sorted(env_id for env_id in gym.registry if env_id.startswith("rlrelax/"))
# Ids whose base env is a Box2D env: registered without Box2D, made only with it.
NEEDS_BOX2D = {"rlrelax/DiscreteLunarLanderContinuous-v3"}
HAS_BOX2D = importlib.util.find_spec("Box2D") is not None


def makeable(env_ids: Iterable[str]) -> list[Any]:
    """``env_ids`` as pytest parameters, those that need Box2D skipped where it is not installed."""
    skip_box2d = pytest.mark.skipif(not HAS_BOX2D, reason="needs Box2D (pip install 'gymnasium[box2d]')")
    return [pytest.param(env_id, marks=[skip_box2d] if env_id in NEEDS_BOX2D else []) for env_id in env_ids]


def own_env(env: gym.Env) -> gym.Env:
    """The env an id's entry point built, below the checker, order enforcing and time limit of ``make``.

    That is the unwrapped env, except for the discretized ids, whose entry point wraps Gymnasium's own
    continuous env in :class:`DiscretizeAction`: the wrapper is what rlrelax adds, so it is what is checked.
    """
    while isinstance(env, gym.Wrapper) and not isinstance(env, DiscretizeAction):
        env = env.env
    return env


def test_every_id_is_registered_on_import() -> None:
    assert sorted(ENV_IDS) == REGISTERED
    assert set(rlrelax.envs.__all__) >= {"TorchCartPoleVectorEnv", "CartPoleVecEnv", "cartpole_step"}


@pytest.mark.parametrize("env_id", makeable(REGISTERED))
def test_env_checkers_pass_without_warnings(env_id: str) -> None:
    # Made once first: importing Box2D's SWIG bindings warns (DeprecationWarning) about Box2D, not the env.
    gym.make(env_id).close()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = gym.make(env_id)
        own = own_env(env)
        check_env(own)
        sb3_check_env(env)
        sb3_check_env(own_env(gym.make(env_id)))
        env.close()
    messages = [str(w.message) for w in caught]
    if own is not env.unwrapped:
        # Gymnasium's checker warns about any wrapper, recommending env.unwrapped; here the wrapper is the env
        # under test (its unwrapped env is Gymnasium's own continuous one, with a Box action space).
        messages = [
            message for message in messages if "is different from the unwrapped version" not in message
        ]
    assert messages == []


@pytest.mark.parametrize("env_id", makeable(REGISTERED))
def test_seeded_resets_are_reproducible(env_id: str) -> None:
    def episode(seed: int) -> list[object]:
        env = gym.make(env_id)
        obs, _ = env.reset(seed=seed)
        trace: list[object] = [obs]
        env.action_space.seed(seed)
        for _ in range(30):
            obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            trace += [obs, reward]
            if terminated or truncated:
                trace.append(env.reset()[0])
        return trace

    first, second = episode(3), episode(3)
    assert len(first) == len(second)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def test_make_vec_gives_the_torch_vector_env() -> None:
    envs = gym.make_vec("rlrelax/CartPole-v1", num_envs=4096, vectorization_mode="vector_entry_point")
    assert isinstance(envs, TorchCartPoleVectorEnv)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert envs.max_episode_steps == 500
    obs, info = envs.reset(seed=0)
    assert isinstance(obs, torch.Tensor) and obs.shape == (4096, 4) and info == {}
    # The vector API's contract: batched spaces, observations inside them.
    assert obs.numpy() in envs.observation_space and envs.action_space.shape == (4096,)
    obs, reward, terminated, truncated, info = envs.step(torch.from_numpy(envs.action_space.sample()))
    assert obs.numpy() in envs.observation_space
    assert reward.shape == terminated.shape == truncated.shape == (4096,)
    assert terminated.dtype == truncated.dtype == torch.bool
    # Constructor arguments pass through make_vec; the sync vectorizer builds on the single-env entry point.
    same_step = gym.make_vec("rlrelax/CartPole-v1", num_envs=2, autoreset_mode=AutoresetMode.SAME_STEP)
    assert same_step.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    sync = gym.make_vec("rlrelax/CartPole-v1", num_envs=2, vectorization_mode="sync")
    sync.reset(seed=0)
    assert sync.step(np.array([0, 1]))[0].shape == (2, 4)


def test_toy_kwargs_pass_through_make() -> None:
    assert gym.make("rlrelax/BinaryTarget-v0", target=0.3).unwrapped.target == 0.3  # type: ignore[attr-defined]
    bandit = gym.make("rlrelax/CategoricalBandit-v0", n_arms=4).unwrapped
    assert bandit.means.shape == (4,)  # type: ignore[attr-defined]


@pytest.mark.parametrize("env_id", makeable(ENV_IDS))
def test_an_sb3_algorithm_accepts_every_id(env_id: str) -> None:
    # Given an id, SB3 asks gymnasium.make for render_mode="rgb_array" and retries without it on a TypeError.
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", env_id, n_steps=16, batch_size=16, seed=0)
    model.learn(16)
    assert model.num_timesteps == 16


def test_sb3_make_vec_env_accepts_the_id() -> None:
    # SB3's make_vec_env asks for render_mode="rgb_array" when given an id.
    from stable_baselines3.common.env_util import make_vec_env

    vec_env = make_vec_env("rlrelax/CartPole-v1", n_envs=2, seed=0)
    assert vec_env.reset().shape == (2, 4)
    assert vec_env.render_mode == "rgb_array"
