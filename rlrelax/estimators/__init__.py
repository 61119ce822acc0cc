"""Gradient estimators of ``∇ E_{a ~ softmax(logits)}[f(a)]`` for a categorical ``a``.

Every estimator in :data:`ESTIMATORS` is called as ``est(logits, f, n_samples=..., generator=...,
**options)`` with logits ``(*batch, K)`` and ``f`` mapping actions ``(n_samples, *batch, K)`` to values
``(n_samples, *batch)``; it returns a scalar surrogate whose gradient is the estimate (summed over the
batch, averaged over the samples). :func:`exact_gradient` gives the true gradient by enumeration. The
building blocks (baselines, the score-function surrogate, the Gumbel-Rao straight-through) are public
for agents that sample actions themselves. REBAR and RELAX take a learnable control variate
(:class:`RebarControlVariate`, :class:`RelaxControlVariate`), trained to minimise the estimator's variance
with :func:`estimate_with_variance_gradient`.
"""

from rlrelax.estimators.exact import exact_estimator, exact_gradient
from rlrelax.estimators.gumbel_rao import (
    conditional_gumbel,
    gumbel_rao_estimator,
    gumbel_rao_straight_through,
)
from rlrelax.estimators.pathwise import gumbel_softmax_estimator, straight_through_estimator
from rlrelax.estimators.rebar import (
    RebarControlVariate,
    RelaxControlVariate,
    estimate_with_variance_gradient,
    rebar_estimator,
    relax_estimator,
)
from rlrelax.estimators.registry import ESTIMATORS, Estimator, get_estimator
from rlrelax.estimators.score_function import (
    BASELINES,
    leave_one_out_baseline,
    mean_baseline,
    score_function_estimator,
    score_function_surrogate,
)

__all__ = [
    "BASELINES",
    "ESTIMATORS",
    "Estimator",
    "RebarControlVariate",
    "RelaxControlVariate",
    "conditional_gumbel",
    "estimate_with_variance_gradient",
    "exact_estimator",
    "exact_gradient",
    "get_estimator",
    "gumbel_rao_estimator",
    "gumbel_rao_straight_through",
    "gumbel_softmax_estimator",
    "leave_one_out_baseline",
    "mean_baseline",
    "rebar_estimator",
    "relax_estimator",
    "score_function_estimator",
    "score_function_surrogate",
    "straight_through_estimator",
]
