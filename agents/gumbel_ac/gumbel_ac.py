"""GumbelAC: an off-policy actor-critic for discrete actions with a selectable actor-gradient estimator."""

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, ReplayBufferSamples, Schedule
from stable_baselines3.common.utils import get_parameters_by_name, polyak_update
from torch.nn import functional as F

from rlrelax.agents.common import (
    ActorGradientDraws,
    flat_gradient,
    replay_observations,
    require_discrete_action_space,
    require_munchausen,
    require_non_negative,
    require_positive,
    soft_value,
)
from rlrelax.agents.gumbel_ac.policies import CRITIC_INPUTS, Actor, DiscreteCritic, GumbelACPolicy, MlpPolicy
from rlrelax.estimators import ESTIMATORS, score_function_surrogate
from rlrelax.relax import LinearSchedule

SelfGumbelAC = TypeVar("SelfGumbelAC", bound="GumbelAC")

# Agent-facing estimator names -> keys of rlrelax.estimators.ESTIMATORS. "score_function" is None because the
# agent uses the critic's state value as its baseline, which is not one of the estimator's own baselines.
_ESTIMATOR_KEYS: dict[str, str | None] = {
    "gumbel_softmax": "gumbel_softmax",
    "straight_through": "straight_through",
    "gumbel_rao": "gumbel_rao",
    "expected": "exact",
    "score_function": None,
}
ESTIMATOR_NAMES: tuple[str, ...] = tuple(_ESTIMATOR_KEYS)
_RELAXED_ESTIMATORS = ("gumbel_softmax", "straight_through", "gumbel_rao")
NEXT_VALUES: tuple[str, ...] = ("boltzmann", "policy")

TemperatureSchedule = Callable[[float], float]

DEFAULT_LEARNING_RATE = LinearSchedule(2e-3, 0.0)


