"""GumbelAC: an off-policy actor-critic for discrete actions with a selectable actor-gradient estimator."""

from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, NamedTuple, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, ReplayBufferSamples, Schedule
from stable_baselines3.common.utils import get_parameters_by_name, polyak_update
from torch.nn import functional as F

from rlrelax._validation import (
    check_choice,
    check_int,
    check_non_negative,
    check_number_or_schedule,
    check_positive,
    check_unit_interval,
    value_at,
)
from rlrelax.agents.common import (
    MAX_ENUMERATED_ACTIONS,
    SOFT_CRITIC_LEARNING_RATE,
    ActorGradientDraws,
    ChoiceLayout,
    FactorisedSpace,
    TopKLayout,
    check_factorised_action_space,
    check_munchausen,
    check_soft_critic_arguments,
    check_target_entropy,
    current_and_next,
    ent_coef_loss,
    flat_gradient,
    parse_ent_coef,
    replay_observations,
    resolve_target_entropy,
    soft_bellman_backup,
    soft_bellman_target,
)
from rlrelax.agents.common.compiled import check_compilable_optimizer, check_not_diverged
from rlrelax.agents.gumbel_ac.compiled_update import CompiledUpdate
from rlrelax.agents.gumbel_ac.policies import (
    CRITIC_INPUTS,
    Actor,
    DiscreteCritic,
    GumbelACPolicy,
    MlpPolicy,
    TopKPolicy,
)
from rlrelax.estimators import ESTIMATORS

SelfGumbelAC = TypeVar("SelfGumbelAC", bound="GumbelAC")

#: The actor-gradient estimators, by their names in :data:`rlrelax.estimators.ESTIMATORS`.
ESTIMATOR_NAMES: tuple[str, ...] = (
    "gumbel_softmax",
    "straight_through",
    "gumbel_rao",
    "exact",
    "score_function",
)
#: Other names accepted for an estimator: ``"expected"`` is discrete SAC's name for the exact expectation
#: and what rlrelax 0.1 called it, so its saved models and specs keep working.
ESTIMATOR_ALIASES: dict[str, str] = {"expected": "exact"}
_RELAXED_ESTIMATORS = ("gumbel_softmax", "straight_through", "gumbel_rao")
NEXT_VALUES: tuple[str, ...] = ("boltzmann", "policy")
#: ``critic_input`` and ``next_value`` may also be ``"auto"``: the first of each tuple (``"mixture"``,
#: ``"boltzmann"``) for a ``Discrete`` space, ``"concat"`` and ``"policy"`` for several choices.
#: ``n_samples="auto"`` is :data:`DEFAULT_N_SAMPLES`, or :data:`GUMBEL_RAO_N_SAMPLES` for ``"gumbel_rao"``
#: on a ``Discrete`` space.
AUTO = "auto"
#: Action samples per state under ``n_samples="auto"``: almost free under the mixture critic, which is
#: evaluated once per state (experiments/tuning/gumbel_ac.md).
DEFAULT_N_SAMPLES = 8
#: ``"gumbel_rao"``'s samples per state under ``n_samples="auto"`` on a ``Discrete`` space: Paulus et al.'s
#: (2021) estimator, one sample whose ``n_rao_samples`` conditional draws do the averaging. Eight samples
#: cost eight times the draws and learned CartPole-v1 no better (experiments/tuning/gumbel_ac.md,
#: "gumbel_rao: one sample").
GUMBEL_RAO_N_SAMPLES = 1

TemperatureSchedule = Callable[[float], float]


class ActorValue(NamedTuple):
    """The actor's logits on a batch of states, the critic's value of the policy, an estimator's surrogate.

    :param logits: the actor's logits, ``(batch, layout.width)``
    :param entropy: the policy's exact entropy in each state, ``(batch,)``, differentiable
    :param q_value: ``mean_s E_{a~π(·|s)} Q(s, a)`` of the critics' pooled value, detached: exact for a
        ``Discrete`` space, the surrogate's value (the estimator's Monte Carlo estimate; at relaxed actions
        for ``"gumbel_softmax"``) for several choices
    :param surrogate: a scalar whose gradient w.r.t. the actor estimates ``∇ mean_s E_{a~π(·|s)} Q(s, a)``
    """

    logits: th.Tensor
    entropy: th.Tensor
    q_value: th.Tensor
    surrogate: th.Tensor


