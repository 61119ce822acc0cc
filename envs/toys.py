"""One-step toy problems whose optimal action and exact policy gradient are known in closed form."""

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


def _check_action(action_space: spaces.Space[Any], action: Any) -> int:
    if not action_space.contains(action):
        raise ValueError(f"action must be an int in {action_space}, got {action!r} ({type(action).__name__})")
    return int(action)


class BinaryTargetEnv(gym.Env[np.ndarray, np.int64]):
    """
    ## Description

    The binary toy of Tucker et al. (2017), "REBAR: Low-variance, unbiased gradient estimates for discrete
    latent variable models", and Grathwohl et al. (2018), "Backpropagation through the Void: Optimizing
    control variates for black-box gradient estimation", as a one-step environment: choose a bit ``a`` and
    receive ``-(a - target)²``. With the default ``target = 0.499`` the two rewards differ by only
    ``1 - 2·target = 0.002``, so the true gradient of the expected reward is tiny next to the noise of a
    score-function estimate: a test of whether an estimator follows the signal or the noise.

    For a Bernoulli policy with ``P(a = 1) = p`` the expected reward is ``-(1 - p)·target² - p·(1 - target)²``
    and its derivative in ``p`` is ``target² - (1 - target)² = 2·target - 1``; :attr:`means` holds the two
    rewards and :attr:`optimal_action` the better bit.

    ## Action Space

    ``Discrete(2)``: the bit ``a``. Anything else raises ``ValueError``.

    ## Observation Space

    ``Box(0, 1, (1,), float32)``, always ``[0.0]``: there is nothing to observe.

    ## Rewards

    ``-(a - target)²``, deterministic.

    ## Starting State

    The single, constant observation.

    ## Episode End

    Termination after the one step.

    ## Arguments

    ``target`` (default 0.499): any finite float.

    ## Version History

    * v0: Initial version.
    """

    # Nothing to render, so no render_mode argument: asked for one, gymnasium.make raises the TypeError on
    # which SB3 (given an env id, it asks for "rgb_array") retries without it.
    metadata = {"render_modes": []}  # noqa: RUF012 (Gymnasium declares Env.metadata per instance)

    def __init__(self, target: float = 0.499) -> None:
        if isinstance(target, bool) or not isinstance(target, int | float) or not np.isfinite(target):
            raise ValueError(f"target must be a finite float, got {target!r}")
        self.target = float(target)
        self.action_space = spaces.Discrete(2)
        self.observation_space = spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)
        self._means = -((np.arange(2.0) - self.target) ** 2)
        self._means.flags.writeable = False

    @property
    def means(self) -> np.ndarray:
        """The reward of each action, ``[-target², -(1 - target)²]`` (read-only)."""
        return self._means

    @property
    def optimal_action(self) -> int:
        """The action with the higher reward (0 on a tie)."""
        return int(np.argmax(self._means))

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start the one-step episode.

        :param seed: seeds ``np_random`` (unused by this deterministic env, kept for the API)
        :param options: unused
        :return: the observation ``[0.0]`` and an empty info dict
        """
        super().reset(seed=seed)
        return np.zeros(1, dtype=np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Score the bit.

        :param action: 0 or 1
        :return: observation, reward ``-(action - target)²``, terminated (True), truncated (False), info
        """
        a = _check_action(self.action_space, action)
        return np.zeros(1, dtype=np.float32), float(self._means[a]), True, False, {}


