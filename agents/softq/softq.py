"""Soft Q-learning for discrete actions, as a Stable-Baselines3 off-policy algorithm."""

import math
from collections import defaultdict
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, ReplayBufferSamples, Schedule
from stable_baselines3.common.utils import get_parameters_by_name, polyak_update
from stable_baselines3.dqn.policies import QNetwork
from torch import nn
from torch.nn import functional as F

from rlrelax.agents.common import (
    SOFT_CRITIC_LEARNING_RATE,
    ActorGradientDraws,
    ChoiceLayout,
    action_value,
    boltzmann_entropy,
    check_factorised_action_space,
    check_munchausen,
    check_soft_critic_arguments,
    check_target_entropy,
    choice_sizes,
    ent_coef_loss,
    flat_gradient,
    parse_ent_coef,
    replay_observations,
    resolve_target_entropy,
    soft_bellman_target,
    split_choices,
)
from rlrelax.agents.common.compiled import Diagnostics, check_compilable_optimizer, check_not_diverged
from rlrelax.agents.softq.compiled_update import CompiledUpdate
from rlrelax.agents.softq.policies import MlpPolicy, SoftQPolicy
from rlrelax.estimators import ESTIMATORS

SelfSoftQ = TypeVar("SelfSoftQ", bound="SoftQ")


