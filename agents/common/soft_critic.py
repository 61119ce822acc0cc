"""The soft critic that SoftQ and GumbelAC share: soft value, soft Bellman target and the temperature alpha.

Both agents regress a critic on the same target (soft Q-learning's backup with M-DQN's Munchausen reward)
and parse the entropy coefficient alpha the same way; this module holds that logic once.
"""

import math
from collections.abc import Callable, Sequence

import torch as th
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from torch.nn import functional as F

from rlrelax._validation import check_finite_number, check_positive
from rlrelax.relax import LinearSchedule, log_softmax, softmax

#: The default learning rate of the soft critics (and of GumbelAC's actor), decayed linearly to 0 over
#: ``learn`` so that the final greedy policy does not drift away from a solution it has found
#: (experiments/tuning/softq.md).
SOFT_CRITIC_LEARNING_RATE = LinearSchedule(2e-3, 0.0)

#: ``target_entropy="auto"`` is this fraction of the maximum entropy log|A|. The paper's 0.98 asks a
#: two-action policy to stay almost uniform, and alpha grows without bound chasing it
#: (experiments/tuning/softq.md); 0.3 can be met by a nearly greedy policy with a bounded alpha.
AUTO_TARGET_ENTROPY_FRACTION = 0.3

_ENT_COEF_FORMS = "a number > 0, 'auto' or 'auto_<initial alpha > 0>'"


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


def split_choices(outputs: th.Tensor, choice_sizes: Sequence[int]) -> tuple[th.Tensor, list[th.Tensor]]:
    """Split a factorised critic's outputs ``[V(s) | A_1(s, ·) | ... | A_M(s, ·)]`` into its parts.

    A factorised (action-branching) critic values a joint action of M choices as
    ``Q(s, a) = V(s) + Σ_m A_m(s, a_m)`` (Tavakoli, Pardo and Kormushev, 2018, "Action Branching
    Architectures for Deep Reinforcement Learning"), so one forward pass gives every joint action's value
    with ``1 + Σ_m |A_m|`` outputs instead of ``Π_m |A_m|``.

    :param outputs: the critic's outputs, shape ``(batch, 1 + Σ_m |A_m|)``
    :param choice_sizes: the number of options ``|A_m|`` of each choice
    :return: ``V``, shape ``(batch, 1)``, and each choice's ``A_m``, shape ``(batch, |A_m|)``
    """
    value, *advantages = outputs.split([1, *choice_sizes], dim=-1)
    return value, advantages


def action_value(
    outputs: th.Tensor, actions: th.Tensor, choice_sizes: Sequence[int] | None = None
) -> th.Tensor:
    """The critic's value ``Q(s, a)`` of the actions taken.

    :param outputs: ``Q(s, ·)``, shape ``(batch, |A|)``, or a factorised critic's outputs
        (:func:`split_choices`)
    :param actions: the actions, shape ``(batch, 1)`` (indices), or ``(batch, M)`` for M choices
    :param choice_sizes: ``None`` for one choice, else the options of each choice
    :return: ``Q(s, a)``, shape ``(batch, 1)``
    """
    if choice_sizes is None:
        return outputs.gather(1, actions.long())
    value, advantages = split_choices(outputs, choice_sizes)
    return value + sum(
        (advantage.gather(1, actions[:, m : m + 1].long()) for m, advantage in enumerate(advantages)),
        th.zeros_like(value),
    )


