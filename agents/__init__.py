"""Discrete-action agents as Stable-Baselines3 algorithms.

- :class:`REINFORCE` -- Monte Carlo policy gradient (Williams 1992);
- :class:`SoftQ` -- soft Q-learning with the exact discrete soft value (Haarnoja et al. 2017);
- :class:`GumbelAC` -- off-policy actor-critic with a selectable actor-gradient estimator
  (Gumbel-softmax, straight-through, Gumbel-Rao, exact expectation, score function).

This folder installs as ``rlrelax.agents``.
"""

from rlrelax._import_guard import require_package_name

require_package_name(__name__, "rlrelax.agents")

from rlrelax.agents.gumbel_ac import GumbelAC  # noqa: E402
from rlrelax.agents.reinforce import REINFORCE  # noqa: E402
from rlrelax.agents.softq import SoftQ  # noqa: E402

__all__ = ["REINFORCE", "GumbelAC", "SoftQ"]
