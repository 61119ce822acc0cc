"""Tempered softmax and the Gumbel-softmax (concrete) relaxation of a categorical sample."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from rlrelax.relax._straight import _straight_through
from rlrelax.relax._validation import (
    Temperature,
    check_dim,
    check_float_tensor,
    check_tau,
    compute_dtype,
    logits_row_bound,
)

__all__ = ["gumbel_noise", "gumbel_softmax", "log_softmax", "softmax"]

# |log(-log u)| for u clamped into [tiny, 1 - eps/2]: at most -log(eps/2), about 16.7 (float32) or
# 37.4 (float64).
_NOISE_BOUND = 40.0


def _temper(
    z: torch.Tensor, tau: Temperature, tau_value: float, bound: float, dim: int, inplace: bool
) -> torch.Tensor:
    """Divide ``z`` by ``tau`` without letting a row maximum overflow.

    Softmax is invariant to shifting a row, so when ``bound / tau`` could overflow the row maximum is
    subtracted first; the shift only runs when it is needed because it costs a pass over the data.
    """
    if bound / tau_value > torch.finfo(z.dtype).max / 4:
        z = z - z.detach().amax(dim, keepdim=True)
        inplace = True
    if isinstance(tau, torch.Tensor):
        # -inf / tau is -inf whatever tau is, but its derivative w.r.t. a learned tau is 0 * inf = NaN, which
        # would poison tau's gradient: only the finite entries are divided.
        impossible = torch.isneginf(z)
        return torch.where(impossible, 0.0, z).div(tau).masked_fill(impossible, -math.inf)
    if tau_value == 1.0:
        return z
    return z.div_(tau_value) if inplace else z / tau_value


def _prepare(logits: torch.Tensor, tau: Temperature, dim: int) -> tuple[torch.Tensor, float, int, float]:
    check_float_tensor(logits, "logits", min_dim=1)
    tau_value = check_tau(tau)
    dim = check_dim(logits, dim, "logits")
    x = logits.to(compute_dtype(logits.dtype))
    return x, tau_value, dim, logits_row_bound(x, dim)


def softmax(logits: torch.Tensor, tau: Temperature = 1.0, dim: int = -1) -> torch.Tensor:
    """Tempered softmax ``softmax(logits / tau)``.

    ``-inf`` logits mark impossible categories: they get exactly zero probability and zero gradient.
    float16 and bfloat16 input is computed in float32 and cast back.

    :param logits: unnormalised log-probabilities of any batch shape
    :param tau: temperature > 0 (a float, or a one-element tensor to learn it)
    :param dim: the category dimension
    :return: probabilities of ``logits``' shape and dtype, summing to 1 along ``dim``
    """
    x, tau_value, dim, bound = _prepare(logits, tau, dim)
    return torch.softmax(_temper(x, tau, tau_value, bound, dim, inplace=False), dim).to(logits.dtype)


def log_softmax(logits: torch.Tensor, tau: Temperature = 1.0, dim: int = -1) -> torch.Tensor:
    """Tempered log-softmax ``log_softmax(logits / tau)``.

    Entries whose logit is ``-inf`` get ``-inf`` (the log of their zero probability); every other entry is
    finite, also when the true value is below the dtype's range (it is clamped to the lowest finite value
    instead of rounding to ``-inf``, which matters in float16).

    :param logits: unnormalised log-probabilities of any batch shape
    :param tau: temperature > 0 (a float, or a one-element tensor to learn it)
    :param dim: the category dimension
    :return: log-probabilities of ``logits``' shape and dtype
    """
    x, tau_value, dim, bound = _prepare(logits, tau, dim)
    out = torch.log_softmax(_temper(x, tau, tau_value, bound, dim, inplace=False), dim).to(logits.dtype)
    impossible = logits.detach() == -math.inf
    return out.clamp_min(torch.finfo(out.dtype).min).masked_fill(impossible, -math.inf)


def gumbel_noise(
    shape: Sequence[int],
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Draw standard Gumbel(0, 1) noise that is always finite.

    ``G = -log(-log(u))`` with ``u ~ U[0, 1)`` clamped into ``[tiny, 1 - eps / 2]`` of the compute dtype, so
    neither logarithm can see zero: ``-4.5 <= G <= 16.7`` in float32 (``-6.6 <= G <= 37.4`` in float64),
    which cuts off tail mass below 1e-7 (float32). Draws are made in float32 (float64 when asked for) and
    cast to ``dtype``. Uniform draws are several times faster on CPU than ``Tensor.exponential_``, which
    ``torch.nn.functional.gumbel_softmax`` uses.

    :param shape: the shape of the sample
    :param generator: random number generator; the global one when ``None`` (a given generator leaves the
        global state untouched)
    :param device: device of the result
    :param dtype: floating dtype of the result
    :return: a tensor of Gumbel draws
    """
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    size = tuple(shape)
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in size):
        raise ValueError(f"shape must be a sequence of non-negative ints, got {shape!r}")
    like = torch.empty(size, dtype=compute_dtype(dtype), device=device)
    return _neg_gumbel(like, generator).neg_().to(dtype)


def _neg_gumbel(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Return ``log(-log u)`` (that is, minus a Gumbel draw) shaped like ``like``, in its dtype."""
    finfo = torch.finfo(like.dtype)
    u = torch.empty_like(like, memory_format=torch.contiguous_format).uniform_(generator=generator)
    return u.clamp_(finfo.tiny, 1.0 - finfo.eps / 2).log_().neg_().log_()


def gumbel_softmax(
    logits: torch.Tensor,
    tau: Temperature = 1.0,
    *,
    hard: bool = False,
    dim: int = -1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sample from the Gumbel-softmax (concrete) relaxation of ``Categorical(softmax(logits))``.

    ``y = softmax((logits + G) / tau)`` with i.i.d. Gumbel noise ``G``: Jang, Gu and Poole (2017),
    "Categorical Reparameterization with Gumbel-Softmax"; Maddison, Mnih and Teh (2017), "The Concrete
    Distribution: A Continuous Relaxation of Discrete Random Variables". As ``tau -> 0`` the sample
    approaches the one-hot of ``argmax(logits + G)``, which is an exact draw from the categorical.

    With ``hard=True`` the forward value is exactly that one-hot (a single one even under ties) and the
    gradient is the soft sample's (the straight-through Gumbel estimator).

    :param logits: unnormalised log-probabilities of any batch shape; ``-inf`` marks an impossible
        category (never sampled, zero gradient)
    :param tau: temperature > 0 (a float, or a one-element tensor to learn it)
    :param hard: return the exact one-hot with the soft sample's gradient
    :param dim: the category dimension
    :param generator: random number generator; the global one when ``None``
    :return: a sample of ``logits``' shape and dtype
    """
    if not isinstance(hard, bool):
        raise TypeError(f"hard must be a bool, got {hard!r}")
    x, tau_value, dim, bound = _prepare(logits, tau, dim)
    z = x - _neg_gumbel(x, generator)
    z = _temper(z, tau, tau_value, bound + _NOISE_BOUND, dim, inplace=True)
    soft = torch.softmax(z, dim).to(logits.dtype)
    if not hard:
        return soft
    one_hot = torch.zeros_like(soft).scatter_(dim, z.argmax(dim, keepdim=True), 1.0)
    return _straight_through(one_hot, soft)
