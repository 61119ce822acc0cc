"""Stable-Baselines3 callbacks that bring rlrelax's ideas into any SB3 training loop.

- :class:`ScheduleCallback` anneals a numeric hyperparameter (a Gumbel temperature, an entropy
  coefficient) from a schedule of SB3's ``progress_remaining``;
- :class:`GradientStatsCallback` logs the variance, signal-to-noise ratio and bias of the actor's
  gradient estimates while training;
- :class:`FinalEvalCallback` is SB3's ``EvalCallback`` that also evaluates the final model.
"""

from rlrelax.callbacks.evaluation import FinalEvalCallback
from rlrelax.callbacks.gradient_stats import (
    GradientStatsCallback,
    gradient_statistics,
    measures_actor_gradient,
)
from rlrelax.callbacks.schedule import ScheduleCallback

__all__ = [
    "FinalEvalCallback",
    "GradientStatsCallback",
    "ScheduleCallback",
    "gradient_statistics",
    "measures_actor_gradient",
]