def state_soft_value(
    outputs: th.Tensor, ent_coef: float, choice_sizes: Sequence[int] | None = None
) -> th.Tensor:
    """The soft value ``V(s) = alpha·log Σ_a exp(Q(s, a)/alpha)`` over every (joint) action.

    Under a factorised critic the sum over joint actions factorises too, so the value stays exact:
    ``V(s) + Σ_m alpha·logsumexp(A_m(s, ·)/alpha)``, and the Boltzmann policy is a product of one softmax
    per choice.

    :param outputs: ``Q(s, ·)``, shape ``(batch, |A|)``, or a factorised critic's outputs
        (:func:`split_choices`)
    :param ent_coef: the temperature alpha > 0
    :param choice_sizes: ``None`` for one choice, else the options of each choice
    :return: the soft values, shape ``(batch, 1)``
    """
    if choice_sizes is None:
        return soft_value(outputs, ent_coef)
    value, advantages = split_choices(outputs, choice_sizes)
    return value + sum((soft_value(advantage, ent_coef) for advantage in advantages), th.zeros_like(value))


def boltzmann_entropy(
    outputs: th.Tensor, ent_coef: float, choice_sizes: Sequence[int] | None = None
) -> th.Tensor:
    """The mean entropy over the batch of the Boltzmann policy ``softmax(Q(s, ·)/alpha)``, in nats.

    For a factorised critic the policy is a product of one softmax per choice, whose entropies add up.

    :param outputs: ``Q(s, ·)``, shape ``(batch, |A|)``, or a factorised critic's outputs
        (:func:`split_choices`)
    :param ent_coef: the temperature alpha > 0
    :param choice_sizes: ``None`` for one choice, else the options of each choice
    :return: a scalar
    """
    per_choice = [outputs] if choice_sizes is None else split_choices(outputs, choice_sizes)[1]
    entropies = [
        -(softmax(values, tau=ent_coef) * log_softmax(values, tau=ent_coef)).sum(dim=1)
        for values in per_choice
    ]
    return th.stack(entropies).sum(dim=0).mean()


@th.no_grad()
def soft_bellman_target(
    replay_data: ReplayBufferSamples,
    target_q_values: Callable[[th.Tensor], th.Tensor],
    *,
    ent_coef: float,
    gamma: float,
    munchausen_coef: float,
    munchausen_clip: float,
    policy_logits: Callable[[th.Tensor], th.Tensor] | None = None,
    choice_sizes: Sequence[int] | None = None,
) -> th.Tensor:
    """The regression target ``y = r + m·[alpha·ln π(a|s)]_{l0}^0 + gamma·(1 - d)·V(s')`` of a soft critic.

    The soft Bellman backup of soft Q-learning (Haarnoja et al. 2017) with the Munchausen reward of M-DQN
    (Vieillard et al. 2020, whose τ is alpha here) when ``munchausen_coef > 0``. The policy π is

    - the Boltzmann policy ``softmax(Q̄/alpha)`` of the target critic when ``policy_logits`` is ``None``:
      ``V(s') = alpha·logsumexp(Q̄(s', ·)/alpha)`` and ``alpha·ln π(a|s) = Q̄(s, a) - V(s)``, exact with
      nothing divided by alpha (M-DQN's ``Σ π(Q - alpha ln π)`` is this same soft value);
    - the actor ``softmax(policy_logits(s))`` otherwise: ``V(s') = Σ_a π(a|s')[Q̄(s', a) - alpha ln π(a|s')]``,
      discrete SAC's target (Christodoulou 2019, Sec. 4; Haarnoja et al. 2018, eq. 3).

    With the Munchausen term on, the network that gives ``ln π(a|s)`` (the target critic or the actor) sees
    the observations and the next observations in one pass (:func:`current_and_next`).

    :param replay_data: a replay batch (with n-step ``rewards`` and ``discounts`` when the buffer has them)
    :param target_q_values: maps observations ``(batch, *obs_shape)`` to target Q-values ``(batch, |A|)``
    :param ent_coef: the temperature alpha > 0
    :param gamma: the discount, used when the batch carries no ``discounts``
    :param munchausen_coef: the Munchausen scaling m (0: off)
    :param munchausen_clip: the lower clipping bound l0 < 0 of ``alpha·ln π``
    :param policy_logits: maps observations to the actor's logits ``(batch, |A|)``; ``None`` for the Boltzmann
        policy of the target critic
    :param choice_sizes: for a factorised critic (:func:`split_choices`) of several choices, the options of
        each; its Boltzmann policy is then one softmax per choice, and ``policy_logits`` must be ``None``
    :return: the targets, shape ``(batch, 1)``
    """
    if choice_sizes is not None and policy_logits is not None:
        raise ValueError(
            "a factorised critic (choice_sizes) takes the Boltzmann next value: pass no policy_logits"
        )
    munchausen = munchausen_coef > 0.0
    # The target critic's values of the observations are read only for the Boltzmann policy's Munchausen
    # term; the actor's term reads the actor's logits instead.
    q, next_q = current_and_next(replay_data, target_q_values, munchausen and policy_logits is None)
    scaled_log_pi = None
    if policy_logits is None:
        next_values = state_soft_value(next_q, ent_coef, choice_sizes)
        if q is not None:
            # alpha·ln π(a|s) = Q(s, a) - V(s), one sum over the choices for a factorised critic.
            scaled_log_pi = action_value(q, replay_data.actions, choice_sizes) - state_soft_value(
                q, ent_coef, choice_sizes
            )
    else:
        log_pi, next_log_pi = (
            None if logits is None else F.log_softmax(logits, dim=-1)
            for logits in current_and_next(replay_data, policy_logits, munchausen)
        )
        assert next_log_pi is not None
        next_values = (next_log_pi.exp() * (next_q - ent_coef * next_log_pi)).sum(dim=-1, keepdim=True)
        if log_pi is not None:
            scaled_log_pi = ent_coef * log_pi.gather(1, replay_data.actions.long())
    return soft_bellman_backup(
        replay_data,
        next_values,
        scaled_log_pi,
        gamma=gamma,
        munchausen_coef=munchausen_coef,
        munchausen_clip=munchausen_clip,
    )


