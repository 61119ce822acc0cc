"""REINFORCE (Williams, 1992): Monte Carlo policy gradient over complete episodes."""

from rlrelax.agents.reinforce.policies import MlpPolicy
from rlrelax.agents.reinforce.reinforce import REINFORCE

__all__ = ["REINFORCE", "MlpPolicy"]
