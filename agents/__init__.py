"""Discrete-action agents as Stable-Baselines3 algorithms: ``REINFORCE``, ``SoftQ`` and ``GumbelAC``.

This folder installs as ``rlrelax.agents``.
"""

from rlrelax._import_guard import require_package_name

require_package_name(__name__, "rlrelax.agents")

__all__: list[str] = []