def current_and_next(
    replay_data: ReplayBufferSamples, network: Callable[[th.Tensor], th.Tensor], both: bool
) -> tuple[th.Tensor | None, th.Tensor]:
    """A network's outputs on a replay batch's next observations, and on its observations if ``both``.

    Both in one pass: on a CPU each pass of these small networks costs mostly its per-call overhead.

    :param replay_data: a replay batch
    :param network: maps observations ``(batch, *obs_shape)`` to outputs ``(batch, ...)``
    :param both: whether the outputs on the observations are needed too (for the Munchausen term)
    :return: the outputs on the observations (``None`` unless ``both``) and on the next observations
    """
    observations, next_observations = replay_data.observations, replay_data.next_observations
    if not both:
        return None, network(next_observations)
    outputs = network(th.cat([observations, next_observations]))
    return outputs[: observations.shape[0]], outputs[observations.shape[0] :]


def soft_bellman_backup(
    replay_data: ReplayBufferSamples,
    next_values: th.Tensor,
    scaled_log_pi: th.Tensor | None,
    *,
    gamma: float,
    munchausen_coef: float,
    munchausen_clip: float,
) -> th.Tensor:
    """``y = r + m·[alpha·ln π(a|s)]_{l0}^0 + gamma·(1 - d)·V(s')`` from the next values and the log-policy.

    The last step of :func:`soft_bellman_target`, for agents that estimate ``V(s')`` and ``alpha·ln π(a|s)``
    their own way (GumbelAC on several choices, whose critic reads the joint action).

    :param replay_data: a replay batch (with n-step ``rewards`` and ``discounts`` when the buffer has them)
    :param next_values: ``V(s')``, shape ``(batch, 1)``
    :param scaled_log_pi: ``alpha·ln π(a|s)`` of the actions taken, shape ``(batch, 1)``; ``None`` without
        the Munchausen term
    :param gamma: the discount, used when the batch carries no ``discounts``
    :param munchausen_coef: the Munchausen scaling m
    :param munchausen_clip: the lower clipping bound l0 < 0 of ``alpha·ln π``
    :return: the targets, shape ``(batch, 1)``
    """
    discounts = replay_data.discounts if replay_data.discounts is not None else gamma
    rewards = replay_data.rewards
    if scaled_log_pi is not None:
        rewards = rewards + munchausen_coef * scaled_log_pi.clamp(munchausen_clip, 0.0)
    return rewards + (1 - replay_data.dones) * discounts * next_values


