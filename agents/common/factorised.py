"""A policy over several discrete choices at once, and the actor-gradient estimators that relax each choice.

A ``MultiDiscrete`` action is M categorical choices and a ``MultiBinary`` one M bits, made independently given
the state: ``π(a|s) = Π_m π_m(a_m|s)``, so log-probabilities and entropies add up over the choices. The
joint space has ``Π_m |A_m|`` actions, too many to enumerate in general; an agent that values joint actions
with a critic ``Q(s, a)`` feeds it the *encoded* joint action:

- ``MultiDiscrete``: the concatenation of the choices' one-hots, ``Σ_m |A_m|`` numbers;
- ``MultiBinary``: the bits themselves, one number per bit; the actor has one Bernoulli logit ``l_m`` per bit,
  ``π_m(1|s) = sigmoid(l_m)``.

Either way the encoded action has one entry per actor logit, and a relaxed action (Gumbel-softmax per
choice, the binary concrete per bit) has the same shape, so the critic reads relaxed and exact actions
alike. A bit is the two-option choice with logits ``(0, l_m)`` (softmax of those is ``(1 - p, p)``, and the
Gumbel-softmax of those is the binary concrete, Maddison, Mnih and Teh, 2017, Sec. 3.3): every categorical
computation below (entropy, log-probability, sampling, Gumbel-Rao's conditional noise) is applied to bits
in that lifted form, so it is written once.

Used by :class:`rlrelax.agents.GumbelAC`; a ``Discrete`` space is the layout of one choice.
"""

import math
from collections.abc import Callable

import torch as th
from gymnasium import spaces
from torch.nn import functional as F

from rlrelax.agents.common.checks import FactorisedSpace, choice_sizes
from rlrelax.estimators import gumbel_rao_straight_through, leave_one_out_baseline, score_function_surrogate
from rlrelax.relax import gumbel_noise, gumbel_softmax, relaxed_bernoulli

#: The largest joint action space that is enumerated: the ``"exact"`` estimator evaluates the critic on every
#: joint action of every state in the batch, so its cost grows with this number (4096 x 128 states is half a
#: million critic rows per gradient step).
MAX_ENUMERATED_ACTIONS = 4096
#: The next state's soft value is the exact expectation over the joint actions up to this many of them, and
#: a mean over the actor's samples beyond: enumeration costs one critic row per joint action and state,
#: 8 times the cost of GumbelAC's default 8 samples at this size, and removes their variance.
MAX_ENUMERATED_NEXT_ACTIONS = 64

_RELAXED = ("gumbel_softmax", "straight_through", "gumbel_rao")


