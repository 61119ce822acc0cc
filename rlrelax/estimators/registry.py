"""Estimators by name."""

from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import Tensor

from rlrelax.estimators.exact import exact_estimator
from rlrelax.estimators.gumbel_rao import gumbel_rao_estimator
from rlrelax.estimators.pathwise import gumbel_softmax_estimator, straight_through_estimator
from rlrelax.estimators.rebar import rebar_estimator, relax_estimator
from rlrelax.estimators.score_function import score_function_estimator


class Estimator(Protocol):
    """A gradient estimator of ``∇ E_{a ~ softmax(logits)}[f(a)]`` for a categorical ``a``.

    Called as ``est(logits, f, n_samples=..., generator=..., **options)``; returns a scalar surrogate
    whose gradient w.r.t. ``logits[b]`` estimates ``∇ E[f(a)[b]]``: per-element surrogates averaged over
    the samples and summed over the batch.
    """

    def __call__(
        self,
        logits: Tensor,
        f: Callable[[Tensor], Tensor],
        *,
        n_samples: int,
        generator: torch.Generator | None = None,
        **options: Any,
    ) -> Tensor: ...


ESTIMATORS: dict[str, Estimator] = {
    "score_function": score_function_estimator,
    "gumbel_softmax": gumbel_softmax_estimator,
    "straight_through": straight_through_estimator,
    "gumbel_rao": gumbel_rao_estimator,
    "rebar": rebar_estimator,
    "relax": relax_estimator,
    "exact": exact_estimator,
}


def get_estimator(name: str) -> Estimator:
    """The estimator registered under ``name`` in :data:`ESTIMATORS`.

    :param name: one of the keys of :data:`ESTIMATORS`
    :return: the estimator
    """
    try:
        return ESTIMATORS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown estimator {name!r}; valid names: {sorted(ESTIMATORS)}") from None
