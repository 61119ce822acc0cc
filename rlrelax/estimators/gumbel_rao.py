"""The Gumbel-Rao estimator: straight-through Gumbel-softmax, Rao-Blackwellized over the noise."""

import math
from collections.abc import Callable

import torch
from torch import Tensor

from rlrelax._validation import check_int
from rlrelax.estimators._checks import (
    check_estimator_call,
    check_logits,
    evaluate,
    sample_actions,
)
from rlrelax.relax import gumbel_noise, log_softmax, softmax, straight_through
from rlrelax.relax._validation import check_generator, check_tau, compute_dtype, values_readable


def _check_one_hot(actions_one_hot: Tensor, logits: Tensor) -> None:
    if actions_one_hot.shape != logits.shape:
        raise ValueError(
            f"actions_one_hot must have the shape of logits {tuple(logits.shape)}, "
            f"got {tuple(actions_one_hot.shape)}"
        )
    if not values_readable():
        return
    is_binary = bool(((actions_one_hot == 0) | (actions_one_hot == 1)).all())
    if not is_binary or not bool((actions_one_hot.sum(dim=-1) == 1).all()):
        raise ValueError("actions_one_hot must hold exactly one 1 per row and 0 elsewhere")
    if bool((actions_one_hot.bool() & torch.isneginf(logits)).any()):
        raise ValueError("actions_one_hot selects an action whose logit is -inf (probability 0)")