class CategoricalBanditEnv(gym.Env[np.ndarray, np.int64]):
    """
    ## Description

    A K-armed Gaussian bandit as a one-step environment: the ten-armed testbed of Sutton and Barto (2018),
    "Reinforcement Learning: An Introduction" (2nd ed., section 2.3), with any number of arms. Arm ``k``
    pays ``means[k] + noise_std·ε`` with ``ε ~ N(0, 1)`` drawn from ``np_random``. The means are drawn once,
    at construction, from ``N(0, 1)`` with their own seed ``means_seed`` (or given as ``means``), so they
    are known: :attr:`means`, :attr:`optimal_arm` and :attr:`optimal_mean` give regret
    (``optimal_mean - means @ probs``) and the exact policy gradient (``∇ means @ softmax(logits)``).

    ## Action Space

    ``Discrete(n_arms)``. Anything else raises ``ValueError``.

    ## Observation Space

    ``Box(0, 1, (1,), float32)``, always ``[0.0]``: there is nothing to observe.

    ## Rewards

    ``means[a] + noise_std·ε``, ``ε ~ N(0, 1)`` from ``np_random`` (seeded through ``reset(seed=...)``).

    ## Starting State

    The single, constant observation.

    ## Episode End

    Termination after the one pull.

    ## Arguments

    ``n_arms`` (at least 2; default 10, or the length of ``means``); ``noise_std`` (default 1.0,
    non-negative); ``means_seed`` (default 0): the seed of the means; ``means``: explicit arm means instead.

    ## Version History

    * v0: Initial version.
    """

    # Nothing to render, so no render_mode argument: asked for one, gymnasium.make raises the TypeError on
    # which SB3 (given an env id, it asks for "rgb_array") retries without it.
    metadata = {"render_modes": []}  # noqa: RUF012 (Gymnasium declares Env.metadata per instance)

    def __init__(
        self,
        n_arms: int | None = None,
        noise_std: float = 1.0,
        means_seed: int = 0,
        means: Sequence[float] | np.ndarray | None = None,
    ) -> None:
        if n_arms is not None and (isinstance(n_arms, bool) or not isinstance(n_arms, int) or n_arms < 2):
            raise ValueError(f"n_arms must be an int >= 2, got {n_arms!r}")
        if isinstance(means_seed, bool) or not isinstance(means_seed, int) or means_seed < 0:
            raise ValueError(f"means_seed must be a non-negative int, got {means_seed!r}")
        if (
            isinstance(noise_std, bool)
            or not isinstance(noise_std, int | float)
            or not 0 <= noise_std < np.inf
        ):
            raise ValueError(f"noise_std must be a finite float >= 0, got {noise_std!r}")
        if means is None:
            arm_means = np.random.default_rng(means_seed).standard_normal(10 if n_arms is None else n_arms)
        else:
            arm_means = np.array(means, dtype=np.float64)
            if arm_means.ndim != 1 or arm_means.size < 2 or not np.all(np.isfinite(arm_means)):
                raise ValueError(f"means must be a 1-d sequence of at least 2 finite floats, got {means!r}")
            if n_arms is not None and n_arms != arm_means.size:
                raise ValueError(f"n_arms={n_arms} does not match the {arm_means.size} means given")
        arm_means.flags.writeable = False
        self._means = arm_means
        self.noise_std = float(noise_std)
        self.action_space = spaces.Discrete(arm_means.size)
        self.observation_space = spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)

    @property
    def means(self) -> np.ndarray:
        """The mean reward of each arm (read-only)."""
        return self._means

    @property
    def optimal_arm(self) -> int:
        """The arm with the highest mean (the lowest index on a tie)."""
        return int(np.argmax(self._means))

    @property
    def optimal_mean(self) -> float:
        """The highest mean reward."""
        return float(self._means.max())

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start the one-pull episode.

        :param seed: seeds ``np_random``, the source of the reward noise
        :param options: unused
        :return: the observation ``[0.0]`` and an empty info dict
        """
        super().reset(seed=seed)
        return np.zeros(1, dtype=np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Pull an arm.

        :param action: the arm, an int in ``[0, n_arms)``
        :return: observation, noisy reward, terminated (True), truncated (False), info
        """
        a = _check_action(self.action_space, action)
        reward = self._means[a] + self.noise_std * self.np_random.standard_normal()
        return np.zeros(1, dtype=np.float32), float(reward), True, False, {}
