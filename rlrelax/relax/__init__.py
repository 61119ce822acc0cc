"""Relaxations of discrete choices: pure tensor functions, torch only.

- :func:`softmax`, :func:`log_softmax` -- tempered (log-)softmax;
- :func:`gumbel_noise`, :func:`gumbel_softmax` -- Gumbel-softmax samples (soft or straight-through);
- :func:`relaxed_bernoulli` -- the binary concrete distribution;
- :func:`straight_through`, :func:`ste_sign`, :func:`hard_threshold` -- straight-through estimators;
- :func:`soft_sort`, :func:`neural_sort` -- relaxed permutation matrices; :func:`soft_topk` -- relaxed k-hot;
- :func:`gumbel_topk`, :func:`plackett_luce_log_prob` -- ordered k-subsets without replacement (a sample and
  its exact log-probability);
- schedules of SB3's ``progress_remaining`` for temperatures.

Every function validates its arguments before any work (``ValueError`` naming the bad value for a
temperature ``tau <= 0``, NaN, a row of all ``-inf`` logits, ``k`` out of range), never returns NaN or inf
for finite input (float16 and bfloat16 are computed in float32 and cast back), and takes an optional
``torch.Generator`` where it draws random numbers. ``tau`` is always a temperature.

Note: :func:`soft_sort` returns a relaxed *permutation matrix* of shape ``(..., n, n)`` (SoftSort, Prillo and
Eisenschlos, 2020), unlike torchsort's ``soft_sort``, which returns relaxed sorted *values* by isotonic
regression (Blondel et al., 2020).
"""

from rlrelax.relax.binary import relaxed_bernoulli
from rlrelax.relax.categorical import gumbel_noise, gumbel_softmax, log_softmax, softmax
from rlrelax.relax.plackett_luce import gumbel_topk, plackett_luce_log_prob
from rlrelax.relax.schedules import (
    ConstantSchedule,
    CosineSchedule,
    ExponentialSchedule,
    LinearSchedule,
    as_schedule,
)
from rlrelax.relax.sorting import neural_sort, soft_sort, soft_topk
from rlrelax.relax.straight_through import hard_threshold, ste_sign, straight_through

__all__ = [
    "ConstantSchedule",
    "CosineSchedule",
    "ExponentialSchedule",
    "LinearSchedule",
    "as_schedule",
    "gumbel_noise",
    "gumbel_softmax",
    "gumbel_topk",
    "hard_threshold",
    "log_softmax",
    "neural_sort",
    "plackett_luce_log_prob",
    "relaxed_bernoulli",
    "soft_sort",
    "soft_topk",
    "softmax",
    "ste_sign",
    "straight_through",
]