@torch.no_grad()
def conditional_gumbel(
    logits: Tensor,
    actions_one_hot: Tensor,
    *,
    n_samples: int = 1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Gumbel(0, 1) noise ``G`` drawn conditionally on ``argmax(logits + G)`` being the given action.

    The top-down construction (Maddison, Tarlow and Minka, 2014, "A* Sampling"; Paulus, Maddison and
    Krause, 2021, appendix): the maximum of ``logits + G`` is ``Gumbel(logsumexp(logits))`` independently
    of where it lies, so the chosen entry is ``M = logsumexp(logits) + G_k``; every other entry is a
    ``Gumbel(logits_i)`` truncated below ``M``, drawn by inverting its CDF:
    ``z_i = -log(exp(-M) + exp(-logits_i) E_i)`` with ``E_i ~ Exp(1)``. Drawing ``k ~ softmax(logits)``
    and then ``G`` from here gives iid Gumbel(0, 1) noise. Entries with logit ``-inf`` get unconditional
    noise (they never win the argmax).

    The work is done in float32 for float16/bfloat16 logits (as in :mod:`rlrelax.relax`). The argmax of
    ``logits + G`` is the given action up to rounding: an entry can tie with the maximum when it lies
    within a few units in the last place of it, which in float32 takes ``logits_i + G_i`` to exceed
    the maximum by about 15 before truncation (probability of order ``1e-7`` per entry), but is common in
    float16.

    :param logits: ``(*batch, K)``
    :param actions_one_hot: the conditioning actions, one-hot ``(*batch, K)``
    :param n_samples: draws per batch element
    :param generator: source of randomness (``None``: the global RNG)
    :return: detached noise ``(n_samples, *batch, K)`` in the dtype of ``logits``
    """
    check_int(n_samples, "n_samples", minimum=1)
    check_generator(generator)
    check_logits(logits)
    work_dtype = compute_dtype(logits.dtype)
    log_p = log_softmax(logits.to(work_dtype))
    _check_one_hot(actions_one_hot, logits)
    noise = gumbel_noise(
        (n_samples, *logits.shape), generator=generator, device=logits.device, dtype=work_dtype
    )
    perturbed = conditionally_perturbed(log_p, actions_one_hot.bool(), noise)
    return torch.where(torch.isneginf(log_p), noise, perturbed - log_p).to(logits.dtype)


def conditionally_perturbed(log_probs: Tensor, chosen: Tensor, noise: Tensor) -> Tensor:
    """``log_probs + G`` for Gumbel noise ``G`` conditioned on its argmax being ``chosen``, differentiably.

    The construction of :func:`conditional_gumbel`, written as a function of ``log_probs`` for fixed
    ``noise``: the reparameterization of ``z~ ~ p(z | argmax z = b)`` that REBAR (Tucker et al., 2017,
    appendix) differentiates through, where Gumbel-Rao does not.

    :param log_probs: normalized log-probabilities ``(..., K)`` (``-inf`` for impossible entries)
    :param chosen: boolean one-hot mask of the conditioning entry, broadcastable to ``noise``
    :param noise: iid Gumbel(0, 1) noise ``(..., K)``, to which ``log_probs`` broadcasts
    :return: the perturbed log-probabilities, ``-inf`` where ``log_probs`` is ``-inf``
    """
    impossible = torch.isneginf(log_probs)
    # A NaN in the branch where() drops still reaches the backward pass as 0 * NaN, so -inf is kept out.
    finite_log_probs = torch.where(impossible, 0.0, log_probs)
    chosen = chosen.expand_as(noise)
    # With normalized log-probabilities logsumexp is 0, so the maximum is the chosen entry's own noise;
    # the other entries reuse their noise as E_i = exp(-G_i) ~ Exp(1).
    top = torch.where(chosen, noise, 0.0).sum(dim=-1, keepdim=True)
    perturbed = torch.where(chosen, top, -torch.logaddexp(-top, -(finite_log_probs + noise)))
    return perturbed.masked_fill(impossible, -math.inf)


def gumbel_rao_straight_through(
    logits: Tensor,
    actions_one_hot: Tensor,
    tau: float,
    n_rao_samples: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Straight-through with the Gumbel-Rao backward pass.

    Paulus, Maddison and Krause (2021), "Rao-Blackwellizing the Straight-Through Gumbel-Softmax Gradient
    Estimator": the forward value is the given one-hot action; the gradient is that of the average of
    ``softmax((logits + G) / tau)`` over ``n_rao_samples`` Gumbels ``G`` drawn conditionally on
    ``argmax(logits + G)`` being that action (:func:`conditional_gumbel`). No gradient flows through
    ``G`` (the conditional law of ``G`` depends on the logits; differentiating through it would change
    the expectation): the estimate is then the conditional expectation of the straight-through
    Gumbel-softmax estimate given the action, so it has the same expectation and no more variance.

    :param logits: ``(*batch, K)``
    :param actions_one_hot: one-hot actions ``(*batch, K)``, e.g. sampled from ``softmax(logits)``
    :param tau: temperature of the backward relaxation, above 0
    :param n_rao_samples: conditional Gumbel draws averaged in the backward pass
    :param generator: source of randomness (``None``: the global RNG)
    :return: ``(*batch, K)``, equal to ``actions_one_hot``, with the Gumbel-Rao gradient
    """
    check_tau(tau)
    check_int(n_rao_samples, "n_rao_samples", minimum=1)
    noise = conditional_gumbel(logits, actions_one_hot, n_samples=n_rao_samples, generator=generator)
    soft = softmax(logits + noise, tau).mean(dim=0)
    return straight_through(actions_one_hot, soft)


def gumbel_rao_estimator(
    logits: Tensor,
    f: Callable[[Tensor], Tensor],
    *,
    n_samples: int,
    generator: torch.Generator | None = None,
    tau: float = 1.0,
    n_rao_samples: int = 10,
    **options: object,
) -> Tensor:
    """Gumbel-Rao estimate of ``∇ E_{a ~ softmax(logits)}[f(a)]``.

    Paulus, Maddison and Krause (2021), "Rao-Blackwellizing the Straight-Through Gumbel-Softmax Gradient
    Estimator": straight-through Gumbel-softmax whose backward relaxation is averaged over Gumbel noise
    drawn conditionally on the sampled action (:func:`gumbel_rao_straight_through`). Same expectation
    (and bias) as ``"straight_through"`` at the same ``tau``, variance no higher.

    :param logits: ``(*batch, K)``
    :param f: maps one-hot actions ``(n_samples, *batch, K)`` to values ``(n_samples, *batch)``
    :param n_samples: samples per batch element
    :param generator: source of randomness (``None``: the global RNG)
    :param tau: temperature of the backward relaxation, above 0
    :param n_rao_samples: conditional Gumbel draws per sample
    :return: a scalar surrogate: the sample mean of ``f`` summed over the batch
    """
    check_estimator_call("gumbel_rao", logits, n_samples, generator, options, ("tau", "n_rao_samples"))
    check_tau(tau)
    check_int(n_rao_samples, "n_rao_samples", minimum=1)
    actions = sample_actions(log_softmax(logits), n_samples, generator)
    one_hot = torch.nn.functional.one_hot(actions, logits.shape[-1]).to(logits.dtype)
    relaxed = gumbel_rao_straight_through(
        logits.expand(n_samples, *logits.shape), one_hot, tau, n_rao_samples, generator
    )
    return evaluate(f, relaxed).sum() / n_samples
