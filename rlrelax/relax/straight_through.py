"""Straight-through estimators: a discrete forward value with the gradient of a smooth surrogate."""

from __future__ import annotations

import torch

from rlrelax._validation import check_finite_number
from rlrelax.relax._straight import _straight_through
from rlrelax.relax._validation import (
    Temperature,
    check_float_tensor,
    check_no_nan,
    check_tau,
    compute_dtype,
    max_abs_finite,
    values_readable,
)

__all__ = ["hard_threshold", "ste_sign", "straight_through"]


def straight_through(hard: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """Return ``hard`` in the forward pass and pass the gradient to ``soft`` in the backward pass.

    The straight-through estimator of Bengio, Léonard and Courville (2013), "Estimating or Propagating
    Gradients Through Stochastic Neurons for Conditional Computation". The forward value equals ``hard``
    exactly (cast to ``soft``'s dtype); ``hard`` receives no gradient.

    :param hard: the discrete forward value (e.g. a one-hot); bool or numeric, same shape as ``soft``
    :param soft: the differentiable surrogate whose gradient is used
    :return: a tensor equal to ``hard`` whose gradient w.r.t. ``soft`` is the identity
    """
    check_float_tensor(soft, "soft")
    if not isinstance(hard, torch.Tensor):
        raise TypeError(f"hard must be a torch.Tensor, got {type(hard).__name__}")
    if hard.shape != soft.shape:
        raise ValueError(
            f"hard and soft must have the same shape, got {tuple(hard.shape)} and {tuple(soft.shape)}"
        )
    hard = hard.detach().to(soft.dtype)
    # One fused check for both tensors; soft must be finite too, or soft - soft would be NaN.
    if values_readable() and not bool(torch.isfinite(hard).all() & torch.isfinite(soft.detach()).all()):
        for name, value in (("hard", hard), ("soft", soft.detach())):
            bad = ~torch.isfinite(value)
            if bool(bad.any()):
                index = tuple(int(i) for i in bad.nonzero()[0])
                raise ValueError(f"{name} must be finite, got {float(value[index])} at index {index}")
    return _straight_through(hard, soft)


def ste_sign(x: torch.Tensor) -> torch.Tensor:
    """Sign with the identity gradient (straight-through).

    Forward: ``+1`` where ``x >= 0`` and ``-1`` elsewhere (zero maps to ``+1`` so that the output is always
    binary). Backward: the gradient of the identity, as in Bengio et al. (2013); note that BinaryNet
    (Hubara et al., 2016) instead cancels the gradient where ``|x| > 1``.

    :param x: finite input of any shape (the identity surrogate has no finite value at ``±inf``)
    :return: ``±1`` in ``x``'s shape and dtype
    """
    check_float_tensor(x, "x")
    max_abs_finite(x, "x")
    hard = torch.where(x.detach() >= 0, 1.0, -1.0).to(x.dtype)
    return _straight_through(hard, x)


def hard_threshold(x: torch.Tensor, threshold: float = 0.0, tau: Temperature = 1.0) -> torch.Tensor:
    """Step function with the gradient of a sigmoid (the sigmoid straight-through estimator).

    Forward: ``1`` where ``x > threshold``, else ``0``. Backward: the gradient of
    ``sigmoid((x - threshold) / tau)``, which is computed in float32 for float16/bfloat16 input.

    :param x: input of any shape (NaN is rejected; infinities are allowed)
    :param threshold: the finite step location
    :param tau: temperature > 0 of the surrogate sigmoid; smaller is closer to the step
    :return: ``0``/``1`` in ``x``'s shape and dtype
    """
    check_float_tensor(x, "x")
    threshold = check_finite_number(threshold, "threshold")
    check_tau(tau)
    check_no_nan(x, "x")
    soft = torch.sigmoid((x.to(compute_dtype(x.dtype)) - threshold) / tau).to(x.dtype)
    hard = (x.detach() > threshold).to(x.dtype)
    return _straight_through(hard, soft)