def parse_ent_coef(ent_coef: object) -> tuple[bool, float]:
    """Split the entropy coefficient argument into (learnt?, initial alpha).

    :param ent_coef: a number > 0, ``"auto"`` (learnt, starting at 1) or ``"auto_<x>"`` (learnt, from x)
    :return: whether alpha is learnt, and its initial value
    """
    if isinstance(ent_coef, str):
        if ent_coef == "auto":
            return True, 1.0
        head, _, initial = ent_coef.partition("_")
        try:
            value = float(initial)
        except ValueError:
            value = math.nan
        if head != "auto" or not (math.isfinite(value) and value > 0.0):
            raise ValueError(f"ent_coef must be {_ENT_COEF_FORMS}, got {ent_coef!r}")
        return True, value
    if isinstance(ent_coef, bool) or not isinstance(ent_coef, int | float):
        raise TypeError(
            f"ent_coef must be {_ENT_COEF_FORMS}, got {ent_coef!r} of type {type(ent_coef).__name__}"
        )
    return False, check_positive(ent_coef, "ent_coef")


def check_target_entropy(target_entropy: object) -> None:
    """Check the ``target_entropy`` argument's form before the action space is known.

    :param target_entropy: ``"auto"`` or a finite number of nats
    """
    if isinstance(target_entropy, str):
        if target_entropy != "auto":
            raise ValueError(f"target_entropy must be 'auto' or a finite number, got {target_entropy!r}")
    else:
        check_finite_number(target_entropy, "target_entropy")


def resolve_target_entropy(target_entropy: float | str, n_actions: int, ent_coef_auto: bool) -> float:
    """The entropy target in nats, checked against the maximum entropy log|A|.

    :param target_entropy: ``"auto"`` (:data:`AUTO_TARGET_ENTROPY_FRACTION` of log|A|) or a number strictly
        between 0 and log|A|
    :param n_actions: |A|
    :param ent_coef_auto: whether alpha is learnt (with a single action, "auto" has no valid target)
    :return: the target entropy
    """
    check_target_entropy(target_entropy)
    max_entropy = math.log(n_actions)
    is_auto = isinstance(target_entropy, str)
    value = AUTO_TARGET_ENTROPY_FRACTION * max_entropy if is_auto else float(target_entropy)
    # A target outside (0, log|A|) is unreachable: alpha would run off to 0 or to infinity.
    if (ent_coef_auto or not is_auto) and not 0.0 < value < max_entropy:
        raise ValueError(
            f"target_entropy must lie strictly between 0 and log|A| = {max_entropy:.4f} (|A| = {n_actions}), "
            f"got {target_entropy!r}"
        )
    return value


def ent_coef_loss(log_ent_coef: th.Tensor, entropy: th.Tensor, target_entropy: float) -> th.Tensor:
    """The temperature loss ``J(alpha) = E_s[alpha·(H(π(·|s)) - H̄)]``, in log alpha.

    Haarnoja et al. (2018), eq. 18, with the exact discrete entropy as in Christodoulou (2019); through
    log alpha as SB3's SAC does, so alpha stays positive: alpha falls while the entropy is above the target.

    :param log_ent_coef: the learnt log alpha (one element)
    :param entropy: the policy's mean entropy over the batch, detached (a scalar)
    :param target_entropy: the target H̄ in nats
    :return: the scalar loss
    """
    return (log_ent_coef * (entropy - target_entropy)).mean()
