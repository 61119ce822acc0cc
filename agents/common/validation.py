"""Argument checks shared by the agents, raised before any training work starts."""

import math

from gymnasium import spaces


def require_discrete_action_space(action_space: spaces.Space, algorithm: str) -> spaces.Discrete:
    """Return ``action_space`` if it is ``Discrete``, else raise a ``ValueError`` naming it.

    SB3 asserts the supported action spaces itself, but with an ``AssertionError`` (which ``python -O``
    strips); the agents pass ``supported_action_spaces=None`` to SB3 and call this instead.

    :param action_space: the environment's action space
    :param algorithm: the algorithm's name, for the message
    :return: the same space, typed as ``Discrete``
    """
    if not isinstance(action_space, spaces.Discrete):
        raise ValueError(
            f"{algorithm} needs a Discrete action space, got {action_space!r}; "
            "for continuous actions use an algorithm such as SB3's SAC or PPO."
        )
    return action_space


def require_positive(name: str, value: float) -> float:
    """Return ``value`` if it is a finite number above zero, else raise a ``ValueError`` naming it.

    :param name: the argument's name, for the message
    :param value: the value to check
    :return: ``value`` as a float
    """
    number = float(value)
    if not number > 0.0 or number == float("inf"):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return number


def require_non_negative(name: str, value: float) -> float:
    """Return ``value`` if it is a finite number >= 0, else raise a ``ValueError`` naming it.

    :param name: the argument's name, for the message
    :param value: the value to check
    :return: ``value`` as a float
    """
    number = float(value)
    if not (math.isfinite(number) and number >= 0.0):
        raise ValueError(f"{name} must be a finite number >= 0 (0: off), got {value!r}")
    return number


def require_munchausen(coef: float, clip: float) -> None:
    """Raise a ``ValueError`` naming the bad argument unless ``coef >= 0`` and ``clip < 0`` are finite.

    :param coef: the Munchausen scaling (0 turns the term off)
    :param clip: the lower bound l0 of the scaled log-policy in the Munchausen term
    """
    require_non_negative("munchausen_coef", coef)
    if not (math.isfinite(clip) and clip < 0.0):
        raise ValueError(f"munchausen_clip must be a finite number < 0, got {clip!r}")