class GumbelAC(OffPolicyAlgorithm):
    """
    Gumbel actor-critic: discrete soft actor-critic whose actor gradient comes from ``rlrelax.estimators``.

    Papers: Christodoulou (2019), "Soft Actor-Critic for Discrete Action Settings"; Haarnoja et al. (2018),
    "Soft Actor-Critic Algorithms and Applications"; Haarnoja et al. (2017), "Reinforcement Learning with
    Deep Energy-Based Policies"; Vieillard et al. (2020), "Munchausen Reinforcement Learning"; each
    estimator's paper is cited in :mod:`rlrelax.estimators`.

    Twin critics with Polyak-averaged targets regress on :func:`rlrelax.agents.common.soft_bellman_target`,
    SoftQ's target; the actor minimises ``E_s[alpha Σ_a π log π - E_{a~π} Q(s, a)]`` (plus a logit penalty),
    the entropy term exactly and the gradient of ``E_{a~π} Q(s, a)`` from ``estimator``. How a relaxed
    action reaches the critic (``critic_input``) is explained in :class:`DiscreteCritic`: under the
    default mixture critic ``"gumbel_softmax"`` and ``"straight_through"`` train identically.
    ``train/actor_loss`` logs the exact soft actor objective whatever the estimator. Wherever one value of
    the twin critics is needed (the target and the actor's value) they are pooled by ``critic_pessimism``:
    their minimum by default, the clipped double Q of Fujimoto et al. (2018), "Addressing Function
    Approximation Error in Actor-Critic Methods", which SAC uses; below 1, nearer their mean, the
    pessimism that Moskovitz et al. (2021), "Tactical Optimism and Pessimism for Deep Reinforcement
    Learning", show to be a per-task setting.

    Defaults target ``GumbelAC("MlpPolicy", "CartPole-v1").learn(50_000)`` for every estimator; the evidence
    for each, with the commands that reproduce it, is in ``experiments/tuning/gumbel_ac.md``. ``rlrelax
    train`` and ``rlrelax compare`` train CartPole-v1 faster with the entry of ``hyperparams.toml``: 8 envs,
    3-step returns, twice the learning rate, layer-normalised critics, faster target critics (``tau=0.05``)
    and compiled gradient steps, with which the CartPole-v1 comparison trains for 30,000 env steps
    (``experiments/tuning/speed.md``).

    Supported action spaces: ``Discrete``, and ``MultiDiscrete`` and ``MultiBinary`` of one dimension;
    anything else is a ``ValueError`` naming the space. On the latter the policy is a product of one
    categorical per choice (one Bernoulli per bit), ``π(a|s) = Π_m π_m(a_m|s)``, whose log-probabilities and
    entropies add up (:class:`rlrelax.agents.common.ChoiceLayout`), and:

    - the critics read the joint action (``critic_input="concat"``): the choices' one-hots side by side, or
      the bits; the relaxed estimators relax each choice independently (Gumbel-softmax per choice and the
      binary concrete per bit, their straight-through forms, Gumbel-Rao per choice) and the relaxed joint
      action flows into the critic;
    - ``"score_function"`` draws ``n_samples >= 2`` joint actions per state and takes the leave-one-out
      baseline over them (the critic's state value would need every joint action's value);
    - ``"exact"`` (``"expected"``) enumerates the joint actions, up to
      :data:`rlrelax.agents.common.MAX_ENUMERATED_ACTIONS` of them;
    - the critic target takes the actor's soft value ``E_{a'~π}[Q̄(s', a') - alpha log π(a'|s')]``
      (``next_value="policy"``), exact over up to :data:`rlrelax.agents.common.MAX_ENUMERATED_NEXT_ACTIONS`
      joint actions and otherwise the mean over ``n_samples`` of the actor's draws;
    - ``predict(deterministic=True)`` is each choice's most likely option.

    ``critic_input="mixture"`` and ``next_value="boltzmann"``, which need every joint action's value, are
    ``Discrete`` only; ``"auto"`` (their default) picks them for ``Discrete`` and ``"concat"``/``"policy"``
    otherwise.

    With ``"TopKPolicy"`` (:class:`~rlrelax.agents.gumbel_ac.policies.TopKPolicy`) a
    ``MultiDiscrete([N] * k)`` action is a slate of ``k`` distinct items: the actor has ``N`` logits and draws
    by Gumbel-top-k (Kool, van Hoof and Welling, 2019, "Stochastic Beams and Where to Find Them"), the critics
    read the slate's k-hot (its order ignored), ``"gumbel_softmax"`` relaxes a sample to
    ``soft_topk(l + G, k, temperature)`` and ``"straight_through"`` feeds its exact k-hot with that gradient
    (Xie and Ermon, 2019, "Reparameterizable Subset Sampling via Continuous Relaxations"),
    ``"score_function"`` uses the Plackett-Luce log-probability with the leave-one-out baseline, ``"exact"``
    enumerates the ordered slates (up to :data:`rlrelax.agents.common.MAX_ENUMERATED_ACTIONS`), and
    ``"gumbel_rao"`` is refused; the entropy terms (actor loss, next soft value, ``"auto"`` alpha) are the
    slate's, of ``N! / (N - k)!`` ordered slates, as :class:`rlrelax.agents.common.TopKLayout` computes them.
    The warm-up's random actions are uniform slates of distinct items.

    :param policy: The policy model to use (``"MlpPolicy"``, ``"TopKPolicy"`` for slates, or a
        :class:`GumbelACPolicy` subclass)
    :param env: The environment to learn from (if registered in Gym, can be str); see the supported action
        spaces above
    :param learning_rate: Adam's learning rate (actor, critics, alpha), a float or a schedule; 2e-3 decayed
        linearly to 0, as SoftQ's, so that a solved policy is not lost in the last updates
    :param buffer_size: Size of the replay buffer
    :param learning_starts: How many steps of uniformly random actions to collect before learning starts
    :param batch_size: Minibatch size for each gradient update
    :param tau: The Polyak coefficient of the target critics, per target update; 0.02 (0.005 let them lag)
    :param gamma: The discount factor; 0.995, so the critic values CartPole's slow drift off the track
    :param train_freq: Update the model every ``train_freq`` steps, or a tuple ``(frequency, unit)``
    :param gradient_steps: How many gradient steps after each rollout; ``-1`` means as many as env steps
    :param replay_buffer_class: Replay buffer class to use; ``None`` selects it automatically
    :param replay_buffer_kwargs: Keyword arguments to pass to the replay buffer on creation
    :param optimize_memory_usage: Enable a memory efficient variant of the replay buffer
    :param n_steps: n-step returns for the critic target (SB3's ``NStepReplayBuffer``)
    :param estimator: The actor-gradient estimator, one of :data:`ESTIMATOR_NAMES` (or an alias in
        :data:`ESTIMATOR_ALIASES`): ``"gumbel_softmax"``, ``"straight_through"``, ``"gumbel_rao"``,
        ``"exact"`` (the expectation over the actions, discrete SAC's actor loss) or ``"score_function"``
        (with the critic's state value as baseline; with a leave-one-out baseline for several choices)
    :param temperature: The Gumbel-softmax temperature, a float > 0 or a schedule of the progress remaining
    :param n_samples: Action samples per state for the sampling estimators, and for the next soft value of a
        joint space too large to enumerate; ``"auto"``: 8 (almost free, see the note), except 1 for
        ``"gumbel_rao"`` on a ``Discrete`` space (Paulus et al.'s one sample with ``n_rao_samples``
        conditional draws; :data:`GUMBEL_RAO_N_SAMPLES`); the attribute holds the resolved value
    :param n_rao_samples: Conditional Gumbel draws per sample for ``"gumbel_rao"``
    :param critic_input: How the critic reads an action, ``"mixture"`` or ``"concat"`` (see DiscreteCritic),
        or ``"auto"``: ``"mixture"`` for a ``Discrete`` space, ``"concat"`` for several choices; the
        attribute holds the resolved value
    :param next_value: The next value of the critic target: ``"boltzmann"`` (of the target critics' Boltzmann
        policy, towards which the actor is trained) or ``"policy"`` (of the actor, discrete SAC's), or
        ``"auto"``: ``"boltzmann"`` for a ``Discrete`` space, ``"policy"`` for several choices; the attribute
        holds the resolved value
    :param ent_coef: The entropy coefficient alpha > 0, or ``"auto"`` to learn it (``"auto_0.1"``: from 0.1)
    :param target_update_interval: Update the target critics every this many gradient steps (of the run)
    :param policy_delay: Update the actor (and a learnt alpha) once every this many gradient steps of the
        critics (of the run): TD3's delayed policy updates (Fujimoto et al. 2018; SB3's
        ``TD3(policy_delay=...)``), while the target critics keep their own ``target_update_interval``
    :param simultaneous_updates: Whether the actor's loss reads the critics' values of the batch's states from
        the critics' own loss, computed before their step, instead of evaluating the updated critics again:
        the actor and critic steps then both read the parameters the step began with, and a gradient step
        takes one pass of the critics fewer: 8-12% off a compiled CartPole-v1 step, a different algorithm not
        yet validated there (``experiments/tuning/speed.md``, "Faster target networks"). Needs
        ``critic_input="mixture"`` (a ``Discrete`` action space)
    :param target_entropy: The entropy that a learnt alpha aims for, in nats; ``"auto"``: 0.3·log|A|, |A| the
        number of joint actions for several choices
    :param munchausen_coef: The Munchausen scaling m (0: off); 0.5, as 0.9 widened the critics' action gaps
        until a solved run collapsed
    :param munchausen_clip: The lower bound l0 < 0 of ``alpha log π`` in the Munchausen reward
    :param logit_penalty: lambda of the actor's penalty ``lambda E_s[Σ_k (l_k - mean_k l)²]`` (0: off), which
        keeps the logit gaps finite where a saturated softmax would stop every estimator's gradient
    :param critic_pessimism: p in [0, 1] of the critics' pooled value ``(1 - p)·mean_i Q_i + p·min_i Q_i``
        (for two critics ``mean - p·|Q_1 - Q_2|/2``): 1, the minimum, with which the defaults were validated;
        LunarLander-v3 takes 0.5 (``hyperparams.toml``; under the minimum some seeds hover above the pad:
        ``experiments/tuning/gumbel_ac.md``)
    :param max_grad_norm: The maximum norm of the critics' gradient (clipped before each step)
    :param compile_update: Take each ``train`` call's gradient steps, target updates included, as one graph
        compiled by ``torch.compile`` (:class:`rlrelax.agents.gumbel_ac.compiled_update.CompiledUpdate`): the
        same update up to float rounding, a step 2.1 to 2.2 times as fast on a CPU, after some seconds of
        compiling in the first call (cached on disk for later runs). Needs a C++ compiler (without one it
        warns and runs eagerly), a constant ``temperature``, a fixed ``ent_coef`` and torch's Adam;
        ``TORCHDYNAMO_DISABLE=1`` runs it eagerly.
        Off by default, on in the CartPole-v1 entry of ``hyperparams.toml`` (``experiments/tuning/speed.md``,
        "One compiled graph per gradient step", "Both gradient steps in one graph")
    :param stats_window_size: Window size for the rollout logging
    :param tensorboard_log: The log location for tensorboard (if None, no logging)
    :param policy_kwargs: Additional arguments to be passed to the policy on creation
    :param verbose: Verbosity level: 0 no output, 1 info messages, 2 debug messages
    :param seed: Seed for the pseudo random generators
    :param device: Device (cpu, cuda, ...) on which the code should be run
    :param _init_setup_model: Whether or not to build the network at the creation of the instance
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {"MlpPolicy": MlpPolicy, "TopKPolicy": TopKPolicy}

    policy: GumbelACPolicy
    actor: Actor
    critic: DiscreteCritic
    critic_target: DiscreteCritic
    action_space: FactorisedSpace

    def __init__(
        self,
        policy: str | type[GumbelACPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = SOFT_CRITIC_LEARNING_RATE,
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
        n_samples: int | str = AUTO,
        n_rao_samples: int = 10,
        critic_input: str = AUTO,
        next_value: str = AUTO,
        ent_coef: str | float = 0.03,
        target_update_interval: int = 1,
        policy_delay: int = 1,
        simultaneous_updates: bool = False,
        target_entropy: str | float = "auto",
        munchausen_coef: float = 0.5,
        munchausen_clip: float = -1.0,
        logit_penalty: float = 0.003,
        critic_pessimism: float = 1.0,
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
        check_choice(estimator, "estimator", (*ESTIMATOR_NAMES, *ESTIMATOR_ALIASES))
        check_choice(next_value, "next_value", (*NEXT_VALUES, AUTO))
        check_choice(critic_input, "critic_input", (*CRITIC_INPUTS, AUTO))
        check_number_or_schedule(temperature, "temperature", check_positive, "> 0")
        if isinstance(n_samples, str) and n_samples != AUTO:
            raise ValueError(f"n_samples must be an int >= 1 or {AUTO!r}, got {n_samples!r}")
        if n_samples != AUTO:
            check_int(n_samples, "n_samples", minimum=1)
        check_int(n_rao_samples, "n_rao_samples", minimum=1)
        ent_coef_auto, _ = parse_ent_coef(ent_coef)
        check_target_entropy(target_entropy)
        check_munchausen(munchausen_coef, munchausen_clip)
        check_non_negative(logit_penalty, "logit_penalty")
        check_unit_interval(critic_pessimism, "critic_pessimism", include_zero=True)
        check_soft_critic_arguments(tau, gamma, target_update_interval, max_grad_norm)
        check_int(policy_delay, "policy_delay", minimum=1)
        if not isinstance(simultaneous_updates, bool):
            raise TypeError(f"simultaneous_updates must be a bool, got {simultaneous_updates!r}")
        if not isinstance(compile_update, bool):
            raise TypeError(f"compile_update must be a bool, got {compile_update!r}")
        if compile_update and (ent_coef_auto or callable(temperature)):
            # A value that changes between steps would compile the graph again for each new value.
            raise ValueError(
                "compile_update=True needs a fixed ent_coef and a constant temperature, got "
                f"ent_coef={ent_coef!r}, temperature={temperature!r}"
            )
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
        # Without an env SB3's load() is rebuilding a saved model, whose saved settings replace these.
        resolved_n_samples = DEFAULT_N_SAMPLES if n_samples == AUTO else int(n_samples)
        if self.env is not None:  # None only while SB3's load() rebuilds a model, with its saved spaces
            space = check_factorised_action_space(self.action_space, type(self).__name__)
            top_k = issubclass(self.policy_class, GumbelACPolicy) and self.policy_class.top_k
            layout = TopKLayout.of(space) if top_k else ChoiceLayout.of(space)
            resolve_target_entropy(target_entropy, layout.n_joint_actions, ent_coef_auto)
            critic_input, next_value, resolved_n_samples = _settings_for_space(
                space,
                layout,
                estimator=estimator,
                critic_input=critic_input,
                next_value=next_value,
                n_samples=n_samples,
            )
            if simultaneous_updates and critic_input != "mixture":
                raise ValueError(
                    "simultaneous_updates=True reads the mixture critic's values of every action: it needs "
                    f"critic_input='mixture' (a Discrete action space), got critic_input={critic_input!r}"
                )
            if compile_update and top_k and estimator in _RELAXED_ESTIMATORS:
                raise ValueError(
                    f"compile_update=True cannot compile estimator={estimator!r} on slates: the relaxed "
                    "top-k's bisection reads the scores' values; use 'score_function' or 'exact', or "
                    "compile_update=False"
                )

        self.estimator = estimator
        self.temperature = temperature
        self.n_samples = resolved_n_samples
        self.n_rao_samples = n_rao_samples
        self.critic_input = critic_input
        self.next_value = next_value
        # The critic's architecture depends on it, so the policy receives it (and saves it) as a kwarg; a new
        # dict, because SB3 keeps the caller's, which may be reused for another model.
        self.policy_kwargs = {**self.policy_kwargs, "critic_input": critic_input}
        self.ent_coef = ent_coef
        self.target_entropy = target_entropy
        self.target_update_interval = target_update_interval
        self.policy_delay = policy_delay
        self.simultaneous_updates = simultaneous_updates
        self.munchausen_coef = munchausen_coef
        self.munchausen_clip = munchausen_clip
        self.logit_penalty = logit_penalty
        self.critic_pessimism = critic_pessimism
        self.max_grad_norm = max_grad_norm
        self.compile_update = compile_update
        self.log_ent_coef: th.Tensor | None = None
        self.ent_coef_optimizer: th.optim.Adam | None = None

        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        super()._setup_model()
        self._create_aliases()
        # Derived here, not in __init__: SB3's load() restores the arguments without calling __init__.
        self._ent_coef_auto, initial_ent_coef = parse_ent_coef(self.ent_coef)
        check_factorised_action_space(self.action_space, type(self).__name__)
        self._layout = self.actor.layout
        self._target_entropy = resolve_target_entropy(
            self.target_entropy, self._layout.n_joint_actions, self._ent_coef_auto
        )
        self.batch_norm_stats = get_parameters_by_name(self.critic, ["running_"])
        self.batch_norm_stats_target = get_parameters_by_name(self.critic_target, ["running_"])
        # Listed once: walking the module tree on every gradient step took about 5% of training time.
        self.critic_parameters: list[th.Tensor] = list(self.critic.parameters())
        self.critic_target_parameters: list[th.Tensor] = list(self.critic_target.parameters())
        # A model saved under an estimator's alias is loaded without passing through __init__.
        self.estimator = ESTIMATOR_ALIASES.get(self.estimator, self.estimator)
        if self._ent_coef_auto:
            # The log is learned so that alpha stays positive (softlearning issue #37).
            self.log_ent_coef = th.log(th.ones(1, device=self.device) * initial_ent_coef).requires_grad_(True)
            self.ent_coef_optimizer = th.optim.Adam([self.log_ent_coef], lr=self.lr_schedule(1))
        else:
            self.ent_coef_tensor = th.tensor(initial_ent_coef, device=self.device)
        # Set while the compiled update differentiates with torch.func, w.r.t. the parameters it is given.
        self._functional_gradients = False
        self._compiled_update: CompiledUpdate | None = None
        if self.compile_update:
            check_compilable_optimizer(self.critic.optimizer, "critics")
            check_compilable_optimizer(self.actor.optimizer, "actor")
            self._compiled_update = CompiledUpdate(self)

    def _sample_action(
        self, learning_starts: int, action_noise: ActionNoise | None = None, n_envs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.num_timesteps < learning_starts and isinstance(self._layout, TopKLayout):
            # The space's own sample() may repeat an item: a slate that the policy never draws and whose
            # log-probability (the Munchausen term's) is undefined. Uniform slates of distinct items instead,
            # from the space's generator, which SB3 seeds.
            generator = self.action_space.np_random
            layout = self._layout
            action = np.stack(
                [generator.choice(layout.n_items, layout.k, replace=False) for _ in range(n_envs)]
            )
            return action, action
        return super()._sample_action(learning_starts, action_noise, n_envs)

    def _create_aliases(self) -> None:
        self.actor = self.policy.actor
        self.critic = self.policy.critic
        self.critic_target = self.policy.critic_target

    def _current_temperature(self) -> float:
        """
        :return: The Gumbel temperature at the current progress, checked to be a finite number > 0
        """
        return value_at(self.temperature, self._current_progress_remaining, "temperature", check_positive)

    def _current_ent_coef(self) -> th.Tensor:
        if self.log_ent_coef is not None:
            return th.exp(self.log_ent_coef.detach())
        return self.ent_coef_tensor

    def _pooled(self, values: th.Tensor) -> th.Tensor:
        """The critics' values pooled: ``(1 - p)·mean_i Q_i + p·min_i Q_i``, p = ``critic_pessimism``.

        :param values: Every critic's values, shape ``(n_critics, ...)``
        :return: The pooled values, shape ``(...)``: the minimum (clipped double Q) at the default p = 1
        """
        lowest = values.min(dim=0).values
        if self.critic_pessimism == 1.0:
            return lowest
        return th.lerp(values.mean(dim=0), lowest, self.critic_pessimism)

    @th.no_grad()
    def _update_target_critic(self) -> None:
        """``θ_target ← (1 - τ)·θ_target + τ·θ`` and the batch-norm statistics copied.

        SB3's ``polyak_update`` arithmetic, to the last bit, in two calls over every parameter instead of two
        a parameter.
        """
        th._foreach_mul_(self.critic_target_parameters, 1.0 - self.tau)
        th._foreach_add_(self.critic_target_parameters, self.critic_parameters, alpha=self.tau)
        polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)

    def _due(self, interval: int, gradient_step: int) -> bool:
        """Whether something done every ``interval`` gradient steps (the target critics' update, the actor's
        step) is due at this ``train`` call's gradient step ``gradient_step``.

        Counted over the whole run (gradient step number ``_n_updates + gradient_step + 1``, as TD3 counts its
        delayed steps), so that an interval longer than one ``train`` call's ``gradient_steps`` is honoured.

        :param interval: ``target_update_interval`` or ``policy_delay``
        :param gradient_step: the step's index in this call, from 0
        :return: whether it is due at that step
        """
        return (self._n_updates + gradient_step + 1) % interval == 0

    @contextmanager
    def _frozen_critic(self) -> Iterator[None]:
        """Build graphs in which the critic's parameters take no gradient (inputs still do)."""
        if self._functional_gradients:
            # torch.func differentiates only w.r.t. what it is given, and refuses requires_grad_ inside.
            yield
            return
        flags = [param.requires_grad for param in self.critic_parameters]
        for param in self.critic_parameters:
            param.requires_grad_(False)
        try:
            yield
        finally:
            for param, flag in zip(self.critic_parameters, flags, strict=True):
                param.requires_grad_(flag)

    def _actor_value(
        self,
        observations: th.Tensor,
        generator: th.Generator | None,
        temperature: float,
        estimator: str,
        critic_values: th.Tensor | None = None,
    ) -> ActorValue:
        """The actor's distribution on ``observations`` and ``estimator``'s surrogate of its value.

        Random draws come from ``generator`` (the global torch RNG when ``None``), so a caller can draw
        gradient estimates with a private generator without perturbing a training run.

        :param observations: Batch of observations, shape ``(batch, *obs_shape)``
        :param generator: Optional source of randomness for the estimator's samples
        :param temperature: The Gumbel temperature of the relaxed estimators
        :param estimator: One of :data:`ESTIMATOR_NAMES`
        :param critic_values: The mixture critics' pooled values of every action on ``observations``, shape
            ``(batch, |A|)``, where the caller has them (``simultaneous_updates``); ``None``: the critics are
            evaluated here
        :return: the logits, the entropy, the critic's value of the policy and the surrogate
        """
        logits = self.actor(observations)
        # Before the estimator's graph: autograd then sums the gradient's terms in the order that trained
        # the committed reference models, to the last bit.
        entropy = self._layout.entropy(logits)
        critic = self.critic
        if not critic.discrete:
            return self._factorised_actor_value(
                logits, entropy, observations, generator, temperature, estimator
            )
        log_probs = F.log_softmax(logits, dim=-1)
        features: th.Tensor | None = None
        if critic_values is None:
            with th.no_grad():
                features = critic.features(observations)
                q_values = self._pooled(critic.all_action_values(features))
        else:
            q_values = critic_values

        def value(actions: th.Tensor) -> th.Tensor:
            # actions: (n_samples, batch, K) one-hot or relaxed -> (n_samples, batch)
            if critic.critic_input == "mixture":
                return (actions * q_values).sum(dim=-1)
            assert features is not None  # critic values are given for the mixture critic only
            return self._pooled(critic.action_values(features, actions))

        options: dict[str, Any] = {}
        if estimator in _RELAXED_ESTIMATORS:
            options["tau"] = temperature
        if estimator == "gumbel_rao":
            options["n_rao_samples"] = self.n_rao_samples
        if estimator == "score_function":
            # The critic's state value V(s) = Σ_a π(a|s) Q(s, a) does not depend on the sampled action, so as
            # a baseline it keeps the estimate unbiased and removes most of its variance.
            options["baseline"] = (log_probs.detach().exp() * q_values).sum(dim=-1)
        with self._frozen_critic():
            surrogate = ESTIMATORS[estimator](
                logits, value, n_samples=self.n_samples, generator=generator, **options
            )
        # The estimators sum their per-state estimates over the batch.
        q_value = (log_probs.detach().exp() * q_values).sum(dim=-1).mean()
        return ActorValue(logits, entropy, q_value, surrogate / logits.shape[0])

    def _factorised_actor_value(
        self,
        logits: th.Tensor,
        entropy: th.Tensor,
        observations: th.Tensor,
        generator: th.Generator | None,
        temperature: float,
        estimator: str,
    ) -> ActorValue:
        """:meth:`_actor_value` for several choices, whose concat critic reads the (relaxed) joint action.

        :param logits: The actor's logits on ``observations``
        :param entropy: The policy's entropy in each state
        :param observations: Batch of observations, shape ``(batch, *obs_shape)``
        :param generator: Optional source of randomness for the estimator's samples
        :param temperature: The Gumbel temperature of the relaxed estimators
        :param estimator: One of :data:`ESTIMATOR_NAMES`
        :return: the logits, the surrogate's value and the surrogate
        """
        critic = self.critic
        with th.no_grad():
            features = critic.features(observations)

        def value(actions: th.Tensor) -> th.Tensor:
            # actions: (n, batch, width) encoded or relaxed joint actions -> (n, batch)
            return self._pooled(critic.action_values(features, actions))

        with self._frozen_critic():
            surrogate = self._layout.surrogate(
                logits,
                value,
                estimator,
                n_samples=self.n_samples,
                tau=temperature,
                n_rao_samples=self.n_rao_samples,
                generator=generator,
            )
        surrogate = surrogate / logits.shape[0]
        return ActorValue(logits, entropy, surrogate.detach(), surrogate)

    def _actor_loss(
        self,
        observations: th.Tensor,
        ent_coef: th.Tensor,
        temperature: float,
        critic_values: th.Tensor | None = None,
    ) -> tuple[th.Tensor, dict[str, th.Tensor]]:
        """
        The actor loss whose gradient w.r.t. the actor's parameters is the model's estimator's estimate.

        :param observations: Batch of observations, shape ``(batch, *obs_shape)``
        :param ent_coef: The entropy coefficient alpha
        :param temperature: The Gumbel temperature
        :param critic_values: The critics' values of every action on ``observations`` from their loss
            (``simultaneous_updates``, :meth:`_critic_loss`); ``None``: the critics are evaluated again
        :return: The loss (a scalar to minimise) and detached diagnostics: ``"objective"`` (the soft actor
            objective, exact for a ``Discrete`` space, see :class:`ActorValue`) and ``"entropy"`` (the mean
            policy entropy, nats)
        """
        actor = self._actor_value(observations, None, temperature, self.estimator, critic_values)
        entropy = actor.entropy.mean()
        # Soft policy objective E_s[π(s)ᵀ(alpha log π(s) - Q(s))] (Christodoulou, 2019, Sec. 4; the discrete
        # form of Haarnoja et al., 2018, eq. 7), the Q-term's gradient from the estimator's surrogate.
        loss = -ent_coef * entropy - actor.surrogate
        if self.logit_penalty > 0.0:
            # Squared centred logits: unlike the entropy bonus, whose gradient vanishes with the policy's
            # spread, this pulls a saturated state back to where the critic's values can move it again.
            loss = loss + self.logit_penalty * self._layout.logit_spread(actor.logits).mean()
        objective = -ent_coef * entropy.detach() - actor.q_value
        return loss, {"objective": objective, "entropy": entropy.detach()}

    def actor_gradient_draws(
        self,
        n_draws: int,
        batch_size: int,
        generator: th.Generator,
        *,
        estimator: str | None = None,
        temperature: float | None = None,
    ) -> ActorGradientDraws:
        """Draw the estimator's gradient ``n_draws`` times on a fixed replay batch, and the exact one.

        Each draw is the gradient w.r.t. the actor's parameters of the estimator's surrogate of
        ``mean_s E_{a~π(·|s)} Q(s, a)`` (the model's estimator, temperature and ``n_samples``), the only
        random part of the actor loss; the exact gradient is that of the ``"exact"`` surrogate, which
        enumerates the (joint) actions: several choices or slates with more than
        :data:`rlrelax.agents.common.MAX_ENUMERATED_ACTIONS` of them (``rlrelax/Slate-v0``'s 6,840 ordered
        slates) have none, and their draws' variance and SNR are still measured. The entropy and
        logit-penalty terms are deterministic and left out. Used by
        :class:`rlrelax.callbacks.GradientStatsCallback`.

        :param n_draws: number of draws
        :param batch_size: number of replay observations in the fixed batch
        :param generator: random number generator for the batch and the estimator's samples, on the model's
            device; the global one is not touched
        :param estimator: the estimator to draw, one of :data:`ESTIMATOR_NAMES` that this action space
            accepts (the model's own when ``None``): other estimators on the same actor and critic, to compare
            them without the differences between training runs
        :param temperature: the Gumbel temperature of the relaxed estimators, > 0 (the model's current one
            when ``None``)
        :return: the draws and the exact gradient (``None`` where the joint actions are too many to enumerate)
        """
        assert self.replay_buffer is not None
        if estimator is None:
            estimator = self.estimator
        else:
            check_choice(estimator, "estimator", ESTIMATOR_NAMES)
            _settings_for_space(
                check_factorised_action_space(self.action_space, type(self).__name__),
                self._layout,
                estimator=estimator,
                critic_input=self.critic_input,
                next_value=self.next_value,
                n_samples=self.n_samples,
            )
        if temperature is None:
            temperature = self._current_temperature()
        else:
            check_number_or_schedule(temperature, "temperature", check_positive, "> 0")
        observations = replay_observations(self.replay_buffer, batch_size, generator, self._vec_normalize_env)
        parameters = list(self.actor.parameters())

        def gradient(name: str, source: th.Generator | None) -> th.Tensor:
            return flat_gradient(
                self._actor_value(observations, source, temperature, name).surrogate, parameters
            )

        estimates = th.stack([gradient(estimator, generator) for _ in range(n_draws)])
        # A Discrete action's exact gradient sums over its K actions under the critic's own K values, with no
        # cap; only the enumerated joint actions of several choices or slates have one.
        if not self.critic.discrete and self._layout.n_joint_actions > MAX_ENUMERATED_ACTIONS:
            return ActorGradientDraws(estimates, None)
        return ActorGradientDraws(estimates, gradient("exact", None))

    def _critic_target(self, replay_data: ReplayBufferSamples, ent_coef: float) -> th.Tensor:
        """The critics' soft Bellman target, on the target critics' pooled value (:meth:`_pooled`).

        :param replay_data: A replay batch
        :param ent_coef: The entropy coefficient alpha
        :return: The targets, shape ``(batch, 1)``
        """
        if not self.critic.discrete:
            return self._factorised_critic_target(replay_data, ent_coef)

        def target_q_values(observations: th.Tensor) -> th.Tensor:
            return self._pooled(self.critic_target(observations))

        return soft_bellman_target(
            replay_data,
            target_q_values,
            ent_coef=ent_coef,
            gamma=self.gamma,
            munchausen_coef=self.munchausen_coef,
            munchausen_clip=self.munchausen_clip,
            policy_logits=self.actor if self.next_value == "policy" else None,
        )

    @th.no_grad()
    def _factorised_critic_target(self, replay_data: ReplayBufferSamples, ent_coef: float) -> th.Tensor:
        """:meth:`_critic_target` for several choices: the actor's soft value of the next state.

        ``V(s') = E_{a'~π}[Q̄(s', a') - alpha log π(a'|s')]`` (discrete SAC's target, Christodoulou, 2019,
        Sec. 4, with the target critics pooled by :meth:`_pooled`, by default SAC's clipped double Q), by
        :meth:`rlrelax.agents.common.ChoiceLayout.soft_value`: exact for a small joint space, else the mean
        over ``n_samples`` draws of the actor; the Munchausen term takes ``alpha log π(a|s)`` from the actor.

        :param replay_data: A replay batch
        :param ent_coef: The entropy coefficient alpha
        :return: The targets, shape ``(batch, 1)``
        """
        logits, next_logits = current_and_next(replay_data, self.actor, self.munchausen_coef > 0.0)
        features = self.critic_target.features(replay_data.next_observations)

        def q_values(actions: th.Tensor) -> th.Tensor:
            return self._pooled(self.critic_target.action_values(features, actions))

        next_values = self._layout.soft_value(next_logits, q_values, ent_coef, self.n_samples)
        scaled_log_pi = (
            None
            if logits is None
            else ent_coef * self._layout.log_prob(logits, replay_data.actions).unsqueeze(-1)
        )
        return soft_bellman_backup(
            replay_data,
            next_values,
            scaled_log_pi,
            gamma=self.gamma,
            munchausen_coef=self.munchausen_coef,
            munchausen_clip=self.munchausen_clip,
        )

    def _critic_loss(
        self, replay_data: ReplayBufferSamples, ent_coef: float
    ) -> tuple[th.Tensor, th.Tensor | None]:
        """The critics' loss on a replay batch.

        The soft Bellman residual of each critic (Haarnoja et al., 2018, eq. 5) under the Huber loss, as in
        SB3's DQN and rlrelax's SoftQ: a TD error far from the target moves the critic a bounded step. Halved
        and summed over the critics, as SB3's SAC does with its squared error.

        :param replay_data: A replay batch
        :param ent_coef: The entropy coefficient alpha
        :return: The loss, a scalar, and with ``simultaneous_updates`` the critics' pooled values of every
            action on the batch's states, detached, for the actor's loss (else ``None``)
        """
        target_q = self._critic_target(replay_data, ent_coef)
        critic_values = None
        if self.simultaneous_updates:
            all_values = self.critic(replay_data.observations)
            current_q = self.critic.select_taken(all_values, replay_data.actions)
            critic_values = self._pooled(all_values.detach())
        else:
            current_q = self.critic.taken_action_values(replay_data.observations, replay_data.actions)
        loss = 0.5 * self.critic.n_critics * F.smooth_l1_loss(current_q, target_q.expand_as(current_q))
        return loss, critic_values

    def _eager_update(
        self, replay_data: ReplayBufferSamples, ent_coef: th.Tensor, temperature: float, update_actor: bool
    ) -> dict[str, th.Tensor]:
        """One gradient step of the critics and, if ``update_actor``, of the actor, by autograd and the
        optimisers' own steps.

        :param replay_data: A replay batch
        :param ent_coef: The entropy coefficient alpha, a one-element tensor
        :param temperature: The Gumbel temperature
        :param update_actor: Whether the actor takes its step too (every ``policy_delay``-th step)
        :return: the critics' loss (``"critic_loss"``) and, if the actor stepped, its diagnostics
            (:meth:`_actor_loss`)
        """
        critic_loss, critic_values = self._critic_loss(replay_data, float(ent_coef))
        self.critic.optimizer.zero_grad()
        critic_loss.backward()
        th.nn.utils.clip_grad_norm_(self.critic_parameters, self.max_grad_norm)
        self.critic.optimizer.step()
        if not update_actor:
            return {"critic_loss": critic_loss.detach()}

        actor_loss, info = self._actor_loss(replay_data.observations, ent_coef, temperature, critic_values)
        self.actor.optimizer.zero_grad()
        actor_loss.backward()
        self.actor.optimizer.step()
        return {"critic_loss": critic_loss.detach(), **info}

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        self.policy.set_training_mode(True)
        optimizers: list[th.optim.Optimizer] = [self.actor.optimizer, self.critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers.append(self.ent_coef_optimizer)
        self._update_learning_rate(optimizers)
        temperature = self._current_temperature()

        # Diagnostics stay tensors until the loop ends: one read of their values instead of five a step.
        diagnostics: dict[str, list[th.Tensor]] = defaultdict(list)
        if self._compiled_update is not None:
            # Every gradient step of this call, target updates included, in one compiled call. Batches come
            # from numpy's generator, the steps' noise from torch's, so drawing all batches first changes
            # neither.
            ent_coef = self._current_ent_coef()
            batches = [
                self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
                for _ in range(gradient_steps)
            ]
            infos = self._compiled_update(
                batches,
                ent_coef,
                temperature,
                tuple(self._due(self.target_update_interval, step) for step in range(gradient_steps)),
                tuple(self._due(self.policy_delay, step) for step in range(gradient_steps)),
            )
            diagnostics["ent_coef"] = [ent_coef.detach().reshape(())] * gradient_steps
        else:
            infos = []
            for gradient_step in range(gradient_steps):
                replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
                ent_coef = self._current_ent_coef()
                diagnostics["ent_coef"].append(ent_coef.detach().reshape(()))
                info = self._eager_update(
                    replay_data, ent_coef, temperature, self._due(self.policy_delay, gradient_step)
                )
                infos.append(info)

                if (
                    "entropy" in info
                    and self.ent_coef_optimizer is not None
                    and self.log_ent_coef is not None
                ):
                    loss_of_alpha = ent_coef_loss(self.log_ent_coef, info["entropy"], self._target_entropy)
                    diagnostics["ent_coef_loss"].append(loss_of_alpha.detach())
                    self.ent_coef_optimizer.zero_grad()
                    loss_of_alpha.backward()
                    self.ent_coef_optimizer.step()

                if self._due(self.target_update_interval, gradient_step):
                    self._update_target_critic()
        for info in infos:
            diagnostics["critic_loss"].append(info["critic_loss"])
            if "objective" in info:  # a step in which the actor stepped too
                diagnostics["actor_loss"].append(info["objective"].reshape(()))
                diagnostics["entropy"].append(info["entropy"])

        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        for name, values in diagnostics.items():
            # The mean of the values as Python floats, as SB3's SAC logs its diagnostics.
            mean = np.mean(th.stack(values).tolist())
            if self._compiled_update is not None:
                check_not_diverged(type(self).__name__, name, mean)
            self.logger.record(f"train/{name}", mean)
        self.logger.record("train/temperature", temperature)

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
            "_layout",
            "_functional_gradients",
            "_compiled_update",
        ]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts = ["policy", "actor.optimizer", "critic.optimizer"]
        if self.ent_coef_optimizer is not None:
            saved_pytorch_variables = ["log_ent_coef"]
            state_dicts.append("ent_coef_optimizer")
        else:
            saved_pytorch_variables = ["ent_coef_tensor"]
        return state_dicts, saved_pytorch_variables


