"""Argument checks and sampling shared by the estimators; every check runs before any random draw."""

from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from rlrelax._validation import check_int
from rlrelax.relax import gumbel_noise
from rlrelax.relax._validation import check_float_tensor, check_generator


def check_logits(logits: object) -> None:
    """Raise unless ``logits`` is a floating tensor of shape ``(*batch, K)`` with ``K >= 1``.

    Its values (NaN, rows that are all ``-inf``) are checked by :mod:`rlrelax.relax`, which every
    estimator calls on the logits before drawing anything.

    :param logits: the logits to check
    """
    check_float_tensor(logits, "logits", min_dim=1)
    assert isinstance(logits, Tensor)
    if logits.shape[-1] == 0:
        raise ValueError(f"logits must have shape (*batch, K) with K >= 1, got {tuple(logits.shape)}")


def check_estimator_call(
    estimator: str,
    logits: object,
    n_samples: object,
    generator: object,
    options: Mapping[str, object],
    valid: tuple[str, ...],
) -> None:
    """The checks every estimator makes of its common arguments, before any random draw.

    :param estimator: the estimator's name in ``ESTIMATORS``
    :param logits: checked by :func:`check_logits`
    :param n_samples: an int >= 1
    :param generator: ``None`` or a ``torch.Generator``
    :param options: the keyword arguments left over after the known ones: none is allowed
    :param valid: the names of the options the estimator takes, for the message
    """
    reject_unknown_options(estimator, options, valid)
    check_int(n_samples, "n_samples", minimum=1)
    check_generator(generator)
    check_logits(logits)


def reject_unknown_options(estimator: str, options: Mapping[str, object], valid: tuple[str, ...]) -> None:
    """Raise a ``ValueError`` naming every option that ``estimator`` does not take.

    :param estimator: the estimator's name in ``ESTIMATORS``
    :param options: the keyword arguments left over after the known ones
    :param valid: the names of the options the estimator takes
    """
    if options:
        raise ValueError(
            f"unknown option(s) {sorted(options)} for estimator {estimator!r}; "
            f"valid options: {list(valid) if valid else 'none'}"
        )


def evaluate(f: Callable[[Tensor], Tensor], actions: Tensor, name: str = "f") -> Tensor:
    """Call ``f`` on actions ``(n_samples, *batch, K)`` and check that it returns ``(n_samples, *batch)``.

    :param f: the objective (or a control variate)
    :param actions: one-hot or relaxed actions
    :param name: what ``f`` is called in the error message
    :return: ``f(actions)``
    """
    values = f(actions)
    if not isinstance(values, Tensor):
        raise TypeError(f"{name} must return a torch.Tensor, got {type(values).__name__}")
    expected = tuple(actions.shape[:-1])
    if tuple(values.shape) != expected:
        raise ValueError(
            f"{name} must map actions of shape {tuple(actions.shape)} to values of shape "
            f"(n_samples, *batch) = {expected}, got shape {tuple(values.shape)}"
        )
    return values


def perturb(log_probs: Tensor, n_samples: int, generator: torch.Generator | None) -> Tensor:
    """``log_probs + G`` for ``n_samples`` draws of iid Gumbel(0, 1) noise ``G``.

    Differentiable in ``log_probs``; its argmax along the last dimension is a sample of
    ``softmax(log_probs)`` (the Gumbel-max trick).

    :param log_probs: (possibly unnormalized) log-probabilities ``(*batch, K)``
    :param n_samples: number of draws
    :param generator: source of randomness (``None``: the global RNG)
    :return: the perturbed log-probabilities ``(n_samples, *batch, K)``
    """
    noise = gumbel_noise(
        (n_samples, *log_probs.shape), generator=generator, device=log_probs.device, dtype=log_probs.dtype
    )
    return log_probs + noise


def sample_actions(log_probs: Tensor, n_samples: int, generator: torch.Generator | None) -> Tensor:
    """Draw ``n_samples`` actions per batch element with the Gumbel-max trick.

    :param log_probs: (possibly unnormalized) log-probabilities ``(*batch, K)``
    :param n_samples: number of draws
    :param generator: source of randomness (``None``: the global RNG)
    :return: action indices ``(n_samples, *batch)``
    """
    return perturb(log_probs.detach(), n_samples, generator).argmax(dim=-1)
