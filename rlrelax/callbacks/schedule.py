"""Anneal a numeric hyperparameter of a model from a schedule of SB3's ``progress_remaining``."""

import math
import numbers
from collections.abc import Callable

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback

# Attributes that SB3 itself recomputes from a schedule of its own during training: setting them from a
# callback would be undone at once, so ScheduleCallback refuses them and names the argument to use instead.
SB3_OWN_SCHEDULES = {
    "learning_rate": (
        "SB3 resets the optimizer's learning rate from `lr_schedule` on every `train()` "
        "(stable-baselines3 issue #1336): pass the schedule as `learning_rate=` to the model instead"
    ),
    "lr_schedule": "pass the schedule as `learning_rate=` to the model instead",
    "exploration_rate": (
        "DQN recomputes `exploration_rate` from `exploration_schedule` on every step: use its "
        "`exploration_initial_eps`, `exploration_final_eps` and `exploration_fraction` arguments instead"
    ),
}


def _progress_remaining(model: BaseAlgorithm) -> float:
    """SB3's ``progress_remaining`` (1 at the start of ``learn`` -> 0 at the end), up to date at this step.

    The model's own ``_current_progress_remaining`` is only refreshed once per rollout by on-policy
    algorithms; the formula is SB3's (``BaseAlgorithm._update_current_progress_remaining``), so a model
    loaded and trained on with ``reset_num_timesteps=False`` continues the schedule where it stopped.
    """
    return 1.0 - float(model.num_timesteps) / float(model._total_timesteps)


class ScheduleCallback(BaseCallback):
    """Set ``model.<attribute>`` to ``schedule(progress_remaining)`` before every step of training.

    Works on any SB3 algorithm whose attribute is a plain number read during training, e.g. the
    ``temperature`` of :class:`~rlrelax.agents.GumbelAC`, ``ent_coef`` of :class:`~rlrelax.agents.SoftQ` or
    of SB3's PPO and A2C. The value is logged as ``schedule/<attribute>``.

    Refused, with the reason, when training starts: an attribute the model does not have, one that is
    not a number (an ``"auto"`` entropy coefficient, a schedule already given to the constructor), and one
    SB3 recomputes itself (``learning_rate``, DQN's ``exploration_rate``). If anything else overwrites the
    value between two steps, training stops with an error instead of silently following the other writer.

    :param attribute: name of the model attribute to anneal; a dotted path reaches into sub-objects,
        e.g. ``"policy.some_coefficient"``
    :param schedule: a callable of ``progress_remaining`` returning a number, such as the schedules of
        :mod:`rlrelax.relax` (``LinearSchedule(1.0, 0.1)``)
    :param verbose: SB3's verbosity level
    """

    def __init__(self, attribute: str, schedule: Callable[[float], float], verbose: int = 0) -> None:
        super().__init__(verbose)
        if not attribute or any(not part.isidentifier() for part in attribute.split(".")):
            raise ValueError(f"attribute must be an attribute name such as 'ent_coef', got {attribute!r}")
        if not callable(schedule):
            raise TypeError(f"schedule must be a callable of progress_remaining, got {schedule!r}")
        self.attribute = attribute
        self.schedule = schedule
        self._last_set: float | None = None

    def _owner_and_name(self) -> tuple[object, str]:
        *path, name = self.attribute.split(".")
        owner: object = self.model
        for part in path:
            owner = getattr(owner, part)
        return owner, name

    def _on_training_start(self) -> None:
        algorithm = type(self.model).__name__
        name = self.attribute.rsplit(".", 1)[-1]
        if name in SB3_OWN_SCHEDULES:
            raise ValueError(
                f"ScheduleCallback cannot anneal {algorithm}.{self.attribute}: {SB3_OWN_SCHEDULES[name]}"
            )
        try:
            owner, name = self._owner_and_name()
            current = getattr(owner, name)
        except AttributeError as error:
            raise AttributeError(f"{algorithm} has no attribute {self.attribute!r} to schedule") from error
        if isinstance(current, bool) or not isinstance(current, numbers.Real):
            raise TypeError(
                f"{algorithm}.{self.attribute} is {current!r}, not a number, so ScheduleCallback cannot set "
                "it; if the model takes a schedule for it, pass the schedule to the constructor instead"
            )
        self._last_set = None
        self._apply()

    def _apply(self) -> None:
        owner, name = self._owner_and_name()
        if self._last_set is not None and getattr(owner, name) != self._last_set:
            found = getattr(owner, name)
            raise RuntimeError(
                f"{type(self.model).__name__}.{self.attribute} was changed to {found!r} by something other "
                f"than ScheduleCallback (which set {self._last_set!r}): the model schedules it itself"
            )
        value = float(self.schedule(_progress_remaining(self.model)))
        if not math.isfinite(value):
            raise ValueError(f"the schedule for {self.attribute} returned {value!r}")
        setattr(owner, name, value)
        self._last_set = value
        self.logger.record(f"schedule/{self.attribute}", value)

    def _on_step(self) -> bool:
        self._apply()
        return True