def _settings_for_space(
    space: FactorisedSpace,
    layout: ChoiceLayout,
    *,
    estimator: str,
    critic_input: str,
    next_value: str,
    n_samples: int | str,
) -> tuple[str, str, int]:
    """Resolve ``"auto"`` for the action space, and check what several choices need.

    :param space: the action space
    :param layout: its layout
    :param estimator: the estimator's name (or alias)
    :param critic_input: ``"mixture"``, ``"concat"`` or ``"auto"``
    :param next_value: ``"boltzmann"``, ``"policy"`` or ``"auto"``
    :param n_samples: action samples per state, or ``"auto"``
    :return: the resolved ``critic_input``, ``next_value`` and ``n_samples``
    """
    discrete = isinstance(space, spaces.Discrete)
    if critic_input == AUTO:
        critic_input = CRITIC_INPUTS[0] if discrete else "concat"
    if next_value == AUTO:
        next_value = NEXT_VALUES[0] if discrete else "policy"
    if n_samples == AUTO:
        # On several choices n_samples also draws the next soft value of a joint space too large to enumerate,
        # which one draw would leave noisy, so gumbel_rao keeps the default there.
        n_samples = GUMBEL_RAO_N_SAMPLES if discrete and estimator == "gumbel_rao" else DEFAULT_N_SAMPLES
    n_samples = int(n_samples)
    if discrete:
        return critic_input, next_value, n_samples
    if critic_input != "concat":
        raise ValueError(
            f"critic_input={critic_input!r} needs a Discrete action space, got {space!r}: on several choices "
            "the critic reads the joint action, critic_input='concat'"
        )
    if next_value != "policy":
        raise ValueError(
            f"next_value={next_value!r} needs a Discrete action space, got {space!r}: the Boltzmann soft "
            "value is a sum over every joint action; use next_value='policy', the actor's soft value"
        )
    if (
        ESTIMATOR_ALIASES.get(estimator, estimator) == "exact"
        and layout.n_joint_actions > MAX_ENUMERATED_ACTIONS
    ):
        raise ValueError(
            f"estimator={estimator!r} enumerates the joint actions: {space!r} has {layout.n_joint_actions}, "
            f"more than {MAX_ENUMERATED_ACTIONS}; use a sampling estimator such as 'gumbel_softmax' or "
            "'score_function'"
        )
    if isinstance(layout, TopKLayout) and estimator == "gumbel_rao":
        raise ValueError(
            f"estimator='gumbel_rao' is not available for slates ({space!r}): it needs Gumbel noise "
            "conditioned on the sampled top-k; use 'gumbel_softmax', 'straight_through', 'score_function' or "
            "'exact'"
        )
    if estimator == "score_function" and n_samples < 2:
        raise ValueError(
            f"estimator='score_function' on {space!r} takes a leave-one-out baseline over the n_samples "
            f"draws, so n_samples must be >= 2, got {n_samples}"
        )
    return critic_input, next_value, n_samples
