"""Pieces every rlrelax agent shares."""

from rlrelax.agents.common.gradients import ActorGradientDraws, flat_gradient, replay_observations
from rlrelax.agents.common.soft_value import soft_value
from rlrelax.agents.common.validation import (
    require_discrete_action_space,
    require_munchausen,
    require_non_negative,
    require_positive,
)

__all__ = [
    "ActorGradientDraws",
    "flat_gradient",
    "replay_observations",
    "require_discrete_action_space",
    "require_munchausen",
    "require_non_negative",
    "require_positive",
    "soft_value",
]