class ChoiceLayout:
    """
    How the choices of a ``Discrete``, ``MultiDiscrete`` or ``MultiBinary`` space lie in the actor's logits.

    The logits of a categorical choice are consecutive, in the space's order; runs of consecutive choices
    with the same number of options are viewed as one ``(..., count, options)`` tensor, so that a space of
    many equal choices (``MultiBinary(20)``, ``MultiDiscrete([5] * 8)``) is handled in one operation.

    :param sizes: the number of options of each choice (2 per bit)
    :param binary: whether the choices are bits, one Bernoulli logit each (``MultiBinary``)
    """

    def __init__(self, sizes: tuple[int, ...], binary: bool = False) -> None:
        self.sizes = sizes
        self.binary = binary
        runs: list[tuple[int, int]] = []  # (count, options)
        for size in sizes:
            if runs and runs[-1][1] == size:
                runs[-1] = (runs[-1][0] + 1, size)
            else:
                runs.append((1, size))
        self.runs = [(len(sizes), 2)] if binary else runs

    @classmethod
    def of(cls, action_space: FactorisedSpace) -> "ChoiceLayout":
        """
        :param action_space: a space accepted by :func:`rlrelax.agents.common.check_factorised_action_space`
        :return: its layout
        """
        sizes = choice_sizes(action_space)
        if sizes is None:
            assert isinstance(action_space, spaces.Discrete)
            return cls((int(action_space.n),))
        return cls(sizes, binary=isinstance(action_space, spaces.MultiBinary))

    @property
    def width(self) -> int:
        """The number of actor logits, which is also the width of an encoded (or relaxed) joint action."""
        return len(self.sizes) if self.binary else sum(self.sizes)

    @property
    def n_joint_actions(self) -> int:
        """The number of joint actions ``Π_m |A_m|``."""
        return math.prod(self.sizes)

    def choice_logits(self, logits: th.Tensor) -> list[th.Tensor]:
        """
        :param logits: the actor's logits, shape ``(..., width)``
        :return: the logits of each run of choices, shape ``(..., count, options)`` (``(0, l)`` for a bit)
        """
        if self.binary:
            return [th.stack([th.zeros_like(logits), logits], dim=-1)]
        chunks = logits.split([count * options for count, options in self.runs], dim=-1)
        return [chunk.unflatten(-1, run) for chunk, run in zip(chunks, self.runs, strict=True)]

    def _split_actions(self, actions: th.Tensor) -> tuple[th.Tensor, ...]:
        return actions.long().split([count for count, _ in self.runs], dim=-1)

    def entropy(self, logits: th.Tensor) -> th.Tensor:
        """The policy's entropy, the sum of the choices' entropies (they are independent), in nats.

        :param logits: shape ``(..., width)``
        :return: shape ``(...)``
        """
        total = None
        for run in self.choice_logits(logits):
            log_probs = F.log_softmax(run, dim=-1)
            entropy = -(log_probs.exp() * log_probs).sum(dim=(-2, -1))
            total = entropy if total is None else total + entropy
        assert total is not None
        return total

    def logit_spread(self, logits: th.Tensor) -> th.Tensor:
        """``Σ_m Σ_k (l_mk - mean_k l_mk)²``, the squared centred logits of every choice (``l²/2`` per bit).

        :param logits: shape ``(..., width)``
        :return: shape ``(...)``
        """
        total = None
        for run in self.choice_logits(logits):
            spread = (run - run.mean(dim=-1, keepdim=True)).pow(2).sum(dim=(-2, -1))
            total = spread if total is None else total + spread
        assert total is not None
        return total

    def log_prob(self, logits: th.Tensor, actions: th.Tensor) -> th.Tensor:
        """The log-probability of joint actions, the sum of their choices' log-probabilities.

        :param logits: shape ``(*batch, width)``
        :param actions: option indices, shape ``(*leading, *batch, n_choices)``
        :return: shape ``(*leading, *batch)``
        """
        total = None
        for run, chosen in zip(self.choice_logits(logits), self._split_actions(actions), strict=True):
            log_probs = F.log_softmax(run, dim=-1).expand(*chosen.shape, run.shape[-1])
            value = log_probs.gather(-1, chosen.unsqueeze(-1)).squeeze(-1).sum(dim=-1)
            total = value if total is None else total + value
        assert total is not None
        return total

    def sample(self, logits: th.Tensor, n_samples: int, generator: th.Generator | None = None) -> th.Tensor:
        """Draw joint actions, each choice by the Gumbel-max trick.

        :param logits: shape ``(*batch, width)``
        :param n_samples: draws per batch element
        :param generator: source of randomness (``None``: the global torch RNG)
        :return: option indices, shape ``(n_samples, *batch, n_choices)``
        """
        draws = [
            (run + gumbel_noise((n_samples, *run.shape), generator=generator, device=run.device)).argmax(-1)
            for run in self.choice_logits(logits.detach())
        ]
        return th.cat(draws, dim=-1)

    def mode(self, logits: th.Tensor) -> th.Tensor:
        """
        :param logits: shape ``(*batch, width)``
        :return: each choice's most likely option (a bit is 1 where its logit is > 0), ``(*batch, n_choices)``
        """
        return th.cat([run.argmax(dim=-1) for run in self.choice_logits(logits)], dim=-1)

    def _flatten(self, runs: list[th.Tensor]) -> th.Tensor:
        """Encode per-run one-hots (exact or relaxed), ``(..., count, options)``, as ``(..., width)``."""
        if self.binary:
            return runs[0][..., 1]
        return th.cat([run.flatten(-2) for run in runs], dim=-1)

    def encode(self, actions: th.Tensor, dtype: th.dtype = th.float32) -> th.Tensor:
        """The critic's input for joint actions: one-hot per categorical choice, the bit per bit.

        :param actions: option indices, shape ``(..., n_choices)``
        :param dtype: the floating dtype of the result
        :return: shape ``(..., width)``
        """
        if self.binary:
            return actions.to(dtype)
        return self._flatten(
            [
                F.one_hot(chosen, options).to(dtype)
                for chosen, (_, options) in zip(self._split_actions(actions), self.runs, strict=True)
            ]
        )

    def joint_actions(
        self, device: th.device | str | None = None, limit: int = MAX_ENUMERATED_ACTIONS
    ) -> th.Tensor:
        """Every joint action, the first choice varying slowest (the order of ``itertools.product``).

        :param device: the device of the result
        :param limit: the largest number of joint actions accepted
        :return: option indices, shape ``(n_joint_actions, n_choices)``
        """
        if self.n_joint_actions > limit:
            raise ValueError(
                f"the joint action space has {self.n_joint_actions} actions (choices of sizes "
                f"{list(self.sizes)}), more than the {limit} that are enumerated"
            )
        grids = th.meshgrid(*(th.arange(size, device=device) for size in self.sizes), indexing="ij")
        return th.stack(grids, dim=-1).reshape(-1, len(self.sizes))

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
        """Relaxed joint actions whose gradient w.r.t. ``logits`` is a relaxed estimator's, choice by choice.

        - ``"gumbel_softmax"``: ``softmax((l_m + G) / tau)`` per choice (Jang, Gu and Poole, 2017; Maddison,
          Mnih and Teh, 2017), the binary concrete ``sigmoid((l + L) / tau)`` per bit (Maddison et al., 2017,
          Sec. 3.3, :func:`rlrelax.relax.relaxed_bernoulli`);
        - ``"straight_through"``: the exact one-hot (or bit) of the same draw, with the relaxed gradient
          (Bengio, Léonard and Courville, 2013);
        - ``"gumbel_rao"``: the exact one-hot of a draw, with the relaxed gradient averaged over
          ``n_rao_samples`` Gumbels conditioned on that draw (Paulus, Maddison and Krause, 2021), per choice;
          a bit as the two-option choice ``(0, l)``, of which the binary concrete is the Gumbel-softmax.

        The choices are relaxed independently, with independent noise.

        :param logits: shape ``(*batch, width)``
        :param estimator: one of ``"gumbel_softmax"``, ``"straight_through"``, ``"gumbel_rao"``
        :param n_samples: draws per batch element
        :param tau: the relaxation's temperature > 0
        :param n_rao_samples: conditional Gumbel draws per sample for ``"gumbel_rao"``
        :param generator: source of randomness (``None``: the global torch RNG)
        :return: encoded relaxed joint actions, shape ``(n_samples, *batch, width)``
        """
        if estimator not in _RELAXED:
            raise ValueError(f"estimator must be one of {_RELAXED}, got {estimator!r}")
        if estimator != "gumbel_rao":
            hard = estimator == "straight_through"
            if self.binary:
                return relaxed_bernoulli(
                    logits.expand(n_samples, *logits.shape), tau, hard=hard, generator=generator
                )
            return self._flatten(
                [
                    gumbel_softmax(run.expand(n_samples, *run.shape), tau, hard=hard, generator=generator)
                    for run in self.choice_logits(logits)
                ]
            )
        draws = self._split_actions(self.sample(logits, n_samples, generator))
        relaxed = []
        for run, chosen in zip(self.choice_logits(logits), draws, strict=True):
            one_hot = F.one_hot(chosen, run.shape[-1]).to(run.dtype)
            expanded = run.expand(n_samples, *run.shape)
            relaxed.append(gumbel_rao_straight_through(expanded, one_hot, tau, n_rao_samples, generator))
        return self._flatten(relaxed)

    def surrogate(
        self,
        logits: th.Tensor,
        f: Callable[[th.Tensor], th.Tensor],
        estimator: str,
        *,
        n_samples: int,
        tau: float,
        n_rao_samples: int,
        generator: th.Generator | None = None,
    ) -> th.Tensor:
        """A scalar whose gradient w.r.t. ``logits`` estimates ``∇ Σ_batch E_{a~π}[f(a)]``, ``π`` factorised.

        The counterpart for several choices of the estimators in :data:`rlrelax.estimators.ESTIMATORS`:

        - the relaxed ones evaluate ``f`` at :meth:`relaxed_actions`, averaged over the samples;
        - ``"score_function"``: ``(f(a) - b) ∇ log π(a|s)`` at joint samples, ``log π`` the sum over the
          choices, with the leave-one-out baseline ``b`` over the ``n_samples >= 2`` draws (Kool, van Hoof and
          Welling, 2019), which keeps it unbiased; DiCE's form (Foerster et al., 2018), as
          :func:`rlrelax.estimators.score_function_estimator`;
        - ``"exact"``: ``Σ_a π(a|s) f(a)`` over every joint action, up to :data:`MAX_ENUMERATED_ACTIONS`.

        :param logits: shape ``(*batch, width)``
        :param f: maps encoded (or relaxed) joint actions ``(n, *batch, width)`` to values ``(n, *batch)``
        :param estimator: one of the names above
        :param n_samples: draws per batch element (ignored by ``"exact"``)
        :param tau: the relaxation's temperature > 0 (relaxed estimators only)
        :param n_rao_samples: conditional Gumbel draws per sample for ``"gumbel_rao"``
        :param generator: source of randomness (``None``: the global torch RNG)
        :return: a scalar: the estimate of ``Σ_batch E[f]`` in value, the estimator's gradient
        """
        if estimator in _RELAXED:
            relaxed = self.relaxed_actions(
                logits,
                estimator,
                n_samples=n_samples,
                tau=tau,
                n_rao_samples=n_rao_samples,
                generator=generator,
            )
            return f(relaxed).sum() / n_samples
        if estimator == "score_function":
            actions = self.sample(logits, n_samples, generator)
            values = f(self.encode(actions, logits.dtype))
            log_probs = self.log_prob(logits, actions)
            advantages = values - leave_one_out_baseline(values)
            return (
                score_function_surrogate(log_probs - log_probs.detach(), advantages) + values.sum()
            ) / n_samples
        if estimator == "exact":
            actions = self.joint_actions(logits.device)
            batch_shape = logits.shape[:-1]
            joint = actions.reshape(-1, *(1,) * len(batch_shape), actions.shape[-1])
            joint = joint.expand(-1, *batch_shape, -1)
            return (self.log_prob(logits, joint).exp() * f(self.encode(joint, logits.dtype))).sum()
        raise ValueError(
            f"estimator must be one of {(*_RELAXED, 'score_function', 'exact')}, got {estimator!r}"
        )

    @th.no_grad()
    def soft_value(
        self,
        logits: th.Tensor,
        q_values: Callable[[th.Tensor], th.Tensor],
        ent_coef: float,
        n_samples: int,
    ) -> th.Tensor:
        """The soft value ``V(s) = E_{a~π(·|s)}[Q(s, a) - alpha log π(a|s)]`` of the policy (Haarnoja et al.,
        2018, eq. 3).

        Exact, by enumeration, for up to :data:`MAX_ENUMERATED_NEXT_ACTIONS` joint actions; beyond, the mean
        over ``n_samples`` joint actions drawn from the policy (from the global torch RNG), an unbiased
        estimate.

        :param logits: the policy's logits, shape ``(batch, width)``
        :param q_values: maps encoded joint actions ``(n, batch, width)`` to values ``(n, batch)``
        :param ent_coef: the temperature alpha
        :param n_samples: draws per state when the joint space is not enumerated
        :return: shape ``(batch, 1)``
        """
        if self.n_joint_actions <= MAX_ENUMERATED_NEXT_ACTIONS:
            actions = self.joint_actions(logits.device).unsqueeze(1).expand(-1, logits.shape[0], -1)
            log_probs = self.log_prob(logits, actions)
            weights = log_probs.exp()
        else:
            actions = self.sample(logits, n_samples)
            log_probs = self.log_prob(logits, actions)
            weights = th.full_like(log_probs, 1.0 / n_samples)
        values = q_values(self.encode(actions, logits.dtype)) - ent_coef * log_probs
        return (weights * values).sum(dim=0).unsqueeze(-1)
