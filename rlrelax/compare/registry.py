"""The algorithms a spec can name, resolved lazily by import string, and the keywords each one takes."""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any

__all__ = ["ALGORITHMS", "RESERVED_KWARGS", "accepted_kwargs", "import_object", "resolve_algorithm"]

#: Short names a spec may use for ``algorithm``; any other value must be a ``"module:Class"`` import string.
#: Resolved only when a spec names them, so a missing optional package breaks only the specs that use it.
ALGORITHMS: dict[str, str] = {
    "REINFORCE": "rlrelax.agents:REINFORCE",
    "SoftQ": "rlrelax.agents:SoftQ",
    "GumbelAC": "rlrelax.agents:GumbelAC",
    "PPO": "stable_baselines3:PPO",
    "DQN": "stable_baselines3:DQN",
    "A2C": "stable_baselines3:A2C",
}

#: Constructor arguments the runner sets itself; a spec that passes them in ``kwargs`` is refused.
RESERVED_KWARGS = frozenset({"policy", "env", "seed", "_init_setup_model", "tensorboard_log"})

_IMPORT_STRING = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def import_object(path: str) -> Any:
    """Return the object named by an import string ``"package.module:Name"`` (``Name`` may be dotted).

    :param path: the import string
    :return: the imported object
    :raises ValueError: if ``path`` is not of that form or cannot be imported
    """
    if not _IMPORT_STRING.match(path):
        raise ValueError(f"{path!r} is not an import string of the form 'package.module:Name'")
    module_name, _, attribute = path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"cannot import module {module_name!r} of {path!r}: {error}") from error
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValueError(
                f"module {module_name!r} has no attribute {attribute!r} (from {path!r})"
            ) from None
    return target


def resolve_algorithm(name: str) -> tuple[str, type]:
    """Return the import string and the class of an algorithm given by short name or import string.

    :param name: a key of :data:`ALGORITHMS` or a ``"module:Class"`` import string
    :return: ``(import_string, cls)``
    :raises ValueError: for an unknown name, an import failure, or something that is not a class
    """
    if name in ALGORITHMS:
        path = ALGORITHMS[name]
    elif ":" in name:
        path = name
    else:
        known = ", ".join(sorted(ALGORITHMS))
        raise ValueError(f"unknown algorithm {name!r}: use one of {known} or an import string 'module:Class'")
    cls = import_object(path)
    if not isinstance(cls, type):
        raise ValueError(f"algorithm {name!r} ({path}) is not a class but {type(cls).__name__}")
    return path, cls


def accepted_kwargs(cls: type) -> frozenset[str] | None:
    """Return the keyword arguments ``cls(...)`` accepts, following ``**kwargs`` up the MRO.

    A constructor that forwards ``**kwargs`` accepts whatever the next ``__init__`` in the MRO accepts,
    the way SB3-style subclasses pass their arguments to SB3's base classes.

    :param cls: the algorithm class
    :return: the accepted names, or ``None`` when every ``__init__`` up to ``object`` takes ``**kwargs``
    """
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        if klass is object:
            return None
        parameters = inspect.signature(init).parameters.values()
        names.update(
            p.name
            for p in parameters
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"
        )
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            return frozenset(names)
    return None
