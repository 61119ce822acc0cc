"""The score-function (REINFORCE) estimator and its baselines."""

from collections.abc import Callable

import torch
from torch import Tensor

from rlrelax._validation import check_choice
from rlrelax.estimators._checks import (
    check_estimator_call,
    evaluate,
    sample_actions,
)
from rlrelax.relax import log_softmax

BASELINES = ("none", "mean", "leave_one_out")


def mean_baseline(values: Tensor, dim: int = 0) -> Tensor:
    """The mean of ``values`` along ``dim``, broadcast back to the shape of ``values``.

    Each entry's baseline includes the entry itself, so the score-function estimate it gives is
    biased: its expectation is ``(n - 1) / n`` times the true gradient for ``n`` entries along ``dim``.
    :func:`leave_one_out_baseline` removes that bias.

    :param values: sampled values, e.g. ``f(a)`` of shape ``(n_samples, *batch)``
    :param dim: the dimension holding the samples
    :return: the baseline, of the shape of ``values``
    """
    return values.mean(dim=dim, keepdim=True).expand_as(values)


def leave_one_out_baseline(values: Tensor, dim: int = 0) -> Tensor:
    """For each entry, the mean of the OTHER entries along ``dim``.

    Kool, van Hoof and Welling (2019), "Buy 4 REINFORCE Samples, Get a Baseline for Free!": a baseline
    built from the other samples is independent of the sample it is subtracted from, so the
    score-function estimate stays unbiased while the variance drops.

    :param values: sampled values, e.g. ``f(a)`` of shape ``(n_samples, *batch)``
    :param dim: the dimension holding the samples; it needs at least 2 entries
    :return: the baseline, of the shape of ``values``
    """
    n = values.shape[dim]
    if n < 2:
        raise ValueError(f"leave_one_out_baseline needs at least 2 entries along dim {dim}, got {n}")
    return (values.sum(dim=dim, keepdim=True) - values) / (n - 1)


def score_function_surrogate(log_probs: Tensor, advantages: Tensor) -> Tensor:
    """The score-function surrogate ``sum(log_probs * advantages.detach())``.

    Its gradient is ``sum(advantages * ∇ log_probs)``, the REINFORCE estimate (Williams, 1992, "Simple
    Statistical Gradient-Following Algorithms for Connectionist Reinforcement Learning").

    :param log_probs: log-probabilities of the sampled actions
    :param advantages: values minus baseline, of the same shape (no gradient flows through them)
    :return: a scalar
    """
    if log_probs.shape != advantages.shape:
        raise ValueError(
            f"log_probs and advantages must have the same shape, got {tuple(log_probs.shape)} "
            f"and {tuple(advantages.shape)}"
        )
    return (log_probs * advantages.detach()).sum()


def score_function_estimator(
    logits: Tensor,
    f: Callable[[Tensor], Tensor],
    *,
    n_samples: int,
    generator: torch.Generator | None = None,
    baseline: str | Tensor = "none",
    **options: object,
) -> Tensor:
    """Score-function (REINFORCE) estimate of ``∇ E_{a ~ softmax(logits)}[f(a)]``.

    Williams (1992), "Simple Statistical Gradient-Following Algorithms for Connectionist Reinforcement
    Learning"; the leave-one-out baseline is from Kool, van Hoof and Welling (2019), "Buy 4 REINFORCE
    Samples, Get a Baseline for Free!". Unbiased with ``baseline="none"``, ``"leave_one_out"`` or a tensor
    that does not depend on the samples (a control variate such as a critic's state value); the ``"mean"``
    baseline includes each sample in its own baseline, which scales the expected gradient by
    ``(n_samples - 1) / n_samples``.

    :param logits: ``(*batch, K)``
    :param f: maps one-hot actions ``(n_samples, *batch, K)`` to values ``(n_samples, *batch)``
    :param n_samples: samples per batch element (at least 2 for the ``"mean"`` and
        ``"leave_one_out"`` baselines)
    :param generator: source of randomness (``None``: the global RNG)
    :param baseline: ``"none"``, ``"mean"``, ``"leave_one_out"``, or a tensor of baselines that broadcasts to
        the batch shape ``(*batch)`` (no gradient flows through it)
    :return: a scalar surrogate: its value is the Monte Carlo estimate of ``E[f]`` summed over the batch,
        its gradient the score-function estimate (plus the gradient into parameters of ``f``)
    """
    check_estimator_call("score_function", logits, n_samples, generator, options, ("baseline",))
    if isinstance(baseline, Tensor):
        batch_shape = logits.shape[:-1]
        try:
            fits = torch.broadcast_shapes(baseline.shape, batch_shape) == batch_shape
        except RuntimeError:
            fits = False
        if not fits:
            raise ValueError(
                f"a baseline tensor must broadcast to the batch shape {tuple(logits.shape[:-1])}, "
                f"got shape {tuple(baseline.shape)}"
            )
    else:
        check_choice(baseline, "baseline", BASELINES)
        if baseline != "none" and n_samples < 2:
            # With one sample the baseline equals the value itself and the estimate is exactly zero.
            raise ValueError(f"baseline={baseline!r} needs n_samples >= 2, got n_samples={n_samples}")
    log_p = log_softmax(logits)
    actions = sample_actions(log_p, n_samples, generator)
    values = evaluate(f, torch.nn.functional.one_hot(actions, logits.shape[-1]).to(logits.dtype))
    # gather, not a product with the one-hot: 0 * log p is NaN where an action is masked with -inf.
    log_probs = log_p.expand(n_samples, *log_p.shape).gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    if isinstance(baseline, Tensor):
        advantages = values - baseline
    elif baseline == "mean":
        advantages = values - mean_baseline(values)
    elif baseline == "leave_one_out":
        advantages = values - leave_one_out_baseline(values)
    else:
        advantages = values
    # DiCE (Foerster et al., 2018): log_probs - log_probs.detach() is zero in value but keeps the score
    # gradient, so the surrogate's value is the sample mean of f, whose gradient reaches f's parameters.
    surrogate = score_function_surrogate(log_probs - log_probs.detach(), advantages) + values.sum()
    return surrogate / n_samples
