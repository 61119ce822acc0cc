"""Soft Q-learning for discrete actions (``SoftQ``) and its policies."""

from rlrelax.agents.softq.policies import MlpPolicy, SoftQPolicy
from rlrelax.agents.softq.softq import SoftQ

__all__ = ["MlpPolicy", "SoftQ", "SoftQPolicy"]
