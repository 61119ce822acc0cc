"""Checks of tensors, temperatures and random generators, shared by the relaxations and the estimators.

They run on every call of a relaxation (an agent calls one every step), so each check that has to look at
tensor data does so with a single reduction and a single host synchronisation; the slow search for *which*
value is bad only runs once a check has already failed, to build the error message. The checks of plain
values are in ``rlrelax._validation``, under the same convention (``TypeError`` for a wrong type,
``ValueError`` for a wrong value, each naming the argument and the value).
"""

from __future__ import annotations

import math

import torch

from rlrelax._validation import check_positive

Temperature = float | torch.Tensor


def values_readable() -> bool:
    """Whether a check may read tensor values: always, except while ``torch.compile`` traces a graph.

    A graph cannot hold a number read out of a tensor (a check's one host synchronisation), so while it is
    traced the checks of values are skipped and only those of types and shapes run. GumbelAC's compiled
    update (``compile_update=True``) checks its losses after each ``train`` call instead.

    :return: ``False`` while Dynamo traces, else ``True``
    """
    return not torch.compiler.is_compiling()


def check_generator(generator: object, name: str = "generator") -> None:
    """Check that ``generator`` is ``None`` or a ``torch.Generator``.

    :param generator: the value to check
    :param name: the argument name used in the error message
    """
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator or None, got {type(generator).__name__}")


def check_tau(tau: object, name: str = "tau") -> float:
    """Check a temperature and return its value as a Python float.

    :param tau: a finite number > 0, or a one-element floating tensor holding one (gradients flow through it)
    :param name: the argument name used in the error message
    :return: the temperature as a float
    """
    if isinstance(tau, torch.Tensor):
        if not tau.is_floating_point():
            raise TypeError(f"{name} must be a number or a floating tensor, got a {tau.dtype} tensor")
        if tau.numel() != 1:
            raise ValueError(f"{name} must be a one-element tensor, got shape {tuple(tau.shape)}")
        value = float(tau.detach())
        if not (math.isfinite(value) and value > 0.0):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        return value
    return check_positive(tau, name)


def check_float_tensor(x: object, name: str, min_dim: int = 0) -> torch.Tensor:
    """Check that ``x`` is a floating-point tensor with at least ``min_dim`` dimensions.

    :param x: the object to check
    :param name: the argument name used in the error message
    :param min_dim: the least number of dimensions ``x`` must have
    :return: ``x``
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dimension(s), got shape {tuple(x.shape)}")
    return x


def check_dim(x: torch.Tensor, dim: int, name: str) -> int:
    """Check that ``dim`` indexes a non-empty dimension of ``x`` and return it as a non-negative index.

    :param x: the tensor
    :param dim: the dimension, negative values counting from the end
    :param name: the tensor's argument name used in the error message
    :return: ``dim`` in ``[0, x.dim())``
    """
    if not isinstance(dim, int) or isinstance(dim, bool):
        raise TypeError(f"dim must be an int, got {dim!r}")
    if x.dim() == 0 or not -x.dim() <= dim < x.dim():
        raise ValueError(f"dim={dim} is out of range for {name} of shape {tuple(x.shape)}")
    dim %= x.dim()
    if x.shape[dim] == 0:
        raise ValueError(f"{name} of shape {tuple(x.shape)} has no entries along dim={dim}")
    return dim


def check_subset_size(k: object, n: int, name: str, shape: tuple[int, ...]) -> int:
    """Check that ``k`` is an int in ``[1, n]``: how many of ``n`` items a subset or top-k holds.

    :param k: the value to check
    :param n: the number of items to choose from
    :param name: the argument name of the tensor holding the items, used in the error message
    :param shape: that tensor's shape, used in the error message
    :return: ``k``
    """
    if not isinstance(k, int) or isinstance(k, bool):
        raise TypeError(f"k must be an int, got {k!r}")
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, n] = [1, {n}] for {name} of shape {shape}, got k={k}")
    return k


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Return the dtype the relaxations compute in: float64 for float64 input, float32 otherwise.

    float16 and bfloat16 overflow or lose the small probabilities in ``exp`` and ``log``, so the work is
    done in float32 and only the result is cast back.

    :param dtype: the input's dtype
    :return: the dtype to compute in
    """
    return torch.float64 if dtype == torch.float64 else torch.float32


def _first_index(mask: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(i) for i in mask.nonzero()[0])


def logits_row_bound(logits: torch.Tensor, dim: int, name: str = "logits") -> float:
    """Validate categorical logits and return the largest magnitude of a row maximum.

    NaN and ``+inf`` are rejected, and so is a row whose entries are all ``-inf`` (no possible action);
    ``-inf`` elsewhere marks an impossible action. One ``amax`` finds all three at once, because the row
    maximum is NaN, ``+inf`` or ``-inf`` exactly in these cases.

    :param logits: the logits (already in the compute dtype)
    :param dim: the category dimension (non-negative)
    :param name: the argument name used in the error message
    :return: ``max |max_dim logits|`` as a float (finite), used to decide whether tempering can overflow;
        0.0 while a graph is traced (:func:`values_readable`): no shift, as for any logits a network outputs
    """
    if logits.numel() == 0 or not values_readable():
        return 0.0
    bound = float(logits.detach().amax(dim).abs().amax())
    if math.isfinite(bound):
        return bound
    x = logits.detach()
    nan = torch.isnan(x)
    if bool(nan.any()):
        raise ValueError(f"{name} contain NaN (first at index {_first_index(nan)})")
    pos_inf = x == math.inf
    if bool(pos_inf.any()):
        raise ValueError(
            f"{name} contain +inf (first at index {_first_index(pos_inf)}); logits must be finite, "
            "or -inf to mark an impossible action"
        )
    dead = (x == -math.inf).all(dim)
    raise ValueError(
        f"{name} are -inf for every entry along dim={dim} (first such row at batch index "
        f"{_first_index(dead)}): at least one action must be possible"
    )


def check_no_nan(x: torch.Tensor, name: str) -> None:
    """Raise ``ValueError`` if ``x`` contains NaN (infinities are allowed); nothing while a graph is traced.

    :param x: the tensor
    :param name: the argument name used in the error message
    """
    if not values_readable():
        return
    nan = torch.isnan(x.detach())
    if bool(nan.any()):
        raise ValueError(f"{name} contain NaN (first at index {_first_index(nan)})")


def max_abs_finite(x: torch.Tensor, name: str) -> float:
    """Validate that every entry of ``x`` is finite and return ``max |x|``.

    :param x: the tensor
    :param name: the argument name used in the error message
    :return: the largest magnitude in ``x`` (0.0 for an empty tensor)
    """
    if x.numel() == 0:
        return 0.0
    bound = float(x.detach().abs().amax())
    if math.isfinite(bound):
        return bound
    bad = ~torch.isfinite(x.detach())
    index = _first_index(bad)
    raise ValueError(f"{name} must be finite, got {float(x.detach()[index])} at index {index}")
