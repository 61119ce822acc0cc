"""Tests of the progress_remaining schedules in rlrelax.relax."""

from __future__ import annotations

import dataclasses
import math
import pickle

import pytest

from rlrelax.relax import ConstantSchedule, CosineSchedule, ExponentialSchedule, LinearSchedule, as_schedule


def test_constant() -> None:
    schedule = ConstantSchedule(3)
    assert schedule(1.0) == schedule(0.0) == 3.0 and isinstance(schedule.value, float)
    assert repr(schedule) == "ConstantSchedule(value=3.0)"


@pytest.mark.parametrize(
    ("schedule", "middle"),
    [
        (LinearSchedule(2.0, 1.0), 1.5),
        (ExponentialSchedule(4.0, 1.0), 2.0),
        (CosineSchedule(2.0, 1.0), 1.5),
    ],
)
def test_interpolations_start_middle_end(schedule: LinearSchedule, middle: float) -> None:
    assert schedule(1.0) == 2.0 if not isinstance(schedule, ExponentialSchedule) else schedule(1.0) == 4.0
    assert schedule(0.5) == pytest.approx(middle)
    assert schedule(0.0) == 1.0


def test_known_values() -> None:
    assert LinearSchedule(1.0, 0.0)(0.75) == pytest.approx(0.75)
    assert ExponentialSchedule(1.0, 0.01)(0.5) == pytest.approx(0.1)
    assert CosineSchedule(1.0, 0.0)(0.75) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))


def test_end_fraction_holds_end_afterwards() -> None:
    schedule = LinearSchedule(1.0, 0.1, end_fraction=0.5)
    assert schedule(0.75) == pytest.approx(0.55)
    assert schedule(0.5) == 0.1 and schedule(0.2) == 0.1
    assert CosineSchedule(1.0, 0.0, end_fraction=0.25)(0.75) == 0.0
    assert ExponentialSchedule(1.0, 0.01, end_fraction=0.5)(0.75) == pytest.approx(0.1)


def test_progress_outside_unit_interval_is_clamped() -> None:
    # SB3's on-policy loop can overshoot total_timesteps, making progress_remaining negative.
    schedule = LinearSchedule(1.0, 0.0)
    assert schedule(-0.3) == 0.0 and schedule(1.2) == 1.0
    with pytest.raises(ValueError, match="progress_remaining must be a number in"):
        schedule(math.nan)


@pytest.mark.parametrize(
    "schedule",
    [ConstantSchedule(0.5), LinearSchedule(1, 0, 0.5), ExponentialSchedule(1, 0.1), CosineSchedule(2, 1)],
)
def test_picklable_frozen_and_readable(schedule: object) -> None:
    clone = pickle.loads(pickle.dumps(schedule))
    assert clone == schedule and clone(0.3) == schedule(0.3)  # type: ignore[operator]
    with pytest.raises(dataclasses.FrozenInstanceError):
        schedule.end = 3.0  # type: ignore[attr-defined]
    assert repr(schedule).startswith(type(schedule).__name__ + "(")


def test_readable_repr() -> None:
    assert repr(LinearSchedule(1, 0.5, 0.2)) == "LinearSchedule(start=1.0, end=0.5, end_fraction=0.2)"


@pytest.mark.parametrize("cls", [LinearSchedule, ExponentialSchedule, CosineSchedule])
def test_validation(cls: type[LinearSchedule]) -> None:
    for end_fraction in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match=rf"end_fraction must be in \(0, 1\], got {end_fraction!r}"):
            cls(1.0, 0.5, end_fraction)
    with pytest.raises(ValueError, match="start must be finite, got nan"):
        cls(math.nan, 0.5)
    with pytest.raises(ValueError, match="end must be finite, got inf"):
        cls(1.0, math.inf)
    with pytest.raises(TypeError, match="start must be a real number, got '1'"):
        cls("1", 0.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="end must be a real number, got True"):
        cls(1.0, True)


@pytest.mark.parametrize(("start", "end"), [(0.0, 1.0), (1.0, -0.1)])
def test_exponential_needs_positive_values(start: float, end: float) -> None:
    bad = "start" if start <= 0 else "end"
    with pytest.raises(ValueError, match=rf"ExponentialSchedule needs {bad} > 0"):
        ExponentialSchedule(start, end)


def test_as_schedule() -> None:
    assert as_schedule(0.2) == ConstantSchedule(0.2)
    assert as_schedule(2) == ConstantSchedule(2.0)
    linear = LinearSchedule(1.0, 0.0)
    assert as_schedule(linear) is linear

    def custom(progress_remaining: float) -> float:
        return progress_remaining**2

    assert as_schedule(custom) is custom
    with pytest.raises(TypeError, match="value must be a real number"):
        as_schedule("0.1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="value must be finite, got nan"):
        as_schedule(math.nan)
    with pytest.raises(ValueError, match="value must be finite"):
        ConstantSchedule(math.inf)
