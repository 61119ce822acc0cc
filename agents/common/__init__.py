"""Pieces every rlrelax agent shares: argument checks, the soft critic's target and alpha, gradient draws,
the policies of several choices and of slates (top-k)."""

from rlrelax.agents.common.checks import (
    FactorisedSpace,
    check_discrete_action_space,
    check_factorised_action_space,
    check_munchausen,
    check_soft_critic_arguments,
    choice_sizes,
)
from rlrelax.agents.common.factorised import MAX_ENUMERATED_ACTIONS, MAX_ENUMERATED_NEXT_ACTIONS, ChoiceLayout
from rlrelax.agents.common.gradients import ActorGradientDraws, flat_gradient, replay_observations
from rlrelax.agents.common.soft_critic import (
    AUTO_TARGET_ENTROPY_FRACTION,
    SOFT_CRITIC_LEARNING_RATE,
    action_value,
    boltzmann_entropy,
    check_target_entropy,
    current_and_next,
    ent_coef_loss,
    parse_ent_coef,
    resolve_target_entropy,
    soft_bellman_backup,
    soft_bellman_target,
    soft_value,
    split_choices,
    state_soft_value,
)
from rlrelax.agents.common.topk import (
    ENTROPY_SAMPLES,
    PlackettLuceDistribution,
    TopKLayout,
    check_topk_action_space,
)

__all__ = [
    "AUTO_TARGET_ENTROPY_FRACTION",
    "ENTROPY_SAMPLES",
    "MAX_ENUMERATED_ACTIONS",
    "MAX_ENUMERATED_NEXT_ACTIONS",
    "SOFT_CRITIC_LEARNING_RATE",
    "ActorGradientDraws",
    "ChoiceLayout",
    "FactorisedSpace",
    "PlackettLuceDistribution",
    "TopKLayout",
    "action_value",
    "boltzmann_entropy",
    "check_discrete_action_space",
    "check_factorised_action_space",
    "check_munchausen",
    "check_soft_critic_arguments",
    "check_target_entropy",
    "check_topk_action_space",
    "choice_sizes",
    "current_and_next",
    "ent_coef_loss",
    "flat_gradient",
    "parse_ent_coef",
    "replay_observations",
    "resolve_target_entropy",
    "soft_bellman_backup",
    "soft_bellman_target",
    "soft_value",
    "split_choices",
    "state_soft_value",
]