class SoftQ(OffPolicyAlgorithm):
    """
    Soft Q-learning for discrete actions, with an optional Munchausen term.

    Papers: Haarnoja, Tang, Abbeel and Levine (2017), "Reinforcement Learning with Deep Energy-Based
    Policies", ICML (soft Q-learning); Vieillard, Pietquin and Geist (2020), "Munchausen Reinforcement
    Learning", NeurIPS (the Munchausen term); Christodoulou (2019), "Soft Actor-Critic for Discrete Action
    Settings" and Haarnoja et al. (2018), "Soft Actor-Critic Algorithms and Applications" (learning alpha).

    With |A| discrete actions the soft value is exact and no sampling network is needed:
    ``V(s) = alpha·log Σ_a exp(Q(s, a)/alpha)``, the policy is the Boltzmann distribution
    ``π(a|s) = exp((Q(s, a) - V(s))/alpha)``, and the Q-network regresses (Huber loss) on the soft Bellman
    target ``y = r + m·[alpha·ln π(a|s)]_{l0}^0 + gamma·(1 - done)·V_target(s')`` of
    :func:`rlrelax.agents.common.soft_bellman_target`, which GumbelAC's critics share. Actions are explored by
    sampling π (after ``learning_starts`` uniformly random steps); ``predict(deterministic=True)`` is greedy.
    ``ent_coef="auto"`` learns log alpha towards ``target_entropy`` with the exact entropy of π.

    Supported action spaces: ``Discrete``, and ``MultiDiscrete`` and ``MultiBinary`` of one dimension, whose
    joint actions the factorised critic ``Q(s, a) = V(s) + Σ_m A_m(s, a_m)`` of :class:`BranchingQNetwork`
    values (action branching, Tavakoli et al. 2018): the soft value stays exact,
    ``V(s) + Σ_m alpha·logsumexp(A_m(s, ·)/alpha)``, and the Boltzmann policy is one softmax per choice.
    Anything else is a ``ValueError`` naming the space.

    Defaults target ``SoftQ("MlpPolicy", "CartPole-v1").learn(50_000)``; each one's evidence, with the
    commands that reproduce it, is in ``experiments/tuning/softq.md``. In short: a fixed alpha = 0.03 with
    the Munchausen term (M-DQN's 0.9 and l0 = -1) solved seeds that plain soft Q-learning did not; a
    [256, 256] Q-network did where [64, 64] stalled; the learning rate decays to 0 so that a solved policy
    is not lost in the last updates; ``target_entropy="auto"`` is 0.3·log|A|, because the paper's
    0.98·log|A| makes a learnt alpha diverge with two actions. ``rlrelax train`` and ``rlrelax compare`` train
    CartPole-v1 faster with the entry of ``hyperparams.toml``: 8 envs, one gradient step per 8 env steps,
    ``gamma=0.98``, a faster target network (``tau=0.01``) and twice the learning rate
    (``experiments/tuning/speed.md``).

    :param policy: The policy model to use (MlpPolicy, or a ``SoftQPolicy`` subclass)
    :param env: The environment to learn from (if registered in Gym, can be str)
    :param learning_rate: The learning rate of the Q-network and of log alpha, it can be a function
        of the current progress remaining (from 1 to 0)
    :param buffer_size: size of the replay buffer
    :param learning_starts: how many steps of the model to collect transitions for before learning starts
    :param batch_size: Minibatch size for each gradient update
    :param tau: the soft update coefficient ("Polyak update", between 0 and 1), 1 for a hard update
    :param gamma: the discount factor
    :param train_freq: Update the model every ``train_freq`` steps, or a tuple ``(frequency, unit)``
    :param gradient_steps: How many gradient steps after each rollout; ``-1`` means as many as env steps
    :param replay_buffer_class: Replay buffer class to use; ``None`` selects it automatically
    :param replay_buffer_kwargs: Keyword arguments to pass to the replay buffer on creation
    :param optimize_memory_usage: Enable a memory efficient variant of the replay buffer
    :param n_steps: n-step returns for the soft Bellman target (SB3's ``NStepReplayBuffer``), the Munchausen
        term added for the first of the n actions (as the authors' M-IQN adds it to Dopamine's n-step
        rewards); 3 solved fewer CartPole-v1 seeds (``experiments/tuning/speed.md``, "SoftQ: n-step returns,
        twice the learning rate, a narrower network")
    :param target_update_interval: update the target network (by Polyak averaging with ``tau``) every
        ``target_update_interval`` environment steps
    :param ent_coef: the temperature alpha of the Boltzmann policy (entropy regularisation coefficient): a
        float > 0, or ``"auto"`` to learn it (``"auto_0.1"`` starts the learnt alpha at 0.1 instead of 1)
    :param target_entropy: the policy entropy that ``ent_coef="auto"`` aims for, in nats, strictly between
        0 and log|A|; ``"auto"`` is ``0.3·log|A|``
    :param munchausen_coef: the Munchausen scaling (alpha in Vieillard et al. 2020, who use 0.9); 0: off
    :param munchausen_clip: the lower clipping bound l0 < 0 of the scaled log-policy in the Munchausen term
    :param max_grad_norm: The maximum value for the gradient clipping
    :param compile_update: Take each gradient step as one graph compiled by ``torch.compile``
        (:class:`rlrelax.agents.softq.compiled_update.CompiledUpdate`): the same update up to float rounding,
        1.33 times the env steps a second on CartPole-v1's entry (a CPU), after some seconds of compiling in
        the first ``train`` (cached on disk for later runs). Needs a C++ compiler (without one it warns and
        runs eagerly), a fixed ``ent_coef`` and torch's Adam. Off in the CartPole-v1 entry too, where it
        solved fewer seeds (``experiments/tuning/speed.md``, "SoftQ's gradient step compiled")
    :param stats_window_size: Window size for the rollout logging
    :param tensorboard_log: the log location for tensorboard (if None, no logging)
    :param policy_kwargs: additional arguments to be passed to the policy on creation
    :param verbose: Verbosity level: 0 no output, 1 info messages, 2 debug messages
    :param seed: Seed for the pseudo random generators
    :param device: Device (cpu, cuda, ...) on which the code should be run; "auto": the GPU if possible
    :param _init_setup_model: Whether or not to build the network at the creation of the instance
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {"MlpPolicy": MlpPolicy}
    #: What a comparison's report says of this agent's gradient diagnostics (:meth:`actor_gradient_draws`).
    gradient_diagnostics_note: ClassVar[str] = (
        "SoftQ trains no actor, so no update follows the gradient measured: the score-function gradient of "
        "its Boltzmann policy softmax(Q/alpha) with the critic's values held fixed. Its variance and SNR say "
        "what a REINFORCE update of that policy would face; SoftQ itself learns by regressing Q"
    )
    policy: SoftQPolicy
    q_net: QNetwork
    q_net_target: QNetwork
    log_ent_coef: nn.Parameter
    ent_coef_optimizer: th.optim.Optimizer | None
    _target_entropy: float

    def __init__(
        self,
        policy: str | type[SoftQPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = SOFT_CRITIC_LEARNING_RATE,
        buffer_size: int = 100_000,
        learning_starts: int = 1_000,
        batch_size: int = 128,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 4,
        gradient_steps: int = 1,
        replay_buffer_class: type[ReplayBuffer] | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        optimize_memory_usage: bool = False,
        n_steps: int = 1,
        target_update_interval: int = 1,
        ent_coef: float | str = 0.03,
        target_entropy: float | str = "auto",
        munchausen_coef: float = 0.9,
        munchausen_clip: float = -1.0,
        max_grad_norm: float = 10.0,
        compile_update: bool = False,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        # Arguments that need no environment are checked before SB3 builds (and possibly wraps) it.
        ent_coef_auto, _ = parse_ent_coef(ent_coef)
        check_target_entropy(target_entropy)
        check_munchausen(munchausen_coef, munchausen_clip)
        check_soft_critic_arguments(tau, gamma, target_update_interval, max_grad_norm)
        if not isinstance(compile_update, bool):
            raise TypeError(f"compile_update must be a bool, got {compile_update!r}")
        if compile_update and ent_coef_auto:
            # A value that changes every step would compile the graph again for each new value.
            raise ValueError(f"compile_update=True needs a fixed ent_coef, got ent_coef={ent_coef!r}")

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
        if self.env is not None:  # None only while SB3's load() rebuilds a model, with its saved spaces
            resolve_target_entropy(target_entropy, self._joint_action_count(), ent_coef_auto)

        self.ent_coef = ent_coef
        self.target_entropy = target_entropy
        self.munchausen_coef = munchausen_coef
        self.munchausen_clip = munchausen_clip
        self.target_update_interval = target_update_interval
        self.max_grad_norm = max_grad_norm
        self.compile_update = compile_update
        # Counts env.step() calls: each is n_envs env steps, the unit of target_update_interval.
        self._n_calls = 0

        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        super()._setup_model()
        self._create_aliases()
        # Derived here, not in __init__: SB3's load() restores the arguments without calling __init__.
        self._ent_coef_auto, initial_ent_coef = parse_ent_coef(self.ent_coef)
        self._target_entropy = resolve_target_entropy(
            self.target_entropy, self._joint_action_count(), self._ent_coef_auto
        )
        self._choice_sizes = choice_sizes(
            check_factorised_action_space(self.action_space, type(self).__name__)
        )
        # Copy running stats, see SB3 GH issue #996
        self.batch_norm_stats = get_parameters_by_name(self.q_net, ["running_"])
        self.batch_norm_stats_target = get_parameters_by_name(self.q_net_target, ["running_"])
        # Listed once: the target update runs every environment step, and walking the modules each time
        # would cost more than the update itself.
        self._online_params: list[th.Tensor] = list(self.q_net.parameters())
        self._target_params: list[th.Tensor] = list(self.q_net_target.parameters())
        with th.no_grad():
            self.log_ent_coef.fill_(math.log(initial_ent_coef))
        self._ent_coef_in_policy = self.ent_coef
        self.log_ent_coef.requires_grad_(self._ent_coef_auto)
        self.ent_coef_optimizer = None
        if self._ent_coef_auto:
            self.ent_coef_optimizer = th.optim.Adam([self.log_ent_coef], lr=self.lr_schedule(1))
        self._compiled_update: CompiledUpdate | None = None
        if self.compile_update:
            check_compilable_optimizer(self.policy.optimizer, "Q-network")
            self._compiled_update = CompiledUpdate(self)

    def _joint_action_count(self) -> int:
        """The number of (joint) actions, whose log is the maximum entropy; checks the action space.

        :return: |A| for ``Discrete``, the product of the choices' sizes for several choices
        """
        space = check_factorised_action_space(self.action_space, type(self).__name__)
        return ChoiceLayout.of(space).n_joint_actions

    def _create_aliases(self) -> None:
        self.q_net = self.policy.q_net
        self.q_net_target = self.policy.q_net_target
        self.log_ent_coef = self.policy.log_ent_coef

    def _follow_fixed_ent_coef(self) -> None:
        """Let a fixed ``ent_coef`` changed during training (e.g. by ``ScheduleCallback``) take effect.

        The policy acts and trains with its own ``log_ent_coef``; a fixed coefficient is copied into it
        whenever the attribute ``ent_coef`` has a new value, so annealing the attribute is never a no-op.
        """
        if self._ent_coef_auto or self.ent_coef == self._ent_coef_in_policy:
            return
        _, value = parse_ent_coef(self.ent_coef)
        with th.no_grad():
            self.log_ent_coef.fill_(math.log(value))
        self._ent_coef_in_policy = self.ent_coef

    def _on_step(self) -> None:
        """Update the target network every ``target_update_interval`` environment steps.

        Called by ``collect_rollouts()`` after each ``env.step()`` (and after the callbacks' ``on_step``).
        """
        self._follow_fixed_ent_coef()
        self._n_calls += 1
        # The updates due in this call's n_envs env steps: the multiples of the interval they passed. SB3's
        # DQN makes at most one a call, so with more envs than the interval its target moves n_envs times
        # slower per env step than its interval says.
        env_steps, interval = self._n_calls * self.n_envs, self.target_update_interval
        updates = env_steps // interval - (env_steps - self.n_envs) // interval
        if updates:
            # θ_target ← (1 - τ)·θ_target + τ·θ, SB3's polyak_update in one fused call; k updates in a row
            # towards the same θ are one with τ_k = 1 - (1 - τ)^k (τ itself for k = 1, to the last bit).
            tau = self.tau if updates == 1 else 1.0 - (1.0 - self.tau) ** updates
            with th.no_grad():
                th._foreach_lerp_(self._target_params, self._online_params, tau)
            if self.batch_norm_stats:
                polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)

    def _q_loss(self, replay_data: ReplayBufferSamples, ent_coef: float) -> tuple[th.Tensor, Diagnostics]:
        """The Q-network's loss on a replay batch: Huber, as SB3's DQN, towards the soft Bellman target.

        :param replay_data: a replay batch
        :param ent_coef: the temperature alpha
        :return: the loss and, detached, the diagnostics ``"critic_loss"``, ``"q_values"`` (the mean value
            of the actions taken) and ``"entropy"`` (the Boltzmann policy's mean entropy)
        """
        target_q_values = soft_bellman_target(
            replay_data,
            self.q_net_target,
            ent_coef=ent_coef,
            gamma=self.gamma,
            munchausen_coef=self.munchausen_coef,
            munchausen_clip=self.munchausen_clip,
            choice_sizes=self._choice_sizes,
        )
        q_values = self.q_net(replay_data.observations)
        current_q_values = action_value(q_values, replay_data.actions, self._choice_sizes)
        # Huber loss, as SB3's DQN: a TD error far from the target moves the network by a bounded step.
        loss = F.smooth_l1_loss(current_q_values, target_q_values)
        with th.no_grad():
            entropy = boltzmann_entropy(q_values.detach(), ent_coef, self._choice_sizes)
        return loss, {
            "critic_loss": loss.detach(),
            "q_values": current_q_values.detach().mean(),
            "entropy": entropy,
        }

    def _eager_update(self, replay_data: ReplayBufferSamples, ent_coef: float) -> Diagnostics:
        """One gradient step of the Q-network, by autograd and the optimiser's own step.

        :param replay_data: a replay batch
        :param ent_coef: the temperature alpha
        :return: the diagnostics of :meth:`_q_loss`
        """
        loss, diagnostics = self._q_loss(replay_data, ent_coef)
        self.policy.optimizer.zero_grad()
        loss.backward()
        th.nn.utils.clip_grad_norm_(self._online_params, self.max_grad_norm)
        self.policy.optimizer.step()
        return diagnostics

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        self.policy.set_training_mode(True)
        optimizers = [self.policy.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers.append(self.ent_coef_optimizer)
        self._update_learning_rate(optimizers)

        # Diagnostics stay tensors until the loop ends: one read of their values instead of several a step.
        diagnostics: dict[str, list[th.Tensor]] = defaultdict(list)
        ent_coefs = []
        for _ in range(gradient_steps):
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            ent_coef = self.policy.ent_coef
            if self._compiled_update is not None:
                info = self._compiled_update(replay_data, ent_coef)
            else:
                info = self._eager_update(replay_data, ent_coef)
            for name, value in info.items():
                diagnostics[name].append(value)

            if self.ent_coef_optimizer is not None:
                loss_of_alpha = ent_coef_loss(self.log_ent_coef, info["entropy"], self._target_entropy)
                self.ent_coef_optimizer.zero_grad()
                loss_of_alpha.backward()
                self.ent_coef_optimizer.step()
                diagnostics["ent_coef_loss"].append(loss_of_alpha.detach())
            ent_coefs.append(ent_coef)

        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        for name, values in diagnostics.items():
            mean = th.stack(values).mean().item()
            if self._compiled_update is not None:
                check_not_diverged(type(self).__name__, name, mean)
            self.logger.record(f"train/{name}", mean)
        self.logger.record("train/ent_coef", float(np.mean(ent_coefs)))

    def actor_gradient_draws(
        self, n_draws: int, batch_size: int, generator: th.Generator
    ) -> ActorGradientDraws:
        """Draw score-function estimates of the Boltzmann policy's gradient on a fixed replay batch.

        SoftQ has no separate actor: its policy is softmax(Q/alpha). The objective measured is the
        policy's expected value under the current critic, sum_s E_{a ~ softmax(Q(s,.)/alpha)}[Q(s, a)]
        with the values held fixed, differentiated through the policy's logits Q/alpha (for several choices,
        each choice's softmax(A_m/alpha) and its term E[A_m(s, a_m)] of the additive Q). Each draw is the
        score-function (REINFORCE) estimate from one sampled action per state (and choice), and the exact
        gradient enumerates the actions (``rlrelax.estimators``). Used by
        :class:`rlrelax.callbacks.GradientStatsCallback`.

        :param n_draws: number of draws
        :param batch_size: number of replay observations in the fixed batch
        :param generator: random number generator for the batch and the actions; the global one is
            not touched
        :return: the draws and the exact gradient
        """
        assert self.replay_buffer is not None
        observations = replay_observations(self.replay_buffer, batch_size, generator, self._vec_normalize_env)
        parameters = list(self.q_net.parameters())
        ent_coef = self.policy.ent_coef

        def held_fixed(values: th.Tensor) -> Callable[[th.Tensor], th.Tensor]:
            fixed = values.detach()
            return lambda actions: (actions * fixed).sum(-1)

        def objective(estimator: str) -> th.Tensor:
            q_values = self.q_net(observations)
            sizes = self._choice_sizes
            per_choice = [q_values] if sizes is None else split_choices(q_values, sizes)[1]
            surrogates = [
                ESTIMATORS[estimator](values / ent_coef, held_fixed(values), n_samples=1, generator=generator)
                for values in per_choice
            ]
            return th.stack(surrogates).sum()

        estimates = th.stack([flat_gradient(objective("score_function"), parameters) for _ in range(n_draws)])
        return ActorGradientDraws(estimates, flat_gradient(objective("exact"), parameters))

    def learn(
        self: SelfSoftQ,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "SoftQ",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfSoftQ:
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )

    def _excluded_save_params(self) -> list[str]:
        # Aliases into the policy, whose state dict (log_ent_coef included) is saved with the model.
        aliases = ["q_net", "q_net_target", "log_ent_coef", "_online_params", "_target_params"]
        return [*super()._excluded_save_params(), *aliases, "_compiled_update"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts = ["policy", "policy.optimizer"]
        if self.ent_coef_optimizer is not None:
            state_dicts.append("ent_coef_optimizer")
        return state_dicts, []
