"""DiscretizeAction: evenly spaced choices over a Box, both ends included (Tang and Agrawal, 2020)."""

import importlib.util
import re
import subprocess
import sys
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from rlrelax.envs import DiscretizeAction
from rlrelax.envs.wrappers import make_discretized

NO_BOX2D = importlib.util.find_spec("Box2D") is None
BOX2D_REASON = "LunarLanderContinuous-v3 needs Box2D (pip install 'gymnasium[box2d]'), not installed here"


class RecordingEnv(gym.Env[np.ndarray, np.ndarray]):
    """Accepts any action of its Box and remembers the last one."""

    def __init__(self, action_space: spaces.Box) -> None:
        self.action_space = action_space
        self.observation_space = spaces.Box(0.0, 1.0, (1,), np.float32)
        self.last_action: np.ndarray | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        assert action in self.action_space
        self.last_action = action
        return np.zeros(1, np.float32), 0.0, False, False, {}


def applied(box: spaces.Box, bins: int, choice: Any) -> np.ndarray:
    env = DiscretizeAction(RecordingEnv(box), bins)
    env.reset(seed=0)
    env.step(choice)
    inner: RecordingEnv = env.unwrapped  # type: ignore[assignment]
    assert inner.last_action is not None
    return inner.last_action


def test_pendulum_gets_21_torques_from_end_to_end() -> None:
    env = DiscretizeAction(gym.make("Pendulum-v1"), bins=21)
    assert env.action_space == spaces.Discrete(21)
    np.testing.assert_allclose(env.bin_values[:, 0], np.linspace(-2.0, 2.0, 21))
    for choice, torque in [(0, -2.0), (10, 0.0), (20, 2.0), (15, 1.0)]:
        action = env.action(choice)
        assert action.dtype == np.float32 and action.shape == (1,)
        assert action[0] == pytest.approx(torque, abs=1e-7)
    # Stepping the wrapper is stepping Pendulum with the mapped torque.
    raw = gym.make("Pendulum-v1")
    raw.reset(seed=5)
    env.reset(seed=5)
    for choice in (0, 20, 7):
        np.testing.assert_array_equal(env.step(choice)[0], raw.step(env.action(choice))[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3_check_env(env)


def test_several_dimensions_get_one_choice_each_over_their_own_range() -> None:
    box = spaces.Box(np.array([-1.0, 0.0], np.float32), np.array([1.0, 10.0], np.float32))
    assert DiscretizeAction(RecordingEnv(box), 11).action_space == spaces.MultiDiscrete([11, 11])
    np.testing.assert_array_equal(applied(box, 11, np.array([0, 10])), [-1.0, 10.0])
    np.testing.assert_array_equal(applied(box, 11, np.array([10, 0])), [1.0, 0.0])
    np.testing.assert_allclose(applied(box, 11, np.array([5, 5])), [0.0, 5.0], atol=1e-7)
    np.testing.assert_allclose(applied(box, 11, [3, 7]), [-0.4, 7.0], rtol=1e-6)


def test_a_matrix_box_is_flattened_and_reshaped_back() -> None:
    box = spaces.Box(-np.ones((2, 2), np.float64), np.ones((2, 2), np.float64), dtype=np.float64)
    assert DiscretizeAction(RecordingEnv(box), 3).action_space == spaces.MultiDiscrete([3] * 4)
    action = applied(box, 3, np.array([0, 1, 2, 1]))
    assert action.dtype == np.float64
    np.testing.assert_array_equal(action, [[-1.0, 0.0], [1.0, 0.0]])


@pytest.mark.skipif(NO_BOX2D, reason=BOX2D_REASON)
def test_lunar_lander_continuous_gets_11_choices_per_engine() -> None:
    env = DiscretizeAction(gym.make("LunarLanderContinuous-v3"), bins=11)
    assert env.action_space == spaces.MultiDiscrete([11, 11])
    np.testing.assert_array_equal(env.action(np.array([0, 10])), [-1.0, 1.0])
    env.reset(seed=0)
    env.step(env.action_space.sample())


def test_the_wrapper_is_recorded_in_the_spec() -> None:
    env = DiscretizeAction(gym.make("Pendulum-v1"), bins=21)
    assert env.spec is not None
    (wrapper,) = env.spec.additional_wrappers
    assert wrapper.name == "DiscretizeAction" and wrapper.kwargs == {"bins": 21}


def test_invalid_choices_raise() -> None:
    env = DiscretizeAction(gym.make("Pendulum-v1"), bins=21)
    env.reset(seed=0)
    for bad in (21, -1, 2.5, [1, 2], None):
        with pytest.raises(ValueError, match=r"action must be in Discrete\(21\)"):
            env.step(bad)


def test_bad_arguments_raise_naming_the_value() -> None:
    pendulum = gym.make("Pendulum-v1")
    with pytest.raises(ValueError, match=r"needs a Box action space, got Discrete\(2\)"):
        DiscretizeAction(gym.make("CartPole-v1"), bins=5)
    unbounded = RecordingEnv(spaces.Box(np.array([-1.0, -np.inf]), np.array([1.0, 1.0]), dtype=np.float64))
    with pytest.raises(ValueError, match=r"finite bounds, got low=\[-1\.0, -inf\], high=\[1\.0, 1\.0\]"):
        DiscretizeAction(unbounded, bins=5)
    with pytest.raises(ValueError, match="bins must be an int >= 2, got 1"):
        DiscretizeAction(pendulum, bins=1)
    for bad in (2.5, True, "21"):
        with pytest.raises(TypeError, match=re.escape(f"bins must be an int, got {bad!r}")):
            DiscretizeAction(pendulum, bins=bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"env must be a gymnasium\.Env, got str"):
        DiscretizeAction("Pendulum-v1", bins=21)  # type: ignore[arg-type]


# --- the registered ids: rlrelax/DiscretePendulum-v1, rlrelax/DiscreteLunarLanderContinuous-v3 ----------

DISCRETIZED = {
    # id: (base id, bins, action space)
    "rlrelax/DiscretePendulum-v1": ("Pendulum-v1", 21, spaces.Discrete(21)),
    "rlrelax/DiscreteLunarLanderContinuous-v3": (
        "LunarLanderContinuous-v3",
        11,
        spaces.MultiDiscrete([11, 11]),
    ),
}


@pytest.mark.parametrize(
    "env_id",
    [
        pytest.param(
            env_id, marks=[pytest.mark.skipif(NO_BOX2D, reason=BOX2D_REASON)] if "Lunar" in env_id else []
        )
        for env_id in DISCRETIZED
    ],
)
def test_registered_ids_are_the_wrapped_base_env_with_its_limits(env_id: str) -> None:
    base_id, bins, space = DISCRETIZED[env_id]
    base = gym.spec(base_id)
    env = gym.make(env_id)
    assert env.action_space == space
    assert env.spec is not None and env.spec.id == env_id
    assert (env.spec.max_episode_steps, env.spec.reward_threshold) == (
        base.max_episode_steps,
        base.reward_threshold,
    )
    # One time limit, the base env's: the registration adds it, the entry point strips the base env's own.
    chain = [env]
    while isinstance(chain[-1], gym.Wrapper):
        chain.append(chain[-1].env)
    assert sum(isinstance(layer, gym.wrappers.TimeLimit) for layer in chain) == 1
    # Stepping the id is stepping the base env through DiscretizeAction, to the last bit.
    reference = DiscretizeAction(gym.make(base_id), bins)
    env.action_space.seed(0)
    choices = [env.action_space.sample() for _ in range(20)]
    for made in (env, reference):
        made.reset(seed=3)
    for choice in choices:
        np.testing.assert_array_equal(env.step(choice)[0], reference.step(choice)[0])
    # The base env's keywords pass through make.
    assert gym.make(env_id, render_mode="rgb_array").render_mode == "rgb_array"


def test_registering_the_ids_does_not_import_box2d() -> None:
    code = "import sys, rlrelax.envs; assert 'Box2D' not in sys.modules, 'Box2D imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_make_discretized_checks_its_arguments() -> None:
    with pytest.raises(TypeError, match="env_id must be a str, got int"):
        make_discretized(3, bins=21)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"needs a Box action space, got Discrete\(2\)"):
        make_discretized("CartPole-v1", bins=5)
