"""The small syntax a spec uses for keyword arguments TOML cannot spell.

- ``"lin_<x>"`` (a string) is a linear schedule from ``x`` at the start of training to 0 at the end, as in
  RL Zoo's hyperparameter files: :class:`rlrelax.relax.LinearSchedule` ``(x, 0.0)``. Unlike RL Zoo's
  ``linear_schedule`` it is clamped at 0 when the last on-policy rollout overshoots ``total_timesteps``.
- ``{ object = "module:Name" }`` (a table with the single key ``object``) is the imported object itself,
  e.g. ``activation_fn = { object = "torch.nn:ReLU" }``.
- ``{ call = "module:Name", ... }`` (a table with the key ``call``) is ``Name(**rest)``, its other keys
  resolved the same way, e.g. ``temperature = { call = "rlrelax.relax:LinearSchedule", start = 1.0,
  end = 0.3 }``.

Every other value (numbers, strings, booleans, lists, tables) passes through unchanged, with lists and
tables resolved element by element (``policy_kwargs = { net_arch = [256, 256] }``).

Each rlrelax agent also ships a hyperparameter file, ``hyperparams.toml`` in its package, in the manner of RL
Zoo's per-algorithm files: one table per env id that needs values other than the agent's defaults, written
in this syntax, each with a comment giving the reason and the evidence (:func:`hyperparameter_file`). Its keys
are the agent's constructor keywords, and ``n_envs``, the number of training envs, as in RL Zoo's files.
``rlrelax compare`` and ``rlrelax train`` apply an env's table beneath the keyword arguments and the number of
envs they are given.
"""

from __future__ import annotations

import datetime
import math
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

from rlrelax._validation import check_int
from rlrelax.compare.registry import import_object

__all__ = [
    "HYPERPARAMETER_FILES",
    "EnvHyperparameters",
    "check_value",
    "hyperparameter_file",
    "resolve_kwargs",
    "resolve_value",
]

#: The per-env hyperparameter file of each algorithm that has one: the package holding it, and its name.
HYPERPARAMETER_FILES: dict[str, tuple[str, str]] = {
    "rlrelax.agents:REINFORCE": ("rlrelax.agents.reinforce", "hyperparams.toml"),
    "rlrelax.agents:SoftQ": ("rlrelax.agents.softq", "hyperparams.toml"),
    "rlrelax.agents:GumbelAC": ("rlrelax.agents.gumbel_ac", "hyperparams.toml"),
}

_LINEAR = re.compile(r"^lin_(.+)$")


def _linear_start(text: str) -> float | None:
    match = _LINEAR.match(text)
    if match is None:
        return None
    try:
        start = float(match.group(1))
    except ValueError:
        raise ValueError(f"{text!r} is not a linear schedule 'lin_<number>'") from None
    if not math.isfinite(start):
        raise ValueError(f"{text!r}: the schedule's start must be finite")
    return start


def check_value(value: Any, key: str) -> None:
    """Raise a ``ValueError`` naming ``key`` if ``value`` breaks the syntax, without importing anything heavy.

    :param value: a value as read from TOML
    :param key: its dotted key, for the message
    """
    if isinstance(value, datetime.date | datetime.time):
        raise ValueError(f"{key}: dates and times are not valid keyword arguments")
    if isinstance(value, str):
        try:
            _linear_start(value)
        except ValueError as error:
            raise ValueError(f"{key}: {error}") from None
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_value(item, f"{key}[{index}]")
    elif isinstance(value, dict):
        if "object" in value and len(value) != 1:
            raise ValueError(f"{key}: a table with 'object' takes no other key, got {sorted(value)}")
        for name in ("object", "call"):
            if name in value and not isinstance(value[name], str):
                raise ValueError(f"{key}.{name}: must be an import string 'module:Name', got {value[name]!r}")
        for name, item in value.items():
            check_value(item, f"{key}.{name}")


def resolve_value(value: Any) -> Any:
    """Return the Python value a spec value stands for (see the module docstring).

    :param value: a value as read from TOML
    :return: the resolved value
    """
    if isinstance(value, str):
        start = _linear_start(value)
        if start is not None:
            from rlrelax.relax import LinearSchedule

            return LinearSchedule(start, 0.0)
        return value
    if isinstance(value, list):
        return [resolve_value(item) for item in value]
    if isinstance(value, dict):
        if set(value) == {"object"}:
            return import_object(value["object"])
        if "call" in value:
            factory = import_object(value["call"])
            return factory(**{name: resolve_value(item) for name, item in value.items() if name != "call"})
        return {name: resolve_value(item) for name, item in value.items()}
    return value


def resolve_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Return an algorithm's keyword arguments with every value resolved.

    :param kwargs: the ``kwargs`` table of an agent in a spec
    :return: the keyword arguments to pass to the algorithm's constructor
    """
    return {name: resolve_value(value) for name, value in kwargs.items()}


@dataclass(frozen=True)
class EnvHyperparameters:
    """One env's entry of an algorithm's hyperparameter file.

    :param kwargs: the constructor's keyword arguments, as written (unresolved)
    :param n_envs: the number of training envs, or ``None`` when the entry does not say
    """

    kwargs: dict[str, Any]
    n_envs: int | None = None


def hyperparameter_file(algorithm_path: str) -> dict[str, EnvHyperparameters]:
    """Read an algorithm's per-env hyperparameter file; ``{}`` for an algorithm without one (SB3's).

    :param algorithm_path: the algorithm's import string, e.g. ``"rlrelax.agents:GumbelAC"``
    :return: each listed env id's entry
    :raises ValueError: naming the file, for a file that is not TOML, an entry that is not a table, or an
        ``n_envs`` that is not an int >= 1 (the entries' keyword arguments are checked as a spec's
        ``kwargs`` are, where a spec or ``rlrelax train`` uses them)
    """
    location = HYPERPARAMETER_FILES.get(algorithm_path)
    if location is None:
        return {}
    package, name = location
    source = f"{package.replace('.', '/')}/{name}"
    try:
        data = tomllib.loads(resources.files(package).joinpath(name).read_text())
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{source}: not valid TOML: {error}") from None
    entries = {}
    for env_id, table in data.items():
        if not isinstance(table, dict):
            raise ValueError(f"{source}: [{env_id!r}] must be a table of keyword arguments, got {table!r}")
        kwargs = dict(table)
        n_envs = kwargs.pop("n_envs", None)
        if n_envs is not None:
            try:
                n_envs = check_int(n_envs, f"[{env_id!r}].n_envs", 1)
            except (TypeError, ValueError) as error:
                raise ValueError(f"{source}: {error}") from None
        entries[env_id] = EnvHyperparameters(kwargs, n_envs)
    return entries
