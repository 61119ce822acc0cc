"""rlrelax: learning through discrete choices in reinforcement learning.

The layers, each importable on its own:

- :mod:`rlrelax.relax` -- relaxations of discrete choices (tempered softmax, Gumbel-softmax, relaxed
  Bernoulli, straight-through estimators, SoftSort, relaxed top-k, temperature schedules);
- :mod:`rlrelax.estimators` -- gradient estimators of ``∇ E[f(a)]`` for a categorical ``a``;
- :mod:`rlrelax.agents` -- ``REINFORCE``, ``SoftQ`` and ``GumbelAC`` as Stable-Baselines3 algorithms;
- :mod:`rlrelax.envs` -- Gymnasium environments registered under the ``rlrelax/`` namespace.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rlrelax")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
