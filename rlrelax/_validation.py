"""Argument checks, one rule per kind of value, shared by every layer of rlrelax.

The convention everywhere: a value of the wrong type is a ``TypeError``, a value of the right type but
out of range a ``ValueError``; both name the argument and the value. Checks run before any work starts.
This module holds the checks of plain Python values and imports nothing heavy (the comparison layer uses
it without loading torch); the checks of tensors, temperatures and generators are in
``rlrelax.relax._validation``, next to the relaxations that need them on every call.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from numbers import Integral, Real


def _real(value: object, name: str) -> float:
    if not isinstance(value, Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a real number, got {value!r} of type {type(value).__name__}")
    return float(value)


def _check_at_least(value: object, name: str, lower: float, *, inclusive: bool) -> float:
    result = _real(value, name)
    if not (math.isfinite(result) and (result >= lower if inclusive else result > lower)):
        relation = ">=" if inclusive else ">"
        raise ValueError(f"{name} must be a finite number {relation} {lower:g}, got {value!r}")
    return result


def check_finite_number(value: object, name: str) -> float:
    """Check that ``value`` is a finite real number (not a bool) and return it as a float.

    :param value: the number to check
    :param name: the argument name used in the error message
    :return: ``value`` as a float
    """
    result = _real(value, name)
    if not math.isfinite(result):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return result


def check_positive(value: object, name: str) -> float:
    """Check that ``value`` is a finite real number above zero and return it as a float.

    :param value: the number to check
    :param name: the argument name used in the error message
    :return: ``value`` as a float
    """
    return _check_at_least(value, name, 0.0, inclusive=False)


def check_non_negative(value: object, name: str) -> float:
    """Check that ``value`` is a finite real number >= 0 and return it as a float.

    :param value: the number to check
    :param name: the argument name used in the error message
    :return: ``value`` as a float
    """
    return _check_at_least(value, name, 0.0, inclusive=True)


def check_unit_interval(value: object, name: str, *, include_zero: bool) -> float:
    """Check that ``value`` lies in ``[0, 1]`` (or ``(0, 1]`` without zero) and return it as a float.

    :param value: the number to check
    :param name: the argument name used in the error message
    :param include_zero: whether 0 is allowed
    :return: ``value`` as a float
    """
    result = _real(value, name)
    if not (0.0 <= result <= 1.0 and (include_zero or result > 0.0)):
        interval = "[0, 1]" if include_zero else "(0, 1]"
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return result


def check_int(value: object, name: str, minimum: int) -> int:
    """Check that ``value`` is an integer (a Python or NumPy int, not a bool) of at least ``minimum``.

    :param value: the value to check
    :param name: the argument name used in the error message
    :param minimum: the smallest allowed value
    :return: ``value`` as an int
    """
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an int, got {value!r} of type {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_choice(value: object, name: str, choices: Iterable[str]) -> str:
    """Check that ``value`` is one of the strings ``choices`` and return it.

    :param value: the value to check
    :param name: the argument name used in the error message
    :param choices: the valid strings
    :return: ``value``
    """
    valid = list(choices)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {valid}, got {value!r} of type {type(value).__name__}")
    if value not in valid:
        raise ValueError(f"{name} must be one of {valid}, got {value!r}")
    return value


def check_number_or_schedule(
    value: object, name: str, check: Callable[[object, str], float], requirement: str
) -> None:
    """Check a hyperparameter that is a number or a schedule of SB3's ``progress_remaining`` (1 -> 0).

    A schedule is called at both ends of training, so a bad one fails before any work starts.

    :param value: the number or schedule to check
    :param name: the argument name used in the error message
    :param check: the check of one value, e.g. :func:`check_positive`
    :param requirement: what ``check`` requires, for the type error, e.g. ``"> 0"``
    """
    if callable(value):
        for progress in (1.0, 0.0):
            check(value(progress), f"{name} (schedule {value!r} at progress {progress})")
    elif isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a float {requirement} or a schedule, got {value!r}")
    else:
        check(value, name)


def value_at(
    value: float | Callable[[float], float], progress: float, name: str, check: Callable[[object, str], float]
) -> float:
    """The value of a number-or-schedule hyperparameter at ``progress`` remaining, checked.

    :param value: a number, or a schedule of the progress remaining
    :param progress: SB3's ``progress_remaining``
    :param name: the argument name used in the error message
    :param check: the check of the value, e.g. :func:`check_positive`
    :return: the value as a float
    """
    if callable(value):
        return check(value(progress), f"{name}({progress})")
    return float(value)
