"""The binary concrete (relaxed Bernoulli) distribution."""

from __future__ import annotations

import torch

from rlrelax.relax._straight import _straight_through
from rlrelax.relax._validation import Temperature, check_float_tensor, check_no_nan, check_tau, compute_dtype

__all__ = ["relaxed_bernoulli"]


def logistic_noise(like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw finite standard logistic noise ``log(u) - log(1 - u)`` shaped and typed like ``like``.

    ``u`` is drawn in the compute dtype and clamped into ``[tiny, 1 - eps / 2]``, so neither logarithm can
    see zero: the noise is bounded by about 88 (float32) or 709 (float64).

    :param like: a tensor whose shape and device the noise takes (its dtype decides float32 or float64)
    :param generator: random number generator; the global one when ``None``
    :return: logistic noise in the compute dtype of ``like``
    """
    dtype = compute_dtype(like.dtype)
    finfo = torch.finfo(dtype)
    u = torch.empty(like.shape, dtype=dtype, device=like.device).uniform_(generator=generator)
    return torch.logit(u.clamp_(finfo.tiny, 1.0 - finfo.eps / 2))


def relaxed_bernoulli(
    logits: torch.Tensor,
    tau: Temperature = 1.0,
    *,
    hard: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sample the binary concrete relaxation of ``Bernoulli(sigmoid(logits))``.

    ``y = sigmoid((logits + L) / tau)`` with standard logistic noise ``L`` (Maddison, Mnih and Teh, 2017,
    "The Concrete Distribution: A Continuous Relaxation of Discrete Random Variables", section 3.3;
    Jang, Gu and Poole, 2017). ``y > 1/2`` is an exact Bernoulli draw. With ``hard=True`` the forward value
    is exactly that 0/1 draw and the gradient is the soft sample's (straight-through).

    :param logits: log-odds of any shape; ``-inf``/``+inf`` give probability exactly 0/1 (NaN is rejected)
    :param tau: temperature > 0 (a float, or a one-element tensor to learn it)
    :param hard: return the exact 0/1 draw with the soft sample's gradient
    :param generator: random number generator; the global one when ``None``
    :return: a sample in ``(0, 1)`` (or ``{0, 1}``) of ``logits``' shape and dtype
    """
    check_float_tensor(logits, "logits")
    check_tau(tau)
    if not isinstance(hard, bool):
        raise TypeError(f"hard must be a bool, got {hard!r}")
    check_no_nan(logits, "logits")
    # The tempered log-odds may overflow to ±inf for huge logits and tiny tau; sigmoid maps those to
    # exactly 0 or 1 with zero gradient, so no NaN can appear.
    z = (logits.to(compute_dtype(logits.dtype)) + logistic_noise(logits, generator)) / tau
    soft = torch.sigmoid(z).to(logits.dtype)
    if not hard:
        return soft
    return _straight_through((z > 0).to(logits.dtype), soft)
