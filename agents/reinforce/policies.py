"""Policies for :class:`~rlrelax.agents.reinforce.REINFORCE`, and RELAX's action-dependent control variate.

REINFORCE uses SB3's :class:`~stable_baselines3.common.policies.ActorCriticPolicy` unchanged: the actor
gives the categorical policy, and the value head (a separate network under SB3's default ``net_arch``)
is trained only when ``baseline="value"``, where it serves as the state-value baseline, never to
bootstrap a return. With ``baseline="relax"`` the baseline is :class:`ActionControlVariate` instead.
:class:`TopKPolicy` is the same policy with a Plackett-Luce head, for slates of distinct items.
"""

from collections.abc import Sequence

import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.preprocessing import get_flattened_obs_dim, preprocess_obs
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

from rlrelax._validation import check_int
from rlrelax.agents.common import PlackettLuceDistribution, check_topk_action_space
from rlrelax.estimators.rebar import concrete_relaxation
from rlrelax.relax._validation import check_tau

MlpPolicy = ActorCriticPolicy


class TopKPolicy(ActorCriticPolicy):
    """
    SB3's ``ActorCriticPolicy`` with a Plackett-Luce head: a slate of ``k`` distinct items out of ``N``.

    For an action space ``MultiDiscrete([N] * k)``, ``k <= N`` (anything else is a ``ValueError`` naming the
    space), the actor has one logit per item, ``N`` outputs instead of the ``k * N`` of SB3's factorised
    ``MultiDiscrete`` head, and the policy is :class:`~rlrelax.agents.common.PlackettLuceDistribution`:
    slates drawn by Gumbel-top-k, ordered and without repeats, scored by their Plackett-Luce log-probability
    (Kool, van Hoof and Welling, 2019, "Stochastic Beams and Where to Find Them: The Gumbel-Top-k Trick for
    Sampling Sequences Without Replacement"; its score function is REINFORCE's gradient, as in their "Buy 4
    REINFORCE Samples, Get a Baseline for Free!"). The entropy it reports, and that ``ent_coef`` rewards, is
    the first draw's (a lower bound of the slate's); ``predict(deterministic=True)`` gives the ``k``
    highest-logit items, highest first. Everything else (networks, value head, initialisation, optimizer,
    saving) is SB3's.

    Selected by name: ``REINFORCE("TopKPolicy", env)``.

    :param observation_space: the observation space
    :param action_space: the slate space ``MultiDiscrete([N] * k)``
    :param lr_schedule: the learning-rate schedule
    :param kwargs: ``ActorCriticPolicy``'s other arguments (``net_arch``, ``activation_fn``, ...); ``use_sde``
        does not apply to a discrete policy
    """

    def _build(self, lr_schedule: Schedule) -> None:
        # SB3's constructor has chosen a distribution for the space (a categorical per slot); the slate's
        # replaces it before SB3's _build creates the action head from it.
        self.action_dist = PlackettLuceDistribution(*check_topk_action_space(self.action_space, "TopKPolicy"))
        super()._build(lr_schedule)


class ActionControlVariate(nn.Module):
    """RELAX's control variate for a policy gradient: ``c_φ(z, s)``, a function of the state and of the
    Concrete relaxation ``softmax(z / τ)`` of the Gumbel-max sample ``z`` that drew the action.

    Grathwohl, Choi, Wu, Roeder and Duvenaud (2018), "Backpropagation through the Void: Optimizing control
    variates for black-box gradient estimation", section 3.3 and their discrete actor-critic code: an MLP
    of the observation concatenated with the relaxed action, its temperature learned, trained only to
    minimise the variance of the policy-gradient estimate (no regression on returns). The output layer
    starts at zero, so an untrained ``c_φ`` is zero and the estimate starts as REINFORCE without a baseline.

    :param observation_space: the environment's observation space (flattened after SB3's preprocessing)
    :param n_actions: the number of actions ``K``
    :param net_arch: the hidden layers' widths (tanh activations, as SB3's ``ActorCriticPolicy``)
    :param tau: the relaxation's initial temperature, above 0 (learned as ``log_tau``)
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        n_actions: int,
        net_arch: Sequence[int] = (64, 64),
        tau: float = 1.0,
    ) -> None:
        super().__init__()
        check_int(n_actions, "n_actions", minimum=2)
        for width in net_arch:
            check_int(width, "net_arch entries", minimum=1)
        self.observation_space = observation_space
        self.log_tau = nn.Parameter(th.tensor(check_tau(tau)).log())
        layers: list[nn.Module] = []
        width_in = get_flattened_obs_dim(observation_space) + n_actions
        for width in net_arch:
            layers += [nn.Linear(width_in, width), nn.Tanh()]
            width_in = width
        output = nn.Linear(width_in, 1)
        nn.init.zeros_(output.weight)
        nn.init.zeros_(output.bias)
        self.network = nn.Sequential(*layers, output)

    def forward(self, observations: th.Tensor, perturbed: th.Tensor) -> th.Tensor:
        """``c_φ(z, s)``.

        :param observations: raw observations ``(batch, *obs_shape)``, as the policy takes them
        :param perturbed: Gumbel-perturbed log-probabilities ``z`` of the actions, ``(batch, K)``
        :return: ``(batch,)``
        """
        features = preprocess_obs(observations, self.observation_space)
        # REINFORCE refuses Dict observation spaces, the one case where preprocessing returns a dict.
        assert isinstance(features, th.Tensor)
        features = features.float().flatten(start_dim=1)
        relaxed = concrete_relaxation(perturbed, self.log_tau)
        return self.network(th.cat([features, relaxed], dim=-1)).squeeze(-1)


__all__ = ["ActionControlVariate", "MlpPolicy", "TopKPolicy"]
