"""Gymnasium environments registered under the ``rlrelax/`` namespace on import.

This folder installs as ``rlrelax.envs``. Importing it registers:

- ``rlrelax/CartPole-v1``: Gymnasium's CartPole-v1 in torch; ``gymnasium.make_vec(...,
  vectorization_mode="vector_entry_point")`` gives :class:`TorchCartPoleVectorEnv` (N envs in torch
  tensors), ``gymnasium.make`` gives :class:`TorchCartPoleEnv` (one env, numpy observations).
- ``rlrelax/BinaryTarget-v0``: :class:`BinaryTargetEnv`, the one-step ``-(a - 0.499)²`` toy.
- ``rlrelax/CategoricalBandit-v0``: :class:`CategoricalBanditEnv`, a K-armed Gaussian bandit with known means.
- ``rlrelax/Slate-v0``: :class:`SlateEnv`, a top-k recommendation MDP (a slate of k items out of N each step,
  ``MultiDiscrete([N] * k)``) whose user's interests drift with what they click, after RecSim and SlateQ.
- ``rlrelax/DiscretePendulum-v1``: Pendulum-v1 through ``DiscretizeAction(bins=21)``, ``Discrete(21)``.
- ``rlrelax/DiscreteLunarLanderContinuous-v3``: LunarLanderContinuous-v3 through
  ``DiscretizeAction(bins=11)``, ``MultiDiscrete([11, 11])`` (needs Box2D when made, not when registered).

:class:`CartPoleVecEnv` is the Stable-Baselines3 ``VecEnv`` adapter of the torch CartPole and
:func:`cartpole_step` its differentiable step for relaxed actions. :class:`DiscretizeAction` wraps a
continuous-control env (a ``Box`` action space) into ``Discrete`` or ``MultiDiscrete`` choices.
"""

from rlrelax._import_guard import require_package_name

require_package_name(__name__, "rlrelax.envs")

import gymnasium  # noqa: E402

from rlrelax.envs.cartpole import (  # noqa: E402
    TorchCartPoleEnv,
    TorchCartPoleVectorEnv,
    cartpole_step,
)
from rlrelax.envs.sb3 import CartPoleVecEnv  # noqa: E402
from rlrelax.envs.slate import SlateEnv  # noqa: E402
from rlrelax.envs.toys import BinaryTargetEnv, CategoricalBanditEnv  # noqa: E402
from rlrelax.envs.wrappers import DiscretizeAction  # noqa: E402

__all__ = [
    "ENV_IDS",
    "BinaryTargetEnv",
    "CartPoleVecEnv",
    "CategoricalBanditEnv",
    "DiscretizeAction",
    "SlateEnv",
    "TorchCartPoleEnv",
    "TorchCartPoleVectorEnv",
    "cartpole_step",
]

ENV_IDS: tuple[str, ...] = (
    "rlrelax/CartPole-v1",
    "rlrelax/BinaryTarget-v0",
    "rlrelax/CategoricalBandit-v0",
    "rlrelax/Slate-v0",
    "rlrelax/DiscretePendulum-v1",
    "rlrelax/DiscreteLunarLanderContinuous-v3",
)
"""Every id this package registers."""

# Registering twice (e.g. after importlib.reload) would make Gymnasium warn about overriding an id.
if "rlrelax/CartPole-v1" not in gymnasium.registry:
    gymnasium.register(
        id="rlrelax/CartPole-v1",
        entry_point="rlrelax.envs.cartpole:TorchCartPoleEnv",
        vector_entry_point="rlrelax.envs.cartpole:TorchCartPoleVectorEnv",
        max_episode_steps=500,
        reward_threshold=475.0,
    )
    gymnasium.register(
        id="rlrelax/BinaryTarget-v0", entry_point="rlrelax.envs.toys:BinaryTargetEnv", max_episode_steps=1
    )
    gymnasium.register(
        id="rlrelax/CategoricalBandit-v0",
        entry_point="rlrelax.envs.toys:CategoricalBanditEnv",
        max_episode_steps=1,
    )
    gymnasium.register(id="rlrelax/Slate-v0", entry_point="rlrelax.envs.slate:SlateEnv", max_episode_steps=50)
    # Continuous-control envs as discrete choices (the grids of Tang and Agrawal, 2020), so that specs can
    # name them; the episode limit and success threshold are the base env's, read from its spec (no Box2D
    # import).
    for discrete_id, base_id, bins in (
        ("rlrelax/DiscretePendulum-v1", "Pendulum-v1", 21),
        ("rlrelax/DiscreteLunarLanderContinuous-v3", "LunarLanderContinuous-v3", 11),
    ):
        base = gymnasium.spec(base_id)
        gymnasium.register(
            id=discrete_id,
            entry_point="rlrelax.envs.wrappers:make_discretized",
            kwargs={"env_id": base_id, "bins": bins},
            max_episode_steps=base.max_episode_steps,
            reward_threshold=base.reward_threshold,
        )
