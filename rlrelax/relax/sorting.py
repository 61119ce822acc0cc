"""Relaxed permutations (SoftSort, NeuralSort) and a relaxed top-k mask.

The permutation matrices follow the convention of both papers: row ``i`` of ``P`` is (a relaxation of) the
one-hot of the index of the ``i``-th largest score (smallest when ``descending=False``), so
``P @ scores`` approximates the sorted scores. :func:`soft_sort` therefore returns a permutation matrix,
unlike torchsort's ``soft_sort``, which returns relaxed sorted values (Blondel et al., 2020).
"""

from __future__ import annotations

import math

import torch

from rlrelax.relax._straight import _straight_through
from rlrelax.relax._validation import (
    Temperature,
    check_float_tensor,
    check_subset_size,
    check_tau,
    compute_dtype,
    max_abs_finite,
)

__all__ = ["neural_sort", "soft_sort", "soft_topk"]


def _prepare(scores: torch.Tensor, tau: Temperature, hard: bool, descending: bool) -> float:
    check_float_tensor(scores, "scores", min_dim=1)
    check_tau(tau)
    for name, flag in (("hard", hard), ("descending", descending)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be a bool, got {flag!r}")
    if scores.shape[-1] == 0:
        raise ValueError(f"scores of shape {tuple(scores.shape)} has no entries to sort")
    return max_abs_finite(scores, "scores")


def _hard_permutation(scores: torch.Tensor, descending: bool, dtype: torch.dtype) -> torch.Tensor:
    # A stable sort breaks ties by index, so the result is always a permutation matrix.
    order = torch.sort(scores.detach(), dim=-1, descending=descending, stable=True).indices
    n = scores.shape[-1]
    perm = torch.zeros((*scores.shape, n), dtype=dtype, device=scores.device)
    return perm.scatter_(-1, order.unsqueeze(-1), 1.0)


def soft_sort(
    scores: torch.Tensor, tau: Temperature = 1.0, *, hard: bool = False, descending: bool = True
) -> torch.Tensor:
    """SoftSort relaxed permutation matrix ``softmax(-|sort(s)_i - s_j| / tau)`` over ``j``.

    Prillo and Eisenschlos (2020), "SoftSort: A Continuous Relaxation for the argsort Operator". Every row
    sums to 1; as ``tau -> 0`` the matrix approaches the sorting permutation (for distinct scores). With
    ``hard=True`` the forward value is that permutation matrix exactly (ties broken by index) and the
    gradient is the soft matrix's.

    :param scores: finite scores of shape ``(..., n)``
    :param tau: temperature > 0 (a float, or a one-element tensor to learn it)
    :param hard: return the exact permutation matrix with the soft matrix's gradient
    :param descending: row 0 picks the largest score (``False``: the smallest)
    :return: a row-stochastic ``(..., n, n)`` matrix in ``scores``' dtype
    """
    _prepare(scores, tau, hard, descending)
    s = scores.to(compute_dtype(scores.dtype))
    ordered = torch.sort(s, dim=-1, descending=descending, stable=True).values
    # Each row's maximum is the exact 0 where a sorted value meets its own score, so the logits cannot
    # overflow to +inf; far-apart scores may reach -inf, which softmax maps to an exact 0.
    distance = (ordered.unsqueeze(-1) - s.unsqueeze(-2)).abs()
    soft = torch.softmax(-distance / tau, dim=-1).to(scores.dtype)
    if not hard:
        return soft
    return _straight_through(_hard_permutation(s, descending, scores.dtype), soft)


def neural_sort(
    scores: torch.Tensor, tau: Temperature = 1.0, *, hard: bool = False, descending: bool = True
) -> torch.Tensor:
    """NeuralSort relaxed permutation matrix.

    Grover, Wang, Zweig and Ermon (2019), "Stochastic Optimization of Sorting Networks via Continuous
    Relaxations", eq. 5: row ``i`` is ``softmax(((n + 1 - 2i) s - A_s 1) / tau)`` with
    ``A_s[j, k] = |s_j - s_k|``. Rows sum to 1 (columns too as ``tau -> 0``), and the matrix approaches the
    sorting permutation as ``tau -> 0`` (for distinct scores). ``hard=True`` behaves as in :func:`soft_sort`.

    :param scores: finite scores of shape ``(..., n)``
    :param tau: temperature > 0 (a float, or a one-element tensor to learn it)
    :param hard: return the exact permutation matrix with the soft matrix's gradient
    :param descending: row 0 picks the largest score (``False``: the smallest)
    :return: a row-stochastic ``(..., n, n)`` matrix in ``scores``' dtype
    """
    bound = _prepare(scores, tau, hard, descending)
    dtype = compute_dtype(scores.dtype)
    n = scores.shape[-1]
    if 3.0 * n * bound > torch.finfo(dtype).max / 4:
        raise ValueError(
            f"scores too large for neural_sort in {dtype}: max |score| = {bound!r} with n = {n} overflows "
            "the pairwise sums; rescale the scores"
        )
    s = scores.to(dtype)
    row_sums = (s.unsqueeze(-1) - s.unsqueeze(-2)).abs().sum(-1)
    weight = n + 1 - 2 * torch.arange(1, n + 1, dtype=dtype, device=s.device)
    logits = weight.unsqueeze(-1) * s.unsqueeze(-2) - row_sums.unsqueeze(-2)
    # Subtracting the row maximum keeps logits / tau from overflowing to +inf when tau is tiny.
    logits = logits - logits.detach().amax(-1, keepdim=True)
    soft = torch.softmax(logits / tau, dim=-1)
    if not descending:
        # The i-th smallest score is the (n + 1 - i)-th largest.
        soft = soft.flip(-2)
    soft = soft.to(scores.dtype)
    if not hard:
        return soft
    return _straight_through(_hard_permutation(s, descending, scores.dtype), soft)


def _threshold(s: torch.Tensor, k: int, tau: float, bound: float) -> torch.Tensor:
    """Solve ``sum_i sigmoid((s_i - t) / tau) = k`` for ``t`` by bisection, in float64 and without grad.

    For ``1 <= k < n`` the root lies in ``[min s - c, max s + c]`` with ``c = tau (log n + 1)``: at the
    lower end every sigmoid exceeds ``(n - 1) / n``, at the upper end every one is below ``1 / n``. The sum
    is ``n / (4 tau)``-Lipschitz in ``t``, so halving the bracket until it is below ``1e-13 * 4 tau / n``
    makes the sum exact to about 1e-13.
    """
    n = s.shape[-1]
    margin = tau * (math.log(n) + 1.0)
    lo = s.amin(-1, keepdim=True) - margin
    hi = s.amax(-1, keepdim=True) + margin
    width = 2.0 * (bound + margin)
    steps = min(max(math.ceil(math.log2(width * n / (4e-13 * tau))), 1), 1100)
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        above = torch.sigmoid((s - mid) / tau).sum(-1, keepdim=True) > k
        lo = torch.where(above, mid, lo)
        hi = torch.where(above, hi, mid)
    return 0.5 * (lo + hi)


def soft_topk(scores: torch.Tensor, k: int, tau: Temperature = 1.0, *, hard: bool = False) -> torch.Tensor:
    """Relaxed k-hot mask of the ``k`` largest scores: ``sigmoid((s - t) / tau)``, ``t`` set to sum to ``k``.

    Construction: the threshold ``t`` solves ``sum_i sigmoid((s_i - t) / tau) = k`` (found by bisection),
    which is the entropy-regularised projection onto the capped simplex ``{0 <= m <= 1, sum m = k}`` used by
    Amos, Koltun and Kolter (2019), "The Limited Multi-Label Projection Layer". It was chosen over summing
    the first ``k`` rows of a SoftSort matrix because that sum can put more than 1 on one entry (SoftSort's
    columns do not sum to 1), and over ``k`` successive masked softmaxes because those need ``log(1 - p)``,
    which is singular as ``p -> 1``. Here every entry lies in ``[0, 1]``, the mask sums to ``k`` up to float
    error, is monotone in each score, and approaches the hard k-hot as ``tau -> 0`` (when the k-th and
    (k+1)-th largest scores differ). The gradient differentiates ``t`` implicitly:
    ``dt/ds_j = sigma'_j / sum_l sigma'_l`` (and likewise w.r.t. a tensor ``tau``). The work is done in
    float64 so that the sum is exact also for small ``tau``; ``k == n`` gives all ones (zero gradient). With
    ``hard=True`` the forward value is the exact k-hot of the top-k scores (ties broken by index) and the
    gradient is the soft mask's.

    :param scores: finite scores of shape ``(..., n)``
    :param k: how many entries to select, ``1 <= k <= n``
    :param tau: temperature > 0 (a float, or a one-element tensor to learn it)
    :param hard: return the exact k-hot with the soft mask's gradient
    :return: a mask of ``scores``' shape and dtype with entries in ``[0, 1]`` summing to ``k``
    """
    bound = _prepare(scores, tau, hard, True)
    n = scores.shape[-1]
    check_subset_size(k, n, "scores", tuple(scores.shape))
    tau_value = check_tau(tau)
    s = scores.to(torch.float64)
    if k == n:
        soft = (torch.ones_like(s) + 0.0 * s).to(scores.dtype)
    else:
        tau64 = tau.to(torch.float64) if isinstance(tau, torch.Tensor) else tau_value
        with torch.no_grad():
            t0 = _threshold(s.detach(), k, tau_value, bound)
            sig = torch.sigmoid((s.detach() - t0) / tau_value)
            slope = sig * (1.0 - sig)
            weight = slope / slope.sum(-1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
        # Forward value t0 exactly; backward the implicit-function gradient of t w.r.t. the scores (and
        # w.r.t. a tensor tau: dt/dtau = -sum_j w_j (s_j - t) / tau).
        t = t0 + (weight * (s - s.detach())).sum(-1, keepdim=True)
        if isinstance(tau64, torch.Tensor):
            dt_dtau = -(weight * (s.detach() - t0)).sum(-1, keepdim=True) / tau_value
            t = t + dt_dtau * (tau64 - tau64.detach())
        soft = torch.sigmoid((s - t) / tau64).to(scores.dtype)
    if not hard:
        return soft
    top = torch.sort(scores.detach(), dim=-1, descending=True, stable=True).indices[..., :k]
    k_hot = torch.zeros_like(soft).scatter_(-1, top, 1.0)
    return _straight_through(k_hot, soft)
