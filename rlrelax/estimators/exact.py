"""Exact gradients by enumerating the K actions."""

from collections.abc import Callable

import torch
from torch import Tensor

from rlrelax.estimators._checks import check_estimator_call, check_logits, evaluate
from rlrelax.relax import softmax


def exact_estimator(
    logits: Tensor,
    f: Callable[[Tensor], Tensor],
    *,
    n_samples: int,
    generator: torch.Generator | None = None,
    **options: object,
) -> Tensor:
    """The exact objective ``sum_b sum_k softmax(logits[b])_k f(e_k)[b]``, by enumeration.

    Not a Monte Carlo method: ``f`` is called once on all K one-hot actions, stacked along the leading
    dimension (``(K, *batch, K)``), so its gradient is the true gradient; the reference the sampling
    estimators are measured against.

    :param logits: ``(*batch, K)``
    :param f: maps one-hot actions ``(K, *batch, K)`` to values ``(K, *batch)``
    :param n_samples: checked to be a positive int like every estimator's, otherwise ignored
    :param generator: unused (nothing is random)
    :return: a scalar: the expectation of ``f`` summed over the batch
    """
    check_estimator_call("exact", logits, n_samples, generator, options, ())
    probs = softmax(logits)
    n_actions = logits.shape[-1]
    batch_ones = (1,) * (logits.dim() - 1)
    eye = torch.eye(n_actions, dtype=logits.dtype, device=logits.device).reshape(n_actions, *batch_ones, -1)
    values = evaluate(f, eye.expand(n_actions, *logits.shape))
    return (probs * values.movedim(0, -1)).sum()


def exact_gradient(logits: Tensor, f: Callable[[Tensor], Tensor]) -> Tensor:
    """The true gradient ``∇_logits sum_b E_{a ~ softmax(logits[b])}[f(a)[b]]``, by enumeration.

    :param logits: ``(*batch, K)``; need not require grad
    :param f: maps one-hot actions ``(K, *batch, K)`` to values ``(K, *batch)``
    :return: a detached tensor of the shape of ``logits``
    """
    check_logits(logits)
    leaf = logits.detach().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(exact_estimator(leaf, f, n_samples=1), leaf)
    return grad
