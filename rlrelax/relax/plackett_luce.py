"""Ordered k-subsets: Gumbel-top-k sampling and the Plackett-Luce log-probability.

Both describe one distribution: draw item ``a_1`` from ``softmax(logits)``, then ``a_2`` from the softmax of
the remaining items' logits, and so on for ``k`` draws without replacement (the Plackett-Luce model, Luce
1959 and Plackett 1975). :func:`gumbel_topk` samples it in one pass, :func:`plackett_luce_log_prob` scores a
sample, which is what a score-function (REINFORCE) gradient of a slate policy needs.
"""

from __future__ import annotations

import math

import torch

from rlrelax.relax._validation import (
    check_float_tensor,
    check_generator,
    check_subset_size,
    compute_dtype,
    logits_row_bound,
    values_readable,
)
from rlrelax.relax.categorical import _neg_gumbel

__all__ = ["gumbel_topk", "plackett_luce_log_prob"]


def gumbel_topk(logits: torch.Tensor, k: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Sample ``k`` distinct items per row, in order, from the Plackett-Luce model of ``logits``.

    The Gumbel-top-k trick: the indices of the ``k`` largest ``logits + G`` (i.i.d. Gumbel noise ``G``), in
    decreasing order of the perturbed value, are an exact draw of ``k`` items without replacement where
    each next item is drawn from the softmax over the items not yet drawn. Kool, van Hoof and Welling
    (2019), "Stochastic Beams and Where to Find Them: The Gumbel-Top-k Trick for Sampling Sequences Without
    Replacement"; the first index alone is the Gumbel-max trick. The noise is :func:`gumbel_noise`'s, so
    ``soft_topk(logits + G, k, tau)`` with the same ``G`` is the relaxed k-hot of the same sample (its hard
    version is the sampled set, unordered).

    :param logits: unnormalised log-probabilities ``(..., n)``; ``-inf`` marks an impossible item (never
        drawn), and every row needs at least ``k`` possible items
    :param k: how many items to draw, ``1 <= k <= n``
    :param generator: random number generator; the global one when ``None``
    :return: ``int64`` indices ``(..., k)``, distinct within each row, in the order they were drawn
    """
    check_float_tensor(logits, "logits", min_dim=1)
    n = logits.shape[-1]
    check_subset_size(k, n, "logits", tuple(logits.shape))
    check_generator(generator)
    x = logits.detach().to(compute_dtype(logits.dtype))
    logits_row_bound(x, x.dim() - 1)
    if x.numel() > 0 and values_readable():
        fewest_possible = int((x > -math.inf).sum(-1).amin())
        if fewest_possible < k:
            raise ValueError(
                f"logits of shape {tuple(logits.shape)} have a row with only {fewest_possible} possible "
                f"item(s) (not -inf), fewer than k={k}"
            )
    return (x - _neg_gumbel(x, generator)).topk(k, dim=-1, sorted=True).indices


def _check_indices(indices: object, n: int, logits_shape: tuple[int, ...]) -> None:
    if not isinstance(indices, torch.Tensor):
        raise TypeError(f"indices must be a torch.Tensor, got {type(indices).__name__}")
    if indices.is_floating_point() or indices.is_complex() or indices.dtype == torch.bool:
        raise TypeError(f"indices must be an integer tensor, got dtype {indices.dtype}")
    if indices.dim() < 1:
        raise ValueError(
            f"indices must have at least 1 dimension (the k items), got shape {tuple(indices.shape)}"
        )
    check_subset_size(indices.shape[-1], n, "logits", logits_shape)
    if indices.numel() == 0 or not values_readable():
        return
    out_of_range = (indices < 0) | (indices >= n)
    if bool(out_of_range.any()):
        where = tuple(int(i) for i in out_of_range.nonzero()[0])
        raise ValueError(f"indices must be in [0, {n}), got {int(indices[where])} at index {where}")
    ordered = indices.sort(-1).values
    repeated = (ordered[..., 1:] == ordered[..., :-1]).any(-1)
    if bool(repeated.any()):
        row = tuple(int(i) for i in repeated.nonzero()[0])
        raise ValueError(f"indices must be distinct within a row, got {indices[row].tolist()} at row {row}")


def plackett_luce_log_prob(logits: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Log-probability of drawing the items ``indices``, in that order, without replacement.

    ``log P(a_1, ..., a_k) = sum_i [logits[a_i] - logsumexp(logits over items not in a_1 .. a_{i-1})]``:
    the Plackett-Luce model, whose samples :func:`gumbel_topk` draws (Kool, van Hoof and Welling, 2019).
    Each normaliser is a ``logsumexp`` over the remaining items with the drawn ones masked out, so nothing
    is subtracted from a probability near 1 (the cheaper ``log(1 - sum of drawn probabilities)`` loses all
    precision once the drawn items hold most of the mass); this costs ``O(k n)`` memory per row.
    Differentiable w.r.t. ``logits``; float16 and bfloat16 are computed in float32 and cast back.

    :param logits: unnormalised log-probabilities ``(..., n)``; ``-inf`` marks an impossible item
    :param indices: integer tensor ``(..., k)`` of distinct items in ``[0, n)``, ``1 <= k <= n``; its batch
        shape broadcasts against ``logits``' (e.g. ``(n_samples, batch, k)`` against ``(batch, n)``)
    :return: log-probabilities of the broadcast batch shape, in ``logits``' dtype; ``-inf`` (with zero
        gradient) where an item drawn has a ``-inf`` logit
    """
    check_float_tensor(logits, "logits", min_dim=1)
    n = logits.shape[-1]
    _check_indices(indices, n, tuple(logits.shape))
    try:
        batch = torch.broadcast_shapes(logits.shape[:-1], indices.shape[:-1])
    except RuntimeError:
        raise ValueError(
            f"the batch shapes of logits {tuple(logits.shape)} and indices {tuple(indices.shape)} "
            "do not broadcast"
        ) from None
    x = logits.to(compute_dtype(logits.dtype))
    logits_row_bound(x, x.dim() - 1)
    k = indices.shape[-1]
    drawn = indices.to(torch.int64).expand(*batch, k)
    impossible = x.detach() == -math.inf
    # A finite stand-in for -inf keeps every normaliser finite (a row of only -inf gives NaN, and NaN
    # gradients, in logsumexp); the stand-in's exp is exactly 0, so the others' values do not change.
    x = x.masked_fill(impossible, torch.finfo(x.dtype).min).expand(*batch, n)
    one_hot = torch.zeros((*batch, k, n), dtype=torch.int64, device=x.device).scatter_(
        -1, drawn.unsqueeze(-1), 1
    )
    drawn_before = (one_hot.cumsum(-2) - one_hot).bool()
    log_normalisers = x.unsqueeze(-2).masked_fill(drawn_before, -math.inf).logsumexp(-1)
    out = (x.gather(-1, drawn) - log_normalisers).sum(-1).to(logits.dtype)
    drew_impossible = impossible.expand(*batch, n).gather(-1, drawn).any(-1)
    return out.clamp_min(torch.finfo(out.dtype).min).masked_fill(drew_impossible, -math.inf)
