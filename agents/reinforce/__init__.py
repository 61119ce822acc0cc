"""REINFORCE (Williams, 1992): Monte Carlo policy gradient over complete episodes."""

from rlrelax.agents.reinforce.policies import ActionControlVariate, MlpPolicy, TopKPolicy
from rlrelax.agents.reinforce.reinforce import REINFORCE

__all__ = ["REINFORCE", "ActionControlVariate", "MlpPolicy", "TopKPolicy"]
