"""Schedules of Stable-Baselines3's ``progress_remaining`` (1 at the start of training, 0 at the end).

Each schedule is a picklable frozen dataclass (so it survives SB3's ``save``/``load``) with a readable repr.
``end_fraction`` is the fraction of training after which the value stays at ``end``, as in SB3's
``get_linear_fn``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from rlrelax._validation import check_finite_number, check_unit_interval

__all__ = ["ConstantSchedule", "CosineSchedule", "ExponentialSchedule", "LinearSchedule", "as_schedule"]


def _elapsed(progress_remaining: float, end_fraction: float) -> float:
    """Return the fraction of the schedule that has elapsed, in ``[0, 1]``.

    ``progress_remaining`` is clamped into ``[0, 1]``: SB3's on-policy algorithms collect whole rollouts,
    so it goes below 0 when the last rollout overshoots ``total_timesteps``.
    """
    p = float(progress_remaining)
    if math.isnan(p):
        raise ValueError("progress_remaining must be a number in [0, 1], got nan")
    return min((1.0 - min(max(p, 0.0), 1.0)) / end_fraction, 1.0)


@dataclass(frozen=True)
class ConstantSchedule:
    """A schedule that always returns ``value``.

    :param value: the finite constant
    """

    value: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", check_finite_number(self.value, "value"))

    def __call__(self, progress_remaining: float) -> float:
        """Return the value.

        :param progress_remaining: SB3's remaining progress (unused)
        :return: ``value``
        """
        return self.value


@dataclass(frozen=True)
class _Interpolation:
    start: float
    end: float
    end_fraction: float = 1.0

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            object.__setattr__(self, name, check_finite_number(getattr(self, name), name))
        fraction = check_unit_interval(self.end_fraction, "end_fraction", include_zero=False)
        object.__setattr__(self, "end_fraction", fraction)

    def _interpolate(self, elapsed: float) -> float:
        raise NotImplementedError

    def __call__(self, progress_remaining: float) -> float:
        """Return the scheduled value.

        :param progress_remaining: SB3's remaining progress, 1 at the start and 0 at the end of training
        :return: ``start`` at the start, ``end`` once ``end_fraction`` of training has elapsed
        """
        elapsed = _elapsed(progress_remaining, self.end_fraction)
        return self.end if elapsed >= 1.0 else self._interpolate(elapsed)


@dataclass(frozen=True)
class LinearSchedule(_Interpolation):
    """Linear interpolation from ``start`` to ``end`` (SB3's ``get_linear_fn``).

    :param start: the value at the start of training
    :param end: the value once ``end_fraction`` of training has elapsed
    :param end_fraction: fraction of training in ``(0, 1]`` over which the value moves
    """

    def _interpolate(self, elapsed: float) -> float:
        return self.start + elapsed * (self.end - self.start)


@dataclass(frozen=True)
class ExponentialSchedule(_Interpolation):
    """Geometric interpolation ``start * (end / start) ** elapsed``: a constant decay rate per step.

    :param start: the value at the start of training, > 0
    :param end: the value once ``end_fraction`` of training has elapsed, > 0
    :param end_fraction: fraction of training in ``(0, 1]`` over which the value moves
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("start", "end"):
            if getattr(self, name) <= 0.0:
                raise ValueError(f"ExponentialSchedule needs {name} > 0, got {getattr(self, name)!r}")

    def _interpolate(self, elapsed: float) -> float:
        return self.start * (self.end / self.start) ** elapsed


@dataclass(frozen=True)
class CosineSchedule(_Interpolation):
    """Cosine annealing from ``start`` to ``end`` (Loshchilov and Hutter, 2017, "SGDR", without restarts).

    :param start: the value at the start of training
    :param end: the value once ``end_fraction`` of training has elapsed
    :param end_fraction: fraction of training in ``(0, 1]`` over which the value moves
    """

    def _interpolate(self, elapsed: float) -> float:
        return self.end + (self.start - self.end) * 0.5 * (1.0 + math.cos(math.pi * elapsed))


def as_schedule(value: float | Callable[[float], float]) -> Callable[[float], float]:
    """Turn a constant into a :class:`ConstantSchedule`; return a callable unchanged.

    :param value: a finite number or a schedule ``progress_remaining -> value``
    :return: a schedule
    """
    if callable(value):
        return value
    return ConstantSchedule(check_finite_number(value, "value"))
