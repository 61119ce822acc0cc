"""Refuse to import a mapped folder (``agents/``, ``envs/``) under its folder name.

From the repository root, ``import agents`` would load a second copy of every class under another
module path; Stable-Baselines3 pickles classes by module path, so models saved from that copy would not
load anywhere else. The mapped ``__init__.py`` files call :func:`require_package_name` first.
"""


def require_package_name(imported_as: str, expected: str) -> None:
    """Raise ``ImportError`` unless the calling package was imported under its installed name.

    :param imported_as: the ``__name__`` the package was imported under
    :param expected: the name it is installed as, e.g. ``"rlrelax.agents"``
    """
    if imported_as != expected:
        raise ImportError(
            f"This folder is installed as {expected!r}; it was imported as {imported_as!r}. "
            f"Use `import {expected}` (after `pip install -e .`), not `import {imported_as}`."
        )
