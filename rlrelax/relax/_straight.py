"""The unchecked straight-through combination used inside the package."""

from __future__ import annotations

import torch


def _straight_through(hard: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """Return ``hard`` forward with ``soft``'s gradient.

    ``soft - soft.detach()`` is exactly zero for finite ``soft``, so the forward value is exactly ``hard``;
    the common ``hard - soft.detach() + soft`` can round a one to ``1 - ulp``.
    """
    return hard + (soft - soft.detach())
