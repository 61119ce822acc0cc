"""Slates of k distinct items out of N: the Plackett-Luce policy, as an SB3 distribution and as a layout.

A slate action lives in ``MultiDiscrete([N] * k)``: the item in each of ``k`` slots. A top-k policy has one
logit ``l_i`` per item (N of them, not ``k * N``) and draws the slate without replacement, each slot from the
softmax of the logits of the items not yet shown: the Plackett-Luce model,

    ``π(a_1, ..., a_k | s) = Π_j exp(l_{a_j}) / Σ_{i not in a_1 .. a_{j-1}} exp(l_i)``.

Its samples are the Gumbel-top-k of the logits (the ``k`` largest ``l_i + G_i`` in decreasing order) and its
log-probability is a sum of ``k`` log-softmaxes: Kool, van Hoof and Welling (2019), "Stochastic Beams and
Where to Find Them: The Gumbel-Top-k Trick for Sampling Sequences Without Replacement", and "Buy 4 REINFORCE
Samples, Get a Baseline for Free!" for the score function of such samples. Both are computed by
:func:`rlrelax.relax.gumbel_topk` and :func:`rlrelax.relax.plackett_luce_log_prob`; this module only adapts
them to the agents: :class:`PlackettLuceDistribution` for SB3's ``ActorCriticPolicy`` (REINFORCE), and
:class:`TopKLayout`, the counterpart of :class:`~rlrelax.agents.common.ChoiceLayout` (GumbelAC), which
relaxes a slate into a k-hot mask with :func:`rlrelax.relax.soft_topk` (Xie and Ermon, 2019,
"Reparameterizable Subset Sampling via Continuous Relaxations").
"""

import itertools
import math
from typing import TypeVar

import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import CategoricalDistribution
from torch.nn import functional as F

from rlrelax.agents.common.factorised import MAX_ENUMERATED_ACTIONS, MAX_ENUMERATED_NEXT_ACTIONS, ChoiceLayout
from rlrelax.estimators import leave_one_out_baseline
from rlrelax.relax import gumbel_noise, gumbel_topk, plackett_luce_log_prob, soft_topk

SelfPlackettLuceDistribution = TypeVar("SelfPlackettLuceDistribution", bound="PlackettLuceDistribution")

#: Slates drawn per state to estimate a policy's entropy when it has more than
#: :data:`MAX_ENUMERATED_NEXT_ACTIONS` ordered slates (GumbelAC's default ``n_samples``).
ENTROPY_SAMPLES = 8


def check_topk_action_space(action_space: spaces.Space, algorithm: str) -> tuple[int, int]:
    """Check that ``action_space`` is a slate space ``MultiDiscrete([N] * k)`` with ``1 <= k <= N``.

    :param action_space: the environment's action space
    :param algorithm: the policy's or algorithm's name, for the message
    :return: the number of items ``N`` and the slate size ``k``
    """
    if isinstance(action_space, spaces.MultiDiscrete) and len(action_space.shape) == 1:
        nvec = [int(n) for n in action_space.nvec]
        if nvec and all(n == nvec[0] for n in nvec) and len(nvec) <= nvec[0]:
            return nvec[0], len(nvec)
    raise ValueError(
        f"{algorithm} needs a slate action space MultiDiscrete([N] * k) (k slots, every one over the same N "
        f"items, k <= N), got {action_space!r}"
    )


class PlackettLuceDistribution(CategoricalDistribution):
    """
    The Plackett-Luce distribution of ordered slates of ``k`` distinct items out of ``n_items``, for SB3.

    Samples by the Gumbel-top-k trick and scores an ordered slate by its exact Plackett-Luce log-probability
    (Kool, van Hoof and Welling, 2019, "Stochastic Beams and Where to Find Them: The Gumbel-Top-k Trick for
    Sampling Sequences Without Replacement"); its mode is the ``k`` highest-logit items, highest first.

    The slate's entropy has no closed form for ``k > 1``; :meth:`entropy` is the exact entropy of the first
    draw, ``softmax(logits)``. It is a lower bound (by the chain rule the slate's entropy is the first draw's
    plus the later draws' conditional entropies), differentiable and deterministic, and it is what an entropy
    bonus needs: it rises exactly when the logits spread out, which spreads every draw.

    A subclass of SB3's ``CategoricalDistribution`` so that SB3's ``ActorCriticPolicy`` builds its action
    head as for a categorical, one linear layer of ``n_items`` logits with SB3's initialisation, and hands
    it the logits unchanged; the methods that depend on ``k`` are overridden.

    :param n_items: the number of items ``N``
    :param k: the slate size, ``1 <= k <= n_items``
    """

    def __init__(self, n_items: int, k: int) -> None:
        super().__init__(n_items)
        self.k = k
        self.logits = th.empty(0)

    def proba_distribution(
        self: SelfPlackettLuceDistribution, action_logits: th.Tensor
    ) -> SelfPlackettLuceDistribution:
        # No torch.distributions object: its argument checks would cost more than a rollout step's network.
        self.logits = action_logits
        return self

    def log_prob(self, actions: th.Tensor) -> th.Tensor:
        """
        :param actions: ordered slates of distinct items, ``(batch, k)`` (floats, as SB3's buffers hold them,
            are accepted)
        :return: their Plackett-Luce log-probabilities, ``(batch,)``
        """
        return plackett_luce_log_prob(self.logits, actions.long())

    def entropy(self) -> th.Tensor:
        """
        :return: the entropy of the first draw (a lower bound of the slate's), ``(batch,)``
        """
        log_probs = F.log_softmax(self.logits, dim=-1)
        return -(log_probs.exp() * log_probs).sum(dim=-1)

    def sample(self) -> th.Tensor:
        """
        :return: slates drawn by Gumbel-top-k from the global torch RNG, ``(batch, k)`` int64, in draw order
        """
        return gumbel_topk(self.logits, self.k)

    def mode(self) -> th.Tensor:
        """
        :return: the most likely slate, the ``k`` highest-logit items in decreasing order, ``(batch, k)``
        """
        return self.logits.topk(self.k, dim=-1).indices


