"""GumbelAC: discrete soft actor-critic whose actor gradient comes from a selectable estimator."""

from rlrelax.agents.gumbel_ac.gumbel_ac import ESTIMATOR_NAMES, GumbelAC
from rlrelax.agents.gumbel_ac.policies import GumbelACPolicy, MlpPolicy, TopKPolicy

__all__ = ["ESTIMATOR_NAMES", "GumbelAC", "GumbelACPolicy", "MlpPolicy", "TopKPolicy"]
