"""Policies for :class:`~rlrelax.agents.reinforce.REINFORCE`.

REINFORCE uses SB3's :class:`~stable_baselines3.common.policies.ActorCriticPolicy` unchanged: the actor
gives the categorical policy, and the value head (a separate network under SB3's default ``net_arch``)
is trained only when ``baseline="value"``, where it serves as the state-value baseline, never to
bootstrap a return.
"""

from stable_baselines3.common.policies import ActorCriticPolicy

MlpPolicy = ActorCriticPolicy

__all__ = ["MlpPolicy"]
