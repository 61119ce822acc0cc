"""Wrappers that give continuous-control environments the discrete action spaces rlrelax's agents act in."""

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlrelax._validation import check_int


class DiscretizeAction(gym.ActionWrapper[Any, Any, np.ndarray], gym.utils.RecordConstructorArgs):
    """Turn a bounded ``Box`` action space into ``bins`` evenly spaced choices per dimension.

    Tang and Agrawal (2020), "Discretizing Continuous Action Space for On-Policy Optimization": each
    dimension ``j`` of the box gets the ``bins`` values ``linspace(low[j], high[j], bins)``, both ends
    included, and the agent picks one value per dimension. The action space becomes ``Discrete(bins)`` for a
    box of one dimension and ``MultiDiscrete([bins] * d)`` for a box of ``d > 1`` dimensions (flattened in
    C order, whatever the box's shape; the chosen values are reshaped back into it). Choice ``i`` of
    dimension ``j`` applies ``low[j] + i * (high[j] - low[j]) / (bins - 1)``, in the box's dtype, so ``0``
    and ``bins - 1`` are exactly ``low`` and ``high``, and an odd ``bins`` has the midpoint as its middle
    choice.

    Unlike ``gymnasium.wrappers.DiscretizeAction``, which applies the centres of ``bins`` equal cells (never
    the ends of the range) and by default flattens all dimensions into one ``Discrete(bins ** d)``, the
    grid here includes the ends, so extreme actions such as Pendulum-v1's full torque stay available, and
    keeps one choice per dimension, whose count grows as ``bins * d`` rather than ``bins ** d``.

    >>> env = DiscretizeAction(gym.make("Pendulum-v1"), bins=21)  # Discrete(21): torques -2.0, -1.8, ..., 2.0

    :param env: the environment to wrap; its action space must be a ``Box`` with finite bounds
    :param bins: how many choices per dimension, an int >= 2
    """

    def __init__(self, env: gym.Env[Any, np.ndarray], bins: int) -> None:
        if not isinstance(env, gym.Env):
            raise TypeError(f"env must be a gymnasium.Env, got {type(env).__name__}")
        check_int(bins, "bins", 2)
        box = env.action_space
        if not isinstance(box, spaces.Box):
            raise ValueError(f"DiscretizeAction needs a Box action space, got {box}")
        if not box.is_bounded("both"):
            raise ValueError(
                f"DiscretizeAction needs a Box with finite bounds, got low={box.low.tolist()}, "
                f"high={box.high.tolist()}"
            )
        gym.utils.RecordConstructorArgs.__init__(self, bins=bins)
        gym.ActionWrapper.__init__(self, env)
        self.bins = int(bins)
        self._box = box
        low, high = box.low.astype(np.float64).ravel(), box.high.astype(np.float64).ravel()
        self._values = np.linspace(low, high, self.bins)
        self._values.flags.writeable = False
        self._dims = np.arange(low.size)
        self.action_space = (
            spaces.Discrete(self.bins) if low.size == 1 else spaces.MultiDiscrete([self.bins] * low.size)
        )

    @property
    def bin_values(self) -> np.ndarray:
        """The grid, ``(bins, d)``: row ``i`` holds choice ``i``'s value in every dimension (read-only)."""
        return self._values

    def action(self, action: Any) -> np.ndarray:
        """Map a discrete choice to the continuous action it stands for.

        :param action: an element of :attr:`action_space` (an int, or ``d`` ints)
        :return: the box action, in the box's shape and dtype
        """
        if not self.action_space.contains(action):
            raise ValueError(f"action must be in {self.action_space}, got {action!r}")
        choice = np.asarray(action, dtype=np.int64).reshape(-1)
        return self._values[choice, self._dims].astype(self._box.dtype).reshape(self._box.shape)


def make_discretized(env_id: str, bins: int, **kwargs: Any) -> DiscretizeAction:
    """The entry point of the ``rlrelax/Discrete...`` ids: ``env_id``'s env with :class:`DiscretizeAction`.

    The base env is built by ``gymnasium.make`` (so Box2D is imported only now, when an env is made, not when
    the ids are registered) and unwrapped: the registered id adds its own checker, order enforcing and time
    limit (the base env's) around the discretized env, so none of them is applied twice.

    :param env_id: the id of a continuous-control env with a bounded ``Box`` action space
    :param bins: how many choices per dimension, as :class:`DiscretizeAction`'s
    :param kwargs: keyword arguments of the base env, such as ``render_mode``
    :return: the discretized env
    """
    if not isinstance(env_id, str):
        raise TypeError(f"env_id must be a str, got {type(env_id).__name__}")
    return DiscretizeAction(gym.make(env_id, **kwargs).unwrapped, bins)
