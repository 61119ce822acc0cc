"""Pathwise estimators through a Gumbel-perturbed sample: Gumbel-softmax and straight-through Gumbel."""

from collections.abc import Callable

import torch
from torch import Tensor

from rlrelax.estimators._checks import check_estimator_call, evaluate
from rlrelax.relax import gumbel_softmax
from rlrelax.relax._validation import check_tau


def _gumbel_softmax_pathwise(
    logits: Tensor,
    f: Callable[[Tensor], Tensor],
    n_samples: int,
    generator: torch.Generator | None,
    tau: float,
    hard: bool,
) -> Tensor:
    samples = gumbel_softmax(logits.expand(n_samples, *logits.shape), tau, hard=hard, generator=generator)
    return evaluate(f, samples).sum() / n_samples


def gumbel_softmax_estimator(
    logits: Tensor,
    f: Callable[[Tensor], Tensor],
    *,
    n_samples: int,
    generator: torch.Generator | None = None,
    tau: float = 1.0,
    **options: object,
) -> Tensor:
    """Gumbel-softmax (Concrete) pathwise estimate of ``∇ E_{a ~ softmax(logits)}[f(a)]``.

    Jang, Gu and Poole (2017), "Categorical Reparameterization with Gumbel-Softmax"; Maddison, Mnih and
    Teh (2017), "The Concrete Distribution: A Continuous Relaxation of Discrete Random Variables".
    ``f`` is evaluated at the relaxed sample ``softmax((logits + G) / tau)``, so the estimate is biased
    (it is the gradient of ``E[f(relaxed a)]``); the bias vanishes as ``tau -> 0`` while the variance grows.

    :param logits: ``(*batch, K)``
    :param f: maps relaxed actions ``(n_samples, *batch, K)`` to values ``(n_samples, *batch)``
    :param n_samples: samples per batch element
    :param generator: source of randomness (``None``: the global RNG)
    :param tau: temperature of the relaxation, above 0
    :return: a scalar surrogate: the mean over samples of ``f`` at the relaxed samples, summed over the batch
    """
    check_estimator_call("gumbel_softmax", logits, n_samples, generator, options, ("tau",))
    check_tau(tau)
    return _gumbel_softmax_pathwise(logits, f, n_samples, generator, tau, hard=False)


def straight_through_estimator(
    logits: Tensor,
    f: Callable[[Tensor], Tensor],
    *,
    n_samples: int,
    generator: torch.Generator | None = None,
    tau: float = 1.0,
    **options: object,
) -> Tensor:
    """Straight-through Gumbel-softmax estimate of ``∇ E_{a ~ softmax(logits)}[f(a)]``.

    Bengio, Léonard and Courville (2013), "Estimating or Propagating Gradients Through Stochastic Neurons
    for Conditional Computation"; Jang, Gu and Poole (2017), "Categorical Reparameterization with
    Gumbel-Softmax". ``f`` sees the exact one-hot sample ``argmax(logits + G)``; the gradient is taken
    through ``softmax((logits + G) / tau)`` instead, which biases it.

    :param logits: ``(*batch, K)``
    :param f: maps one-hot actions ``(n_samples, *batch, K)`` to values ``(n_samples, *batch)``
    :param n_samples: samples per batch element
    :param generator: source of randomness (``None``: the global RNG)
    :param tau: temperature of the backward relaxation, above 0
    :return: a scalar surrogate: the sample mean of ``f`` summed over the batch
    """
    check_estimator_call("straight_through", logits, n_samples, generator, options, ("tau",))
    check_tau(tau)
    return _gumbel_softmax_pathwise(logits, f, n_samples, generator, tau, hard=True)