class GumbelAC(OffPolicyAlgorithm):
    """
    Gumbel actor-critic: discrete soft actor-critic whose actor gradient comes from ``rlrelax.estimators``.

    The critics are twin networks ``Q_i(s, ·)`` with Polyak-averaged targets ``Q̄_i``, as in discrete SAC
    (Christodoulou, 2019, "Soft Actor-Critic for Discrete Action Settings"; Haarnoja et al., 2018, "Soft
    Actor-Critic Algorithms and Applications"), trained on a clipped soft Bellman target
    ``r + gamma (1-d) V(s')`` whose soft value ``next_value`` selects:

    - ``"boltzmann"`` (default): ``V(s') = alpha logsumexp(min_i Q̄_i(s', ·)/alpha)``, the value of the
      Boltzmann policy ``softmax(Q̄/alpha)`` that the actor is trained towards: soft Q-learning's backup
      (Haarnoja et al., 2017, "Reinforcement Learning with Deep Energy-Based Policies", which also trains
      an amortised actor on its critic). The critic then never waits for the actor to catch up with it;
    - ``"policy"``: ``V(s') = Σ_a π(a|s')[min_i Q̄_i(s', a) - alpha log π(a|s')]`` under the actor, discrete
      SAC's target. In tuning runs on CartPole-v1 it left seeds with a deterministic policy that drifts off
      the track (final returns 210 and 418 on seeds where ``"boltzmann"`` ended at 500).

    Both are exact expectations over the next actions, and they agree when the actor is the Boltzmann
    policy. The actor minimises ``E_s[alpha Σ_a π log π - E_{a~π} f_s(a)]``: the entropy term is
    computed exactly, and the gradient of ``E_{a~π} f_s(a)``, the critic's value of the actor's action,
    comes from the chosen ``estimator``:

    - ``"gumbel_softmax"``: the relaxed action ``softmax((logits + G)/temperature)`` flows into the critic, a
      reparameterised actor (Jang et al., 2017, "Categorical Reparameterization with Gumbel-Softmax";
      Maddison et al., 2017, "The Concrete Distribution");
    - ``"straight_through"``: a one-hot sample forward, the relaxed sample's gradient backward;
    - ``"gumbel_rao"``: straight-through with the backward pass averaged over Gumbels conditioned on the
      sampled action (Paulus et al., 2021, "Rao-Blackwellizing the Straight-Through Gumbel-Softmax
      Gradient Estimator");
    - ``"expected"``: the exact expectation over the actions, discrete SAC's actor loss (Christodoulou, 2019);
    - ``"score_function"``: the likelihood ratio ``∇ log π(a|s) (f_s(a) - V(s))`` with the critic's state
      value ``V(s) = Σ_a π(a|s) f_s(e_a)`` as baseline (Williams, 1992, "Simple Statistical Gradient-Following
      Algorithms for Connectionist Reinforcement Learning").

    **How a relaxed action enters the critic** (``critic_input``) decides what the pathwise gradient means.

    - ``"mixture"`` (default): the critic outputs ``Q(s, ·)`` and a relaxed action ``a`` in the simplex is
      valued as ``f_s(a) = Σ_k a_k min_i Q_i(s, k)``. This is the critic's exact value on one-hot actions, so
      the critic is never queried where it was not trained, and ``f_s`` is linear in ``a``: the pathwise
      gradient is ``E_G[∂a/∂logits]ᵀ Q(s, ·)``, a noisy version of the exact gradient
      ``(∂π/∂logits)ᵀ Q(s, ·)`` with the Jacobian of the softmax replaced by the expected Jacobian of the
      relaxed sample. That swap is the whole bias (for two actions it only rescales each state's gradient and
      never flips its sign); it vanishes as ``temperature`` falls while the variance grows. Because ``f_s`` is
      linear, ``"gumbel_softmax"`` and ``"straight_through"`` give the same gradient from the same Gumbels,
      so their training runs are identical; they differ under ``"concat"``.
    - ``"concat"``: each critic network reads ``[features, a]`` and outputs ``Q(s, a)``, as SAC's critic does
      for continuous actions. The pathwise gradient is then ``∂Q(s, a)/∂a`` at a relaxed point off the simplex
      vertices, where the critic was never trained (the replay buffer holds one-hot actions): the gradient
      follows whatever the network interpolates between the vertices, as in Jang et al.'s and Maddison et
      al.'s relaxed objectives. The critic target and the baseline enumerate the ``K`` one-hot actions.

    Only the actor's optimiser steps on the actor loss; the critic's parameters take no gradient from it.
    ``train/actor_loss`` logs the exact soft actor objective ``E_s[Σ_a π (alpha log π - min_i Q_i)]``,
    whatever the estimator, so that runs with different estimators are comparable (the estimators' surrogates
    have estimator-specific values).

    Supported action spaces: ``spaces.Discrete`` only; any other space is a ``ValueError``.

    **Munchausen term** (``munchausen_coef``, on by default): the critic's reward becomes
    ``r + m [alpha log π(a|s)]_{l0}^0`` for the stored action, M-DQN's regression target (Vieillard et al.,
    2020, "Munchausen Reinforcement Learning"), with the policy the next value uses: the Boltzmann policy
    (``alpha log π = Q̄(s, a) - V(s)``, exactly M-DQN's term) or the actor (bounded as Iwaki, 2025, "Mirror
    Descent Actor Critic via Bounded Advantage Learning", find beneficial). It regularises each policy
    towards the previous one (a KL term) and widens the critic's action gaps.

    **Logit penalty** (``logit_penalty``, on by default): the actor loss gains ``lambda E_s[Σ_k (l_k(s) -
    mean_k l(s))²]`` on the actor's logits ``l``. The soft optimum ``softmax(Q/alpha)`` is almost
    deterministic wherever the critic's action gap is large next to alpha (with the Munchausen term, gaps of
    5-8 against alpha = 0.03 on CartPole-v1), and there every estimator's gradient carries the factor
    ``π(1 - π)`` of the saturated softmax: when the critic changes its mind in such a state, the actor
    cannot follow, and the entropy bonus, whose gradient vanishes the same way, does not pull it back. An
    actor that collapsed onto one action at the start never saw the other again (4 of 10 seeds ended at a
    return of 9 without the penalty, in the tuning runs below). The penalty's gradient does not vanish: it
    keeps the logit gap finite (a median of about 7 with ``lambda=0.003`` in a tuning run), so a state
    that the critic re-values is re-learned.

    The defaults target ``GumbelAC("MlpPolicy", "CartPole-v1").learn(50_000)`` (N = 50,000 steps; the
    CartPole comparison and ``experiments/validate_gumbel_ac.py`` give the per-seed results) and are shared
    by every estimator. The critic is trained much as :class:`rlrelax.agents.SoftQ`'s Q-network: the
    Boltzmann next value, a fixed ``ent_coef=0.03`` with the Munchausen term (l0 = -1), the Huber loss with
    gradients clipped to norm 10, Adam at 2e-3 decayed linearly to 0 over ``learn``, batches of 128, one
    gradient step every 4 env steps and Polyak ``tau=0.02`` per gradient step (SoftQ's 0.005 per env step),
    with a [128, 128] critic and a [64, 64] actor. It differs in the discount, ``gamma=0.995``, and the
    Munchausen scaling, ``munchausen_coef=0.5``. Tuning runs (seeds 0-9):

    - with SoftQ's ``gamma=0.99`` and ``munchausen_coef=0.9``, 8 of 10 seeds with ``"gumbel_softmax"`` and
      ``"expected"``, 7 with ``"gumbel_rao"``. Most failures stalled at returns of 100-250. In the one
      examined (``"gumbel_softmax"``, seed 5) the cart drifted off the track (a return of about 110, ending
      at ``|x| = 2.4``), and so did a policy acting greedily on the critics: the critic did not value the
      drift;
    - ``gamma=0.995`` (the longer horizon) solved 9, 9 and 8. ``"gumbel_rao"`` seed 7 reached 500 and then
      fell to 12 within 3,000 steps, as the critics' median action gap jumped from 0.4 to 5: the
      Munchausen term widens action gaps. ``munchausen_coef=0.5`` solved the three remaining failures;
    - without the logit penalty (measured before the twin critics were batched, so with other rounding),
      5 of 10 ``"gumbel_softmax"`` seeds, 9 with it. With ``tau=0.005`` per gradient step the target
      critics lag fourfold: even acting with the Boltzmann policy of the critics instead of the actor,
      seed 5 failed.

    ``n_samples=8`` is almost free under the mixture critic, which is evaluated once per state whatever the
    number of samples, and ``temperature=1.0`` (under the mixture critic and two actions the temperature
    only rescales each state's gradient, so no estimator needs its own). ``ent_coef="auto"`` learns alpha
    towards the target entropy ``0.3 log|A|`` (not validated at the full budget): the paper's
    ``0.98 log|A|`` asks a two-action policy to stay almost uniform, and alpha grows without bound chasing
    it.

    :param policy: The policy model to use (``"MlpPolicy"`` or a :class:`GumbelACPolicy` subclass)
    :param env: The environment to learn from (if registered in Gym, can be str)
    :param learning_rate: Learning rate for Adam (actor, critic and entropy coefficient), a float or a
        schedule of the progress remaining (from 1 to 0); 2e-3 decayed linearly to 0 by default
    :param buffer_size: Size of the replay buffer
    :param learning_starts: How many steps of uniformly random actions to collect before learning starts
    :param batch_size: Minibatch size for each gradient update
    :param tau: The soft (Polyak) update coefficient of the target critics, between 0 and 1
    :param gamma: The discount factor
    :param train_freq: Update the model every ``train_freq`` steps, or a tuple ``(frequency, unit)`` with unit
        ``"step"`` or ``"episode"``
    :param gradient_steps: How many gradient steps after each rollout; ``-1`` means as many as env steps
    :param replay_buffer_class: Replay buffer class to use; ``None`` selects it automatically
    :param replay_buffer_kwargs: Keyword arguments to pass to the replay buffer on creation
    :param optimize_memory_usage: Enable a memory efficient variant of the replay buffer
    :param n_steps: n-step returns for the critic target (SB3's ``NStepReplayBuffer``)
    :param estimator: The actor-gradient estimator, one of :data:`ESTIMATOR_NAMES`
    :param temperature: The Gumbel-softmax temperature of the relaxed estimators, a float > 0 or a schedule of
        the progress remaining (from 1 to 0) such as ``rlrelax.relax.LinearSchedule``; ignored by
        ``"expected"`` and ``"score_function"``.
    :param n_samples: Number of action samples per state for the sampling estimators
    :param n_rao_samples: Number of conditional Gumbel draws per sample for ``"gumbel_rao"``
    :param critic_input: How the critic reads an action: ``"mixture"`` or ``"concat"`` (see above)
    :param next_value: The soft value of the next state in the critic's target: ``"boltzmann"`` or
        ``"policy"`` (see above)
    :param ent_coef: Entropy regularisation coefficient alpha (a float >= 0), or ``"auto"`` to learn it
        (``"auto_0.1"`` to start it at 0.1)
    :param target_update_interval: Update the target critics every ``target_update_interval`` gradient steps
    :param target_entropy: Target entropy (nats) when learning ``ent_coef``; ``"auto"`` uses
        ``DEFAULT_TARGET_ENTROPY_FRACTION * log(n_actions)``
    :param munchausen_coef: The Munchausen scaling m (alpha in Vieillard et al. 2020); 0 turns the term off
    :param munchausen_clip: The lower bound l0 < 0 of the scaled log-policy ``alpha log π`` in the term
    :param logit_penalty: Coefficient lambda of the penalty ``lambda E_s[Σ_k (l_k(s) - mean_k l(s))²]`` on the
        actor's logits ``l`` (0 turns it off; see above)
    :param max_grad_norm: The maximum norm of the critics' gradient (clipped before each step)
    :param stats_window_size: Window size for the rollout logging
    :param tensorboard_log: The log location for tensorboard (if None, no logging)
    :param policy_kwargs: Additional arguments to be passed to the policy on creation
    :param verbose: Verbosity level: 0 no output, 1 info messages, 2 debug messages
    :param seed: Seed for the pseudo random generators
    :param device: Device (cpu, cuda, ...) on which the code should be run
    :param _init_setup_model: Whether or not to build the network at the creation of the instance
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {"MlpPolicy": MlpPolicy}

    # With two actions the paper's 0.98 log|A| asks for an almost uniform policy, and alpha grows without
    # bound chasing it; a target of 0.3 log|A| still leaves the policy near-deterministic where it must be.
    DEFAULT_TARGET_ENTROPY_FRACTION: ClassVar[float] = 0.3

    policy: GumbelACPolicy
    actor: Actor
    critic: DiscreteCritic
    critic_target: DiscreteCritic
    action_space: spaces.Discrete

    def __init__(
        self,
        policy: str | type[GumbelACPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = DEFAULT_LEARNING_RATE,
        buffer_size: int = 100_000,
        learning_starts: int = 1_000,
        batch_size: int = 128,
        tau: float = 0.02,
        gamma: float = 0.995,
        train_freq: int | tuple[int, str] = 4,
        gradient_steps: int = 1,
        replay_buffer_class: type[ReplayBuffer] | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        optimize_memory_usage: bool = False,
        n_steps: int = 1,
        estimator: str = "gumbel_softmax",
        temperature: float | TemperatureSchedule = 1.0,
        n_samples: int = 8,
        n_rao_samples: int = 10,
        critic_input: str = "mixture",
        next_value: str = "boltzmann",
        ent_coef: str | float = 0.03,
        target_update_interval: int = 1,
        target_entropy: str | float = "auto",
        munchausen_coef: float = 0.5,
        munchausen_clip: float = -1.0,
        logit_penalty: float = 0.003,
        max_grad_norm: float = 10.0,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        if estimator not in _ESTIMATOR_KEYS:
            raise ValueError(f"Unknown estimator {estimator!r}; valid estimators are {list(ESTIMATOR_NAMES)}")
        if next_value not in NEXT_VALUES:
            raise ValueError(f"next_value must be one of {list(NEXT_VALUES)}, got {next_value!r}")
        if critic_input not in CRITIC_INPUTS:
            raise ValueError(f"critic_input must be one of {list(CRITIC_INPUTS)}, got {critic_input!r}")
        _check_temperature(temperature)
        for name, count in (("n_samples", n_samples), ("n_rao_samples", n_rao_samples)):
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {count!r}")
        _check_ent_coef(ent_coef)
        require_munchausen(munchausen_coef, munchausen_clip)
        require_non_negative("logit_penalty", logit_penalty)
        require_positive("max_grad_norm", max_grad_norm)
        if target_entropy != "auto" and (
            isinstance(target_entropy, str) or not math.isfinite(float(target_entropy))
        ):
            raise ValueError(f"target_entropy must be 'auto' or a finite float, got {target_entropy!r}")
        if policy_kwargs is not None and "critic_input" in policy_kwargs:
            raise ValueError(
                "pass critic_input to GumbelAC(critic_input=...), not in policy_kwargs "
                f"(got policy_kwargs={policy_kwargs!r})"
            )

        super().__init__(
            policy,
            env,
            learning_rate,
            buffer_size,
            learning_starts,
            batch_size,
            tau,
            gamma,
            train_freq,
            gradient_steps,
            action_noise=None,
            replay_buffer_class=replay_buffer_class,
            replay_buffer_kwargs=replay_buffer_kwargs,
            optimize_memory_usage=optimize_memory_usage,
            n_steps=n_steps,
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            seed=seed,
            sde_support=False,
            supported_action_spaces=None,
            support_multi_env=True,
        )
        if self.env is not None:
            require_discrete_action_space(self.action_space, type(self).__name__)

        self.estimator = estimator
        self.temperature = temperature
        self.n_samples = n_samples
        self.n_rao_samples = n_rao_samples
        self.critic_input = critic_input
        self.next_value = next_value
        # The critic's architecture depends on it, so the policy receives it (and saves it) as a kwarg; a new
        # dict, because SB3 keeps the caller's, which may be reused for another model.
        self.policy_kwargs = {**self.policy_kwargs, "critic_input": critic_input}
        self.ent_coef = ent_coef
        self.target_entropy = target_entropy
        self.target_update_interval = target_update_interval
        self.munchausen_coef = munchausen_coef
        self.munchausen_clip = munchausen_clip
        self.logit_penalty = logit_penalty
        self.max_grad_norm = max_grad_norm
        self.log_ent_coef: th.Tensor | None = None
        self.ent_coef_optimizer: th.optim.Adam | None = None

        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        super()._setup_model()
        self._create_aliases()
        self.batch_norm_stats = get_parameters_by_name(self.critic, ["running_"])
        self.batch_norm_stats_target = get_parameters_by_name(self.critic_target, ["running_"])
        # Listed once: walking the module tree on every gradient step took about 5% of training time.
        self.critic_parameters = list(self.critic.parameters())
        self.critic_target_parameters = list(self.critic_target.parameters())
        if self.target_entropy == "auto":
            self.target_entropy = self.DEFAULT_TARGET_ENTROPY_FRACTION * math.log(int(self.action_space.n))
        else:
            self.target_entropy = float(self.target_entropy)

        if isinstance(self.ent_coef, str):
            init_value = float(self.ent_coef.split("_")[1]) if "_" in self.ent_coef else 1.0
            # The log is learned so that alpha stays positive (softlearning issue #37).
            self.log_ent_coef = th.log(th.ones(1, device=self.device) * init_value).requires_grad_(True)
            self.ent_coef_optimizer = th.optim.Adam([self.log_ent_coef], lr=self.lr_schedule(1))
        else:
            self.ent_coef_tensor = th.tensor(float(self.ent_coef), device=self.device)

    def _create_aliases(self) -> None:
        self.actor = self.policy.actor
        self.critic = self.policy.critic
        self.critic_target = self.policy.critic_target

    def _current_temperature(self) -> float:
        """
        :return: The Gumbel temperature at the current progress, checked to be a finite number > 0
        """
        if callable(self.temperature):
            value = self.temperature(self._current_progress_remaining)
            return require_positive(f"temperature({self._current_progress_remaining})", value)
        return float(self.temperature)

    def _current_ent_coef(self) -> th.Tensor:
        if self.log_ent_coef is not None:
            return th.exp(self.log_ent_coef.detach())
        return self.ent_coef_tensor

    @contextmanager
    def _frozen_critic(self) -> Iterator[None]:
        """Build graphs in which the critic's parameters take no gradient (inputs still do)."""
        flags = [param.requires_grad for param in self.critic_parameters]
        for param in self.critic_parameters:
            param.requires_grad_(False)
        try:
            yield
        finally:
            for param, flag in zip(self.critic_parameters, flags, strict=True):
                param.requires_grad_(flag)

    def _actor_loss(
        self,
        observations: th.Tensor,
        generator: th.Generator | None = None,
        ent_coef: th.Tensor | None = None,
        temperature: float | None = None,
        estimator: str | None = None,
    ) -> tuple[th.Tensor, dict[str, th.Tensor]]:
        """
        The actor loss whose gradient w.r.t. the actor's parameters is the chosen estimator's estimate.

        Random draws come from ``generator`` (the global torch RNG when ``None``), so a caller can draw
        gradient estimates with a private generator without perturbing a training run.

        :param observations: Batch of observations, shape ``(batch, *obs_shape)``
        :param generator: Optional source of randomness for the estimator's samples
        :param ent_coef: The entropy coefficient alpha; the current one when ``None``
        :param temperature: The Gumbel temperature; the current one when ``None``
        :param estimator: The actor-gradient estimator; the model's own when ``None``
        :return: The loss (a scalar to minimise) and detached diagnostics: ``"objective"`` (the exact soft
            actor objective) and ``"entropy"`` (the mean policy entropy, nats)
        """
        alpha = self._current_ent_coef() if ent_coef is None else ent_coef
        tau_gumbel = self._current_temperature() if temperature is None else temperature
        logits = self.actor(observations)
        log_probs = F.log_softmax(logits, dim=-1)
        probs = log_probs.exp()
        entropy = -(probs * log_probs).sum(dim=-1)
        with th.no_grad():
            features = self.critic.features(observations)
            q_all = self.critic.all_action_values(features).min(dim=0).values

        with self._frozen_critic():
            value_surrogate = self._value_surrogate(
                logits, log_probs, probs, features, q_all, generator, tau_gumbel, estimator or self.estimator
            )
        batch_size = logits.shape[0]
        # Soft policy objective E_s[π(s)ᵀ(alpha log π(s) - Q(s))] (Christodoulou, 2019, Sec. 4; the discrete
        # form of Haarnoja et al., 2018, eq. 7), the Q-term's gradient from the estimator's surrogate (which
        # sums the per-state estimates over the batch).
        loss = -alpha * entropy.mean() - value_surrogate / batch_size
        if self.logit_penalty > 0.0:
            # Squared centred logits: unlike the entropy bonus, whose gradient vanishes with the policy's
            # spread, this pulls a saturated state back to where the critic's values can move it again.
            centred = logits - logits.mean(dim=-1, keepdim=True)
            loss = loss + self.logit_penalty * centred.pow(2).sum(dim=-1).mean()
        objective = (probs * (alpha * log_probs - q_all)).sum(dim=-1).mean()
        info = {"objective": objective.detach(), "entropy": entropy.mean().detach()}
        return loss, info

    def _value_surrogate(
        self,
        logits: th.Tensor,
        log_probs: th.Tensor,
        probs: th.Tensor,
        features: th.Tensor,
        q_all: th.Tensor,
        generator: th.Generator | None,
        temperature: float,
        estimator: str,
    ) -> th.Tensor:
        """
        :return: A scalar whose gradient w.r.t. ``logits`` estimates ``Σ_b ∇ E_{a~π(·|s_b)} f_{s_b}(a)``
        """
        critic = self.critic

        def value(actions: th.Tensor) -> th.Tensor:
            # actions: (n_samples, batch, K) one-hot or relaxed -> (n_samples, batch)
            if critic.critic_input == "mixture":
                return (actions * q_all).sum(dim=-1)
            return critic.action_values(features, actions).min(dim=0).values

        if estimator == "score_function":
            # Likelihood ratio with the critic's state value V(s) = Σ_a π(a|s) Q(s, a) as the baseline, which
            # keeps it unbiased (V does not depend on the sampled action) and removes most of its variance.
            samples = th.multinomial(probs.detach(), self.n_samples, replacement=True, generator=generator)
            samples = samples.transpose(0, 1)  # (n_samples, batch)
            with th.no_grad():
                sampled_values = value(F.one_hot(samples, int(self.action_space.n)).to(logits.dtype))
                baseline = (probs.detach() * q_all).sum(dim=-1)
            sampled_log_probs = log_probs.expand(self.n_samples, -1, -1).gather(-1, samples.unsqueeze(-1))
            return (
                score_function_surrogate(sampled_log_probs.squeeze(-1), sampled_values - baseline)
                / self.n_samples
            )

        key = _ESTIMATOR_KEYS[estimator]
        assert key is not None
        options: dict[str, Any] = {}
        if estimator in _RELAXED_ESTIMATORS:
            options["tau"] = temperature
        if estimator == "gumbel_rao":
            options["n_rao_samples"] = self.n_rao_samples
        return ESTIMATORS[key](logits, value, n_samples=self.n_samples, generator=generator, **options)

    def actor_gradient_draws(
        self, n_draws: int, batch_size: int, generator: th.Generator
    ) -> ActorGradientDraws:
        """Draw the actor-gradient estimate ``n_draws`` times on a fixed replay batch, and the exact one.

        Each draw is the gradient of the actor loss (the model's ``estimator``, temperature and ``n_samples``)
        w.r.t. the actor's parameters; the exact gradient is that of the same loss with the ``"expected"``
        estimator, which enumerates the actions. Used by :class:`rlrelax.callbacks.GradientStatsCallback`.

        :param n_draws: number of draws
        :param batch_size: number of replay observations in the fixed batch
        :param generator: random number generator for the batch and the estimator's samples; the global
            one is not touched
        :return: the draws and the exact gradient
        """
        assert self.replay_buffer is not None
        observations = replay_observations(self.replay_buffer, batch_size, generator, self._vec_normalize_env)
        parameters = list(self.actor.parameters())
        estimates = [
            flat_gradient(self._actor_loss(observations, generator)[0], parameters) for _ in range(n_draws)
        ]
        exact = flat_gradient(self._actor_loss(observations, estimator="expected")[0], parameters)
        return ActorGradientDraws(th.stack(estimates), exact)

    @th.no_grad()
    def _critic_target(self, replay_data: ReplayBufferSamples, ent_coef: th.Tensor) -> th.Tensor:
        """
        The clipped soft Bellman target of both critics, with the Munchausen reward when it is on.

        :param replay_data: A replay batch (with n-step ``rewards`` and ``discounts`` when ``n_steps > 1``)
        :param ent_coef: The entropy coefficient alpha
        :return: The targets, shape ``(batch, 1)``
        """
        discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma
        alpha = float(ent_coef)
        if self.munchausen_coef > 0.0 and self.next_value == "boltzmann":
            # Both batches in one pass: on a CPU, each pass costs mostly its per-call overhead.
            n_obs = replay_data.observations.shape[0]
            both = th.cat([replay_data.observations, replay_data.next_observations])
            q_both = self.critic_target(both).min(dim=0).values
            q, next_q = q_both[:n_obs], q_both[n_obs:]
        else:
            next_q = self.critic_target(replay_data.next_observations).min(dim=0).values
        if self.next_value == "boltzmann":
            # V(s') = alpha·logsumexp(Q̄(s', ·)/alpha), the soft value of the Boltzmann policy of the target
            # critics (Haarnoja et al., 2017, soft Q-learning's backup).
            next_v = soft_value(next_q, alpha)
        else:
            # V(s') = π(s')ᵀ[Q̄(s') - alpha log π(s')] under the actor, an exact expectation over the next
            # actions (Christodoulou, 2019, Sec. 4; Haarnoja et al., 2018, eq. 3).
            next_log_probs = F.log_softmax(self.actor(replay_data.next_observations), dim=-1)
            next_v = (next_log_probs.exp() * (next_q - alpha * next_log_probs)).sum(dim=-1, keepdim=True)
        rewards = replay_data.rewards
        if self.munchausen_coef > 0.0:
            # Munchausen reward r + m·[alpha·ln π(a|s)]_{l0}^{0} (Vieillard et al. 2020) with the policy that
            # the next value uses: alpha·ln π = Q̄(s, a) - V(s) for the Boltzmann policy (as M-DQN).
            actions = replay_data.actions.long()
            if self.next_value == "boltzmann":
                scaled_log_pi = q.gather(1, actions) - soft_value(q, alpha)
            else:
                log_probs = F.log_softmax(self.actor(replay_data.observations), dim=-1)
                scaled_log_pi = alpha * log_probs.gather(1, actions)
            rewards = rewards + self.munchausen_coef * scaled_log_pi.clamp(self.munchausen_clip, 0.0)
        return rewards + (1 - replay_data.dones) * discounts * next_v

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        self.policy.set_training_mode(True)
        optimizers: list[th.optim.Optimizer] = [self.actor.optimizer, self.critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers.append(self.ent_coef_optimizer)
        self._update_learning_rate(optimizers)
        temperature = self._current_temperature()

        actor_losses, critic_losses, ent_coefs, entropies, ent_coef_losses = [], [], [], [], []
        for gradient_step in range(gradient_steps):
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            ent_coef = self._current_ent_coef()
            ent_coefs.append(ent_coef.item())

            target_q = self._critic_target(replay_data, ent_coef)
            actions = replay_data.actions.long()
            n_critics = self.critic.n_critics
            current_q = self.critic(replay_data.observations).gather(2, actions.expand(n_critics, -1, -1))
            # Soft Bellman residual of each critic (Haarnoja et al., 2018, eq. 5) under the Huber loss, as in
            # SB3's DQN and rlrelax's SoftQ: a TD error far from the target moves the critic a bounded step.
            # Halved and summed over the critics, as SB3's SAC does with its squared error.
            critic_loss = 0.5 * n_critics * F.smooth_l1_loss(current_q, target_q.expand_as(current_q))
            critic_losses.append(critic_loss.item())
            self.critic.optimizer.zero_grad()
            critic_loss.backward()
            th.nn.utils.clip_grad_norm_(self.critic_parameters, self.max_grad_norm)
            self.critic.optimizer.step()

            actor_loss, info = self._actor_loss(
                replay_data.observations, ent_coef=ent_coef, temperature=temperature
            )
            actor_losses.append(info["objective"].item())
            entropies.append(info["entropy"].item())
            self.actor.optimizer.zero_grad()
            actor_loss.backward()
            self.actor.optimizer.step()

            if self.ent_coef_optimizer is not None and self.log_ent_coef is not None:
                assert isinstance(self.target_entropy, float)
                # J(alpha) = E_s[-alpha (π(s)ᵀ log π(s) + H̄)] with the exact entropy (Christodoulou, 2019,
                # Sec. 4; Haarnoja et al., 2018, eq. 18), through log alpha as SB3's SAC does.
                ent_coef_loss = -(self.log_ent_coef * (self.target_entropy - info["entropy"])).mean()
                ent_coef_losses.append(ent_coef_loss.item())
                self.ent_coef_optimizer.zero_grad()
                ent_coef_loss.backward()
                self.ent_coef_optimizer.step()

            if gradient_step % self.target_update_interval == 0:
                polyak_update(self.critic_parameters, self.critic_target_parameters, self.tau)
                polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)

        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/ent_coef", np.mean(ent_coefs))
        self.logger.record("train/actor_loss", np.mean(actor_losses))
        self.logger.record("train/critic_loss", np.mean(critic_losses))
        self.logger.record("train/entropy", np.mean(entropies))
        self.logger.record("train/temperature", temperature)
        if ent_coef_losses:
            self.logger.record("train/ent_coef_loss", np.mean(ent_coef_losses))

    def learn(
        self: SelfGumbelAC,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "GumbelAC",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfGumbelAC:
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )

    def _excluded_save_params(self) -> list[str]:
        return [
            *super()._excluded_save_params(),
            "actor",
            "critic",
            "critic_target",
            "critic_parameters",
            "critic_target_parameters",
        ]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts = ["policy", "actor.optimizer", "critic.optimizer"]
        if self.ent_coef_optimizer is not None:
            saved_pytorch_variables = ["log_ent_coef"]
            state_dicts.append("ent_coef_optimizer")
        else:
            saved_pytorch_variables = ["ent_coef_tensor"]
        return state_dicts, saved_pytorch_variables