class TopKLayout(ChoiceLayout):
    """
    How a Plackett-Luce slate policy lies in the actor's logits and reaches a critic, for GumbelAC.

    The actor has one logit per item (the layout of one choice over ``n_items``, whose :meth:`logit_spread`
    this inherits) and draws ``k`` of them without replacement. A critic reads a slate as its k-hot over the
    items: the set shown, in no order, so it fits environments whose reward does not depend on the order of
    the slots (``rlrelax/Slate-v0``'s user chooses among the slate's items by a logit model that ignores
    their positions). The policy itself is over ordered slates: log-probabilities, entropies and the number
    of actions (``N! / (N - k)!``) count orders.

    What differs from :class:`ChoiceLayout`'s choices, method by method:

    - :meth:`sample`, :meth:`log_prob`, :meth:`mode`: Gumbel-top-k, the Plackett-Luce log-probability, the
      top-k logits (Kool, van Hoof and Welling, 2019);
    - :meth:`relaxed_actions`: ``soft_topk(l + G, k, tau)``, the relaxed k-hot of the Gumbel-top-k sample
      drawn with the same noise (Xie and Ermon, 2019, "Reparameterizable Subset Sampling via Continuous
      Relaxations", with :func:`rlrelax.relax.soft_topk`'s relaxation), for ``"gumbel_softmax"``; its exact
      k-hot with the relaxed gradient for ``"straight_through"``. Gumbel-Rao needs Gumbels conditioned on the
      sampled top-k, which is not implemented: ``"gumbel_rao"`` is a ``ValueError``;
    - :meth:`joint_actions`: every ordered slate, so that ``"exact"`` and the exact soft value work on small
      spaces;
    - :meth:`entropy`: exact by enumeration up to :data:`MAX_ENUMERATED_NEXT_ACTIONS` ordered slates; beyond,
      the mean of ``-log π(a|s)`` over :data:`ENTROPY_SAMPLES` sampled slates, whose gradient is the score
      function ``-E[(log π(a|s) - b) ∇ log π(a|s)]`` with the leave-one-out baseline ``b`` (unbiased: the
      ``-E[∇ log π]`` term of ``∇ E[-log π]`` is zero).

    The inherited :meth:`surrogate` (``"score_function"`` with its leave-one-out baseline, ``"exact"``, the
    relaxed estimators) and :meth:`soft_value` then work on slates unchanged.

    :param n_items: the number of items ``N``
    :param k: the slate size, ``1 <= k <= n_items``
    """

    def __init__(self, n_items: int, k: int) -> None:
        super().__init__((n_items,))
        self.n_items = n_items
        self.k = k

    @classmethod
    def of(cls, action_space: spaces.Space) -> "TopKLayout":
        """
        :param action_space: a slate space ``MultiDiscrete([N] * k)``, ``k <= N`` (else a ``ValueError``)
        :return: its layout
        """
        return cls(*check_topk_action_space(action_space, "TopKPolicy"))

    @property
    def n_joint_actions(self) -> int:
        """The number of ordered slates ``N! / (N - k)!``."""
        return math.perm(self.n_items, self.k)

    def entropy(self, logits: th.Tensor) -> th.Tensor:
        """The entropy of the slate policy, in nats: exact for a small space, else a sampled estimate.

        :param logits: shape ``(..., n_items)``
        :return: shape ``(...)``; differentiable, its gradient unbiased
        """
        if self.n_joint_actions <= MAX_ENUMERATED_NEXT_ACTIONS:
            slates = self.joint_actions(logits.device, MAX_ENUMERATED_NEXT_ACTIONS)
            slates = slates.reshape(-1, *(1,) * (logits.dim() - 1), self.k)
            log_probs = plackett_luce_log_prob(logits, slates)
            return -(log_probs.exp() * log_probs).sum(dim=0)
        log_probs = self.log_prob(logits, self.sample(logits, ENTROPY_SAMPLES))
        advantages = log_probs.detach() - leave_one_out_baseline(log_probs.detach())
        # Value: the mean of -log π over the samples; gradient: minus the score-function estimate above.
        per_state = (log_probs * advantages).mean(dim=0)
        return -log_probs.detach().mean(dim=0) - (per_state - per_state.detach())

    def log_prob(self, logits: th.Tensor, actions: th.Tensor) -> th.Tensor:
        """The Plackett-Luce log-probability of ordered slates.

        :param logits: shape ``(*batch, n_items)``
        :param actions: distinct item indices (floats accepted, as replay holds them),
            ``(*leading, *batch, k)``
        :return: shape ``(*leading, *batch)``
        """
        return plackett_luce_log_prob(logits, actions.long())

    def sample(self, logits: th.Tensor, n_samples: int, generator: th.Generator | None = None) -> th.Tensor:
        """Draw slates by Gumbel-top-k.

        :param logits: shape ``(*batch, n_items)``
        :param n_samples: draws per batch element
        :param generator: source of randomness (``None``: the global torch RNG)
        :return: item indices in draw order, shape ``(n_samples, *batch, k)``
        """
        return gumbel_topk(logits.detach().expand(n_samples, *logits.shape), self.k, generator=generator)

    def mode(self, logits: th.Tensor) -> th.Tensor:
        """
        :param logits: shape ``(*batch, n_items)``
        :return: the ``k`` highest-logit items, highest first, ``(*batch, k)``
        """
        return logits.topk(self.k, dim=-1).indices

    def encode(self, actions: th.Tensor, dtype: th.dtype = th.float32) -> th.Tensor:
        """The critic's input for slates: their k-hot over the items (the order of the slots is dropped).

        :param actions: item indices, shape ``(..., k)``
        :param dtype: the floating dtype of the result
        :return: the indicator of the items shown, shape ``(..., n_items)`` (a repeated item, which the policy
            never draws, is shown once, as ``rlrelax/Slate-v0`` shows it)
        """
        shown = th.zeros((*actions.shape[:-1], self.n_items), dtype=dtype, device=actions.device)
        return shown.scatter_(-1, actions.long(), 1.0)

    def joint_actions(
        self, device: th.device | str | None = None, limit: int = MAX_ENUMERATED_ACTIONS
    ) -> th.Tensor:
        """Every ordered slate, in ``itertools.permutations``' order.

        :param device: the device of the result
        :param limit: the largest number of slates accepted
        :return: item indices, shape ``(N! / (N - k)!, k)``
        """
        if self.n_joint_actions > limit:
            raise ValueError(
                f"there are {self.n_joint_actions} ordered slates of {self.k} of {self.n_items} items, more "
                f"than the {limit} that are enumerated"
            )
        return th.tensor(list(itertools.permutations(range(self.n_items), self.k)), device=device)

    def relaxed_actions(
        self,
        logits: th.Tensor,
        estimator: str,
        *,
        n_samples: int,
        tau: float,
        n_rao_samples: int,
        generator: th.Generator | None = None,
    ) -> th.Tensor:
        """Relaxed k-hot slates whose gradient w.r.t. ``logits`` is a relaxed estimator's.

        :param logits: shape ``(*batch, n_items)``
        :param estimator: ``"gumbel_softmax"`` (``soft_topk(l + G, k, tau)``) or ``"straight_through"`` (the
            k-hot of the same sample's top k, with that gradient)
        :param n_samples: draws per batch element
        :param tau: the relaxation's temperature > 0
        :param n_rao_samples: unused (``"gumbel_rao"`` is refused)
        :param generator: source of randomness (``None``: the global torch RNG)
        :return: relaxed k-hots, shape ``(n_samples, *batch, n_items)``, each summing to ``k``
        """
        if estimator not in ("gumbel_softmax", "straight_through"):
            # Gumbel-Rao would need Gumbel noise conditioned on the sampled top-k, which is not implemented.
            raise ValueError(
                f"estimator must be 'gumbel_softmax' or 'straight_through' to relax a slate, got "
                f"{estimator!r}; the other estimators for slates are 'score_function' and 'exact'"
            )
        noise = gumbel_noise(
            (n_samples, *logits.shape), generator=generator, device=logits.device, dtype=logits.dtype
        )
        return soft_topk(logits + noise, self.k, tau, hard=estimator == "straight_through")


__all__ = [
    "ENTROPY_SAMPLES",
    "PlackettLuceDistribution",
    "TopKLayout",
    "check_topk_action_space",
]
