"""Argument checks that only the agents need; the checks every layer shares are in ``rlrelax._validation``."""

from gymnasium import spaces

from rlrelax._validation import (
    check_finite_number,
    check_int,
    check_non_negative,
    check_positive,
    check_unit_interval,
)


def check_discrete_action_space(action_space: spaces.Space, algorithm: str) -> spaces.Discrete:
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


#: The action spaces of several discrete choices at once, each sampled from its own factor of the policy.
FactorisedSpace = spaces.Discrete | spaces.MultiDiscrete | spaces.MultiBinary


def check_factorised_action_space(action_space: spaces.Space, algorithm: str) -> FactorisedSpace:
    """Return ``action_space`` if it is ``Discrete``, a one-dimensional ``MultiDiscrete`` or ``MultiBinary``.

    These are the spaces whose policy factorises over one or more categorical (or Bernoulli) choices, laid
    side by side in one vector. A ``MultiDiscrete`` or ``MultiBinary`` with a multi-dimensional shape
    (an ``nvec`` of shape ``(2, 3)``, say) is refused: the agents' policies and buffers lay the choices
    out along one axis.

    :param action_space: the environment's action space
    :param algorithm: the algorithm's name, for the message
    :return: the same space
    """
    if isinstance(action_space, spaces.Discrete):
        return action_space
    if isinstance(action_space, spaces.MultiDiscrete | spaces.MultiBinary):
        if len(action_space.shape) != 1:
            raise ValueError(
                f"{algorithm} needs a one-dimensional {type(action_space).__name__}, got {action_space!r} "
                f"of shape {action_space.shape}; flatten its choices into one axis"
            )
        return action_space
    raise ValueError(
        f"{algorithm} needs a Discrete, MultiDiscrete or MultiBinary action space, got {action_space!r}; "
        "for continuous actions use an algorithm such as SB3's SAC or PPO."
    )


def choice_sizes(action_space: FactorisedSpace) -> tuple[int, ...] | None:
    """The number of options of each choice of a space of several, or ``None`` for one ``Discrete`` choice.

    :param action_space: a space accepted by :func:`check_factorised_action_space`
    :return: ``MultiDiscrete``'s ``nvec``, two options per bit of a ``MultiBinary``, or ``None``
    """
    if isinstance(action_space, spaces.MultiDiscrete):
        return tuple(int(n) for n in action_space.nvec)
    if isinstance(action_space, spaces.MultiBinary):
        return (2,) * int(action_space.shape[0])
    return None


def check_munchausen(coef: object, clip: object) -> None:
    """Check the Munchausen term's arguments: ``coef >= 0`` (0: off) and ``clip < 0``, both finite.

    :param coef: the Munchausen scaling
    :param clip: the lower bound l0 of the scaled log-policy in the Munchausen term
    """
    check_non_negative(coef, "munchausen_coef")
    if not check_finite_number(clip, "munchausen_clip") < 0.0:
        raise ValueError(f"munchausen_clip must be a finite number < 0, got {clip!r}")


def check_soft_critic_arguments(
    tau: object, gamma: object, target_update_interval: object, max_grad_norm: object
) -> None:
    """Check the critic-training arguments that SoftQ and GumbelAC share, each by its SB3 name.

    :param tau: the Polyak averaging coefficient of the target network, in (0, 1]
    :param gamma: the discount factor, in [0, 1]
    :param target_update_interval: the target update period, an int >= 1
    :param max_grad_norm: the gradient-clipping norm, a number > 0
    """
    check_unit_interval(tau, "tau", include_zero=False)
    check_unit_interval(gamma, "gamma", include_zero=True)
    check_int(target_update_interval, "target_update_interval", minimum=1)
    check_positive(max_grad_norm, "max_grad_norm")