def _check_temperature(temperature: float | TemperatureSchedule) -> None:
    """Raise a ``ValueError`` naming ``temperature`` unless it is > 0 (a schedule: at both ends of training).

    :param temperature: a float or a schedule of the progress remaining
    """
    if callable(temperature):
        for progress in (1.0, 0.0):
            require_positive(
                f"temperature (schedule {temperature!r} at progress_remaining={progress})",
                temperature(progress),
            )
    elif isinstance(temperature, bool) or not isinstance(temperature, int | float):
        raise ValueError(f"temperature must be a float > 0 or a schedule, got {temperature!r}")
    else:
        require_positive("temperature", temperature)


def _check_ent_coef(ent_coef: str | float) -> None:
    """Raise a ``ValueError`` naming ``ent_coef`` unless it is a float >= 0, ``"auto"`` or ``"auto_<x > 0>"``.

    :param ent_coef: the entropy coefficient argument
    """
    if isinstance(ent_coef, str):
        if ent_coef == "auto":
            return
        head, _, init = ent_coef.partition("_")
        try:
            valid = head == "auto" and float(init) > 0.0 and math.isfinite(float(init))
        except ValueError:
            valid = False
        if not valid:
            raise ValueError(
                f"ent_coef must be a float >= 0, 'auto' or 'auto_<initial value > 0>', got {ent_coef!r}"
            )
    elif (
        isinstance(ent_coef, bool) or not isinstance(ent_coef, int | float) or not 0.0 <= ent_coef < math.inf
    ):
        raise ValueError(
            f"ent_coef must be a float >= 0, 'auto' or 'auto_<initial value > 0>', got {ent_coef!r}"
        )
