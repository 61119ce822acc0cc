"""How a comparison makes its environments: from the id, with rlrelax's ids registered."""

from __future__ import annotations

from typing import Any

__all__ = ["make_env"]


def make_env(env_id: str) -> Any:
    """Make a Gymnasium env by id, with the ``rlrelax/`` ids registered and no ``render_mode``.

    Runs build their vectorised envs from this function rather than from the id: SB3's ``make_vec_env``
    given an id asks for ``render_mode="rgb_array"``, which envs without rendering may refuse.

    :param env_id: the env id
    :return: the env
    """
    import gymnasium as gym

    import rlrelax.envs  # noqa: F401  (registers the rlrelax/ ids)

    return gym.make(env_id)
