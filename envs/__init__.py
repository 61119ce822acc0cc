"""Gymnasium environments registered under the ``rlrelax/`` namespace on import.

This folder installs as ``rlrelax.envs``.
"""

from rlrelax._import_guard import require_package_name

require_package_name(__name__, "rlrelax.envs")

__all__: list[str] = []
