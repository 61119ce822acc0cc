"""The discrete soft value shared by the soft Q-learning agents."""

import torch as th


def soft_value(q_values: th.Tensor, ent_coef: float) -> th.Tensor:
    """The exact discrete soft value ``V(s) = alpha·log Σ_a exp(Q(s, a)/alpha)`` (Haarnoja et al. 2017).

    Written as ``max_a Q + alpha·logsumexp((Q - max_a Q)/alpha)``: the division only ever sees non-positive
    numbers, so nothing overflows as alpha → 0, where ``V`` tends to the hard maximum ``max_a Q``
    (the logsumexp term lies in ``[0, log|A|]``).

    :param q_values: Q-values of shape ``(batch, n_actions)``
    :param ent_coef: the temperature alpha > 0
    :return: the soft values, shape ``(batch, 1)``
    """
    # Below the dtype's smallest normal number alpha would round to 0 inside the division (0/0 = NaN at the
    # maximum); flooring it there changes V by less than tiny·log|A|, far below the dtype's resolution.
    alpha = max(ent_coef, th.finfo(q_values.dtype).tiny)
    q_max = q_values.max(dim=1, keepdim=True).values
    return q_max + alpha * th.logsumexp((q_values - q_max) / alpha, dim=1, keepdim=True)
