"""REINFORCE: Monte Carlo policy gradient over complete episodes, as a Stable-Baselines3 algorithm."""

import sys
import time
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import explained_variance, obs_as_tensor, safe_mean
from stable_baselines3.common.vec_env import VecEnv
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
    ActorGradientDraws,
    PlackettLuceDistribution,
    check_factorised_action_space,
    flat_gradient,
)
from rlrelax.agents.reinforce.policies import ActionControlVariate, MlpPolicy, TopKPolicy
from rlrelax.estimators import leave_one_out_baseline, mean_baseline, score_function_surrogate
from rlrelax.estimators.rebar import control_variate_terms
from rlrelax.relax import LinearSchedule

SelfREINFORCE = TypeVar("SelfREINFORCE", bound="REINFORCE")

BASELINES = ("none", "mean", "value", "leave_one_out", "relax")

# Decaying the step size to zero makes the last updates small, so the policy that training ends with is
# the one it had converged to rather than a random step away from it (Monte Carlo gradients stay noisy
# even at the optimum).
DEFAULT_LEARNING_RATE = LinearSchedule(3e-3, 0.0)


@dataclass
class Episode:
    """One complete episode, collected under a single policy.

    :param observations: the observations ``s_0 .. s_{T-1}``, shape ``(T, *obs_shape)``
    :param actions: the actions ``a_0 .. a_{T-1}``, shape ``(T,)`` for a ``Discrete`` space, else
        ``(T, n_choices)``
    :param rewards: the rewards ``r_1 .. r_T``, shape ``(T,)``
    :param noise: the Gumbel noise that drew each action (``baseline="relax"`` only), shape ``(T, K)``
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    noise: np.ndarray | None = None


class EpisodeBuffer:
    """The complete episodes of one rollout, and the steps of the episodes still running in each env.

    Each env contributes a fixed quota of episodes: the first ``quota`` that it starts in the rollout.

    :param n_envs: the number of environments stepped together
    :param quota: the number of complete episodes each env contributes to a rollout
    """

    def __init__(self, n_envs: int, quota: int) -> None:
        self.n_envs = n_envs
        self.quota = quota
        self.episodes: list[Episode] = []
        self._completed = np.zeros(n_envs, dtype=np.int64)
        self._observations: list[list[np.ndarray]] = [[] for _ in range(n_envs)]
        self._actions: list[list[np.ndarray]] = [[] for _ in range(n_envs)]
        self._rewards: list[list[float]] = [[] for _ in range(n_envs)]
        self._noise: list[list[np.ndarray]] = [[] for _ in range(n_envs)]

    def reset(self) -> None:
        """Forget every episode, complete or not."""
        self.episodes = []
        self._completed[:] = 0
        for env_index in range(self.n_envs):
            self._discard(env_index)

    def wants_episode(self, env_index: int) -> bool:
        """Whether env ``env_index`` has not yet contributed its quota of episodes.

        :param env_index: the env
        :return: ``True`` while the env's next episode is to be recorded
        """
        return bool(self._completed[env_index] < self.quota)

    @property
    def is_full(self) -> bool:
        """Whether every env has contributed its quota: the rollout is complete."""
        return bool((self._completed >= self.quota).all())

    def add(
        self,
        env_index: int,
        observation: np.ndarray,
        action: np.ndarray,
        reward: float,
        noise: np.ndarray | None = None,
    ) -> None:
        """Append one step to the episode running in env ``env_index``.

        :param env_index: which env took the step
        :param observation: the observation the action was chosen on
        :param action: the action taken: an index, or one entry per choice
        :param reward: the reward received for it
        :param noise: the Gumbel noise that drew the action, kept only where the update needs it
        """
        self._observations[env_index].append(observation)
        self._actions[env_index].append(action)
        self._rewards[env_index].append(reward)
        if noise is not None:
            self._noise[env_index].append(noise)

    def finish(self, env_index: int) -> None:
        """Move the episode running in env ``env_index`` to the complete episodes.

        :param env_index: the env whose episode has just ended
        """
        self.episodes.append(
            Episode(
                observations=np.stack(self._observations[env_index]),
                actions=np.asarray(self._actions[env_index], dtype=np.int64),
                rewards=np.asarray(self._rewards[env_index], dtype=np.float32),
                noise=np.stack(self._noise[env_index]) if self._noise[env_index] else None,
            )
        )
        self._completed[env_index] += 1
        self._discard(env_index)

    def _discard(self, env_index: int) -> None:
        self._observations[env_index] = []
        self._actions[env_index] = []
        self._rewards[env_index] = []
        self._noise[env_index] = []

    @property
    def n_steps(self) -> int:
        """The number of steps in the complete episodes."""
        return sum(len(episode.actions) for episode in self.episodes)


@dataclass
class EpisodeBatch:
    """Complete episodes laid out for one gradient step.

    Step tensors are concatenated episode after episode (``mask`` order); ``returns`` holds each episode's
    reward-to-go in a row, zero-padded after its end, so that per-time-step baselines can average across
    the episodes of the batch.

    :param observations: shape ``(N, *obs_shape)`` for the N steps of the batch
    :param actions: shape ``(N,)`` (int64) for a ``Discrete`` space, else ``(N, n_choices)`` (float32, as in
        SB3's buffers)
    :param returns: reward-to-go, shape ``(M, T)`` for M episodes of at most T steps
    :param mask: ``True`` where ``returns`` holds a real step, shape ``(M, T)``
    :param noise: the Gumbel noise that drew each action, shape ``(N, K)`` (``baseline="relax"`` only)
    """

    observations: th.Tensor
    actions: th.Tensor
    returns: th.Tensor
    mask: th.Tensor
    noise: th.Tensor | None = None


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """Reward-to-go ``G_t = sum_{k >= t} gamma^(k - t) r_{k+1}`` along the last axis.

    :param rewards: rewards, shape ``(..., T)``; zero padding after an episode's end leaves its returns exact
    :param gamma: the discount factor
    :return: the returns, same shape and dtype as ``rewards``
    """
    returns = np.zeros_like(rewards)
    running = np.zeros_like(rewards[..., 0])
    for t in reversed(range(rewards.shape[-1])):
        running = rewards[..., t] + gamma * running
        returns[..., t] = running
    return returns


class REINFORCE(BaseAlgorithm):
    """
    REINFORCE: on-policy Monte Carlo policy gradient over complete episodes.

    Paper: R. J. Williams (1992), "Simple statistical gradient-following algorithms for connectionist
    reinforcement learning", Machine Learning 8, 229-256 (the episodic form, Sec. 5). Leave-one-out
    baseline: W. Kool, H. van Hoof and M. Welling (2019), "Buy 4 REINFORCE samples, get a baseline for
    free!", ICLR Deep RL Meets Structured Prediction workshop. Reward-to-go and the state-value baseline
    follow R. S. Sutton and A. G. Barto (2018), "Reinforcement Learning: An Introduction", 2nd ed., Sec.
    13.3-13.4 ("REINFORCE" and "REINFORCE with baseline"). Action-dependent control variate
    (``baseline="relax"``): W. Grathwohl, D. Choi, Y. Wu, G. Roeder and D. Duvenaud (2018), "Backpropagation
    through the Void: Optimizing control variates for black-box gradient estimation", ICLR, section 3.3.

    Each update uses a batch of complete episodes, all collected with the current policy.
    The return of step t is the discounted reward-to-go to the episode's end; nothing is bootstrapped,
    not even when a time limit truncates the episode (CartPole-v1 at 500 steps): the episode is then
    treated as ending there, the standard Monte Carlo choice. The undiscounted state weighting
    (``gamma^t`` left out of the gradient) follows common practice.

    With ``n_envs`` envs, each env contributes the first ``ceil(n_episodes / n_envs)`` episodes that it
    starts in a rollout, so which episodes enter a batch never depends on their length (stopping at the
    first ``n_episodes`` to end anywhere would favour short ones). An env that is mid-episode when a rollout
    starts, or has met its quota, keeps stepping without recording until its episode ends; those steps
    count towards ``total_timesteps`` like every env step. ``learn(N)`` takes at most ``N + n_envs - 1``
    env steps; a last rollout that the budget cuts short is not trained on, as its complete episodes
    would again favour short ones.

    The defaults target ``REINFORCE("MlpPolicy", "CartPole-v1").learn(100_000)``; their evidence is in
    ``experiments/tuning/reinforce.md``.

    Supported action spaces: ``Discrete``, and ``MultiDiscrete`` and ``MultiBinary`` of one dimension, with
    SB3's distributions for them (a categorical per choice, or a Bernoulli per bit; their log-probabilities
    add up); anything else is a ``ValueError`` naming the space. The observation space must not be a
    ``Dict``. With ``"TopKPolicy"`` (:class:`~rlrelax.agents.reinforce.policies.TopKPolicy`) a
    ``MultiDiscrete([N] * k)`` action is a slate of ``k`` distinct items out of ``N``, drawn by Gumbel-top-k
    from one logit per item and trained on its Plackett-Luce log-probability (Kool, van Hoof and Welling,
    2019, "Stochastic Beams and Where to Find Them").

    :param policy: the policy model to use (``"MlpPolicy"``, ``"TopKPolicy"`` for slates, or an
        ``ActorCriticPolicy`` subclass)
    :param env: the environment to learn from (if registered in Gym, can be str)
    :param learning_rate: Adam's step size, a float or a schedule of the remaining progress (1 -> 0);
        the default decays linearly from 3e-3 to 0 over ``learn``
    :param n_episodes: the number of complete episodes per update (at least 2 for ``"leave_one_out"``),
        rounded up to a multiple of the number of envs
    :param gamma: the discount factor of the reward-to-go
    :param baseline: what is subtracted from the return: ``"none"``; ``"mean"``, the mean reward-to-go at
        the same time step over the batch's episodes (an ended episode counts 0), itself included;
        ``"leave_one_out"``, the same mean over the OTHER episodes, which keeps the estimate unbiased;
        ``"value"``, a learned state value V(s) (the policy's value head, fitted to the batch's returns
        standardised by their mean and standard deviation, and mapped back for the baseline); ``"relax"``,
        RELAX's learned, action-dependent control variate (Grathwohl et al., 2018): the estimate of step t is
        ``[G_t - c(z~_t, s_t)] ∇ log π(a_t|s_t) + ∇ c(z_t, s_t) - ∇ c(z~_t, s_t)``, where ``z_t`` is the
        Gumbel-max sample that drew ``a_t`` (kept from the rollout) and ``z~_t ~ p(z | a_t)``; unbiased for
        every :class:`~rlrelax.agents.reinforce.policies.ActionControlVariate` ``c``, which is trained to
        minimise the estimate's variance (the squared per-step gradient w.r.t. the logits), with its own
        Adam optimizer on the same learning-rate schedule. ``Discrete`` action spaces only
    :param normalize_advantage: whether to standardise the advantages (return minus baseline) over the
        batch; with ``baseline="none"`` this is return normalisation; with ``baseline="relax"`` the returns
        are standardised instead (over the batch), since the control variate's correction terms must stay
        on the scale of the returns it is subtracted from
    :param ent_coef: the entropy bonus coefficient, a float >= 0 or a schedule of the remaining progress
        (1 -> 0), read at the start of each update; RL Zoo style ``"lin_0.05"`` in a hyperparameter file
        fades it to 0
    :param vf_coef: the value-loss coefficient (``baseline="value"`` only)
    :param max_grad_norm: the gradient-norm clipping threshold, or ``None`` for no clipping
    :param stats_window_size: the number of episodes ``rollout/ep_rew_mean`` averages over
    :param tensorboard_log: the log location for tensorboard (if None, no logging)
    :param policy_kwargs: additional arguments passed to the policy on creation
    :param verbose: verbosity level: 0 none, 1 info, 2 debug
    :param seed: seed for the pseudo random generators
    :param device: device (cpu, cuda, ...) on which the code should be run
    :param _init_setup_model: whether to build the network at the creation of the instance
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {"MlpPolicy": MlpPolicy, "TopKPolicy": TopKPolicy}
    policy: ActorCriticPolicy

    def __init__(
        self,
        policy: str | type[ActorCriticPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = DEFAULT_LEARNING_RATE,
        n_episodes: int = 4,
        gamma: float = 0.99,
        baseline: str = "value",
        normalize_advantage: bool = True,
        ent_coef: float | Schedule = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float | None = 0.5,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        check_choice(baseline, "baseline", BASELINES)
        check_int(
            n_episodes, f"n_episodes (with baseline={baseline!r})", 2 if baseline == "leave_one_out" else 1
        )
        check_unit_interval(gamma, "gamma", include_zero=True)
        check_number_or_schedule(ent_coef, "ent_coef", check_non_negative, ">= 0")
        check_positive(vf_coef, "vf_coef")
        if max_grad_norm is not None:
            check_positive(max_grad_norm, "max_grad_norm")
        if not callable(learning_rate):
            check_positive(learning_rate, "learning_rate")

        super().__init__(
            policy=policy,
            env=env,
            learning_rate=learning_rate,
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            support_multi_env=True,
            seed=seed,
            supported_action_spaces=None,
        )
        # ``load`` builds the model without an env first and checks the saved spaces itself.
        if env is not None:
            check_factorised_action_space(self.action_space, type(self).__name__)
        if env is not None and baseline == "relax" and not isinstance(self.action_space, spaces.Discrete):
            raise ValueError(
                f"baseline='relax' needs a Discrete action space (its control variate relaxes one "
                f"categorical choice), got {self.action_space!r}"
            )
        if env is not None and isinstance(self.observation_space, spaces.Dict):
            raise ValueError(
                f"{type(self).__name__} does not support Dict observation spaces, "
                f"got {self.observation_space!r}"
            )

        self.n_episodes = int(n_episodes)
        self.gamma = gamma
        self.baseline = baseline
        self.normalize_advantage = normalize_advantage
        self.ent_coef = ent_coef
        self.vf_coef = vf_coef
        self.max_grad_norm = max_grad_norm

        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        self.policy = self.policy_class(  # type: ignore[assignment]
            self.observation_space, self.action_space, self.lr_schedule, **self.policy_kwargs
        )
        self.policy = self.policy.to(self.device)
        self.episode_buffer = self._new_episode_buffer()
        if self.baseline == "relax":
            assert isinstance(self.action_space, spaces.Discrete)
            self.control_variate = ActionControlVariate(self.observation_space, int(self.action_space.n)).to(
                self.device
            )
            self.control_variate_optimizer = th.optim.Adam(
                self.control_variate.parameters(), lr=self.lr_schedule(1)
            )

    def _new_episode_buffer(self) -> EpisodeBuffer:
        """An empty episode buffer for the current number of envs, each env's quota rounded up."""
        return EpisodeBuffer(self.n_envs, quota=-(-self.n_episodes // self.n_envs))

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "episode_buffer"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts = ["policy", "policy.optimizer"]
        if self.baseline == "relax":
            state_dicts += ["control_variate", "control_variate_optimizer"]
        return state_dicts, []

    def _optimizers(self) -> list[th.optim.Optimizer]:
        """The optimizers that the learning-rate schedule drives."""
        if self.baseline == "relax":
            return [self.policy.optimizer, self.control_variate_optimizer]
        return [self.policy.optimizer]

    def _action_logits(self, observations: th.Tensor) -> th.Tensor:
        """The actor's logits: one row per observation, ``sum(nvec)`` entries for a ``MultiDiscrete`` space.

        :param observations: a batch of raw observations
        :return: ``(batch, n_logits)``
        """
        policy = self.policy
        features = policy.pi_features_extractor(
            preprocess_obs(observations, self.observation_space, normalize_images=policy.normalize_images)
        )
        return policy.action_net(policy.mlp_extractor.forward_actor(features))

    def _sample_actions(self, observations: th.Tensor) -> tuple[th.Tensor, th.Tensor | None]:
        """
        Draw actions from the policy, as ``policy.get_distribution(obs).get_actions()`` does.

        The Gumbel-max trick ``argmax(logits + Gumbel noise)``, once per choice, draws exactly from the
        categorical policy, and a uniform draw below ``sigmoid(logit)`` from a Bernoulli one, from the global
        torch RNG, without building a ``torch.distributions`` object, which would cost more than the network
        itself on the one-observation batches of a rollout.

        A slate policy (:class:`~rlrelax.agents.common.PlackettLuceDistribution`) draws its ``k`` items by
        Gumbel-top-k, which its distribution does without a ``torch.distributions`` object either.

        :param observations: a batch of observations
        :return: the actions, shape ``(batch,)`` for a ``Discrete`` space, else ``(batch, n_choices)``; and
            the Gumbel noise that drew them, ``(batch, n_logits)`` (``None`` for a ``MultiBinary`` space and
            for a slate)
        """
        logits = self._action_logits(observations)
        if isinstance(self.policy.action_dist, PlackettLuceDistribution):
            return self.policy.action_dist.proba_distribution(logits).sample(), None
        if isinstance(self.action_space, spaces.MultiBinary):
            return (th.rand_like(logits) < th.sigmoid(logits)).long(), None
        # -log(E) for E ~ Exp(1) is a standard Gumbel.
        noise = -th.empty_like(logits).exponential_().log()
        scores = logits + noise
        if isinstance(self.action_space, spaces.MultiDiscrete):
            sizes = [int(n) for n in self.action_space.nvec]
            actions = th.stack([choice.argmax(dim=-1) for choice in scores.split(sizes, dim=-1)], dim=-1)
            return actions, noise
        return scores.argmax(dim=-1), noise

    def collect_rollouts(self, env: VecEnv, callback: BaseCallback, episode_buffer: EpisodeBuffer) -> bool:
        """
        Step ``env`` with the current policy until every env has completed its quota of episodes in
        ``episode_buffer`` (the first ones it starts in this rollout) or ``total_timesteps`` is reached.

        The callback hooks run as in SB3's ``OnPolicyAlgorithm.collect_rollouts``, with the same local
        names (``new_obs``, ``rewards``, ``dones``, ``infos``, ``actions``).

        :param env: the training environment
        :param callback: called at each step, and at the start and end of the rollout
        :param episode_buffer: filled with the complete episodes
        :return: False if the callback stopped training, else True
        """
        assert self._last_obs is not None, "No previous observation was provided"
        assert self._last_episode_starts is not None
        self.policy.set_training_mode(False)
        episode_buffer.reset()
        # An env records only episodes that start in this rollout; one that is mid-episode started it
        # under an older policy and is skipped until its episode ends.
        recording = np.array(self._last_episode_starts, dtype=bool)
        obs = self._last_obs
        # Dict observation spaces are refused at construction.
        assert isinstance(obs, np.ndarray)

        callback.on_rollout_start()

        while not episode_buffer.is_full and self.num_timesteps < self._total_timesteps:
            with th.no_grad():
                obs_tensor = th.as_tensor(obs, device=self.device)
                action_tensor, noise_tensor = self._sample_actions(obs_tensor)
                actions = action_tensor.cpu().numpy()
                # Only RELAX's update needs the noise; the other baselines don't keep it.
                noise = None
                if self.baseline == "relax" and noise_tensor is not None:
                    noise = noise_tensor.cpu().numpy()

            new_obs, rewards, dones, infos = env.step(actions)

            self.num_timesteps += env.num_envs

            callback.update_locals(locals())
            if not callback.on_step():
                return False

            self._update_info_buffer(infos, dones)
            self._episode_num += int(dones.sum())

            for env_index in range(env.num_envs):
                if recording[env_index]:
                    episode_buffer.add(
                        env_index,
                        obs[env_index],
                        actions[env_index],
                        float(rewards[env_index]),
                        None if noise is None else noise[env_index],
                    )
                if dones[env_index]:
                    if recording[env_index]:
                        episode_buffer.finish(env_index)
                    recording[env_index] = episode_buffer.wants_episode(env_index)

            assert isinstance(new_obs, np.ndarray)
            self._last_obs = obs = new_obs
            self._last_episode_starts = dones

        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    def _make_batch(self, episodes: list[Episode]) -> EpisodeBatch:
        lengths = [len(episode.actions) for episode in episodes]
        rewards = np.zeros((len(episodes), max(lengths)), dtype=np.float32)
        for row, episode in enumerate(episodes):
            rewards[row, : lengths[row]] = episode.rewards
        mask = np.arange(rewards.shape[1])[None, :] < np.asarray(lengths)[:, None]
        observations = np.concatenate([episode.observations for episode in episodes])
        observations_tensor = obs_as_tensor(observations, self.device)
        assert isinstance(observations_tensor, th.Tensor)
        actions = th.as_tensor(np.concatenate([episode.actions for episode in episodes]), device=self.device)
        if not isinstance(self.action_space, spaces.Discrete):
            # SB3's distributions take several choices as floats, as its own buffers store them.
            actions = actions.float()
        noise = None
        if self.baseline == "relax":
            noise = th.as_tensor(
                np.concatenate([episode.noise for episode in episodes if episode.noise is not None]),
                device=self.device,
            )
        return EpisodeBatch(
            observations=observations_tensor,
            actions=actions,
            returns=th.as_tensor(discounted_returns(rewards, self.gamma), device=self.device),
            mask=th.as_tensor(mask, device=self.device),
            noise=noise,
        )

    def _actor_loss(
        self, batch: EpisodeBatch, generator: th.Generator | None = None
    ) -> tuple[th.Tensor, dict[str, th.Tensor]]:
        """
        The REINFORCE surrogate loss of one batch of complete episodes, with its entropy bonus.

        It draws no random numbers (the actions come from the environment) except with
        ``baseline="relax"``, which draws the conditional samples ``z~`` from ``generator``; so estimating the
        gradient with a generator of its own never perturbs the training run.

        :param batch: the episodes
        :param generator: the source of ``z~`` for ``baseline="relax"`` (``None``: the global RNG)
        :return: the loss to minimise, and a dict with ``policy_loss``, ``entropy`` and, with
            ``baseline="value"``, the differentiable ``value_loss`` and ``explained_variance``, with
            ``baseline="relax"``, the ``control_variate_loss`` (differentiable w.r.t. the control variate)
        """
        info: dict[str, th.Tensor] = {}
        returns = batch.returns[batch.mask]
        if self.baseline == "relax":
            policy_loss, step_entropy = self._relax_policy_loss(batch, returns, generator, info)
            info["policy_loss"] = policy_loss
            info["entropy"] = step_entropy.mean()
            return policy_loss - self._current_ent_coef() * info["entropy"], info
        if self.baseline == "value":
            values, log_probs, entropy = self.policy.evaluate_actions(batch.observations, batch.actions)
            values = values.flatten()
            # The value head regresses on batch-standardised returns, so its output stays O(1) whatever
            # the reward scale and one Adam step per batch can follow it; the baseline maps it back.
            scale = returns.std() if returns.numel() > 1 else returns.new_tensor(1.0)
            scale = th.clamp(scale, min=1e-8)
            offset = returns.mean()
            targets = (returns - offset) / scale
            info["value_loss"] = F.mse_loss(values, targets)
            info["explained_variance"] = th.as_tensor(
                explained_variance(values.detach().cpu().numpy(), targets.cpu().numpy())
            )
            advantages = returns - (values.detach() * scale + offset)
        else:
            distribution = self.policy.get_distribution(batch.observations)
            log_probs = distribution.log_prob(batch.actions)
            entropy = distribution.entropy()
            if self.baseline == "none":
                advantages = returns
            elif self.baseline == "mean":
                advantages = returns - mean_baseline(batch.returns, dim=0)[batch.mask]
            else:
                # Kool et al. (2019): each episode's baseline is the mean over the other episodes.
                advantages = returns - leave_one_out_baseline(batch.returns, dim=0)[batch.mask]
        if self.normalize_advantage and advantages.numel() > 1:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        assert entropy is not None
        # Williams (1992), Sec. 5: the gradient of sum_t log pi(a_t|s_t) (G_t - b_t) is the episodic
        # REINFORCE estimate; averaging over the batch's steps keeps its scale independent of batch size.
        policy_loss = -score_function_surrogate(log_probs, advantages) / advantages.numel()
        info["policy_loss"] = policy_loss
        info["entropy"] = entropy.mean()
        return policy_loss - self._current_ent_coef() * info["entropy"], info

    def _relax_policy_loss(
        self,
        batch: EpisodeBatch,
        returns: th.Tensor,
        generator: th.Generator | None,
        info: dict[str, th.Tensor],
    ) -> tuple[th.Tensor, th.Tensor]:
        """The policy loss of ``baseline="relax"``, and the control variate's variance loss into ``info``.

        Grathwohl et al. (2018), section 3.3: the RELAX estimate is computed per step w.r.t. the logits,
        ``ĝ_t = [G_t - c(z~_t, s_t)] ∇ log π(a_t|s_t) + ∇ c(z_t, s_t) - ∇ c(z~_t, s_t)``; the policy follows
        the mean of ``ĝ_t`` (back-propagated through the logits, as REINFORCE's surrogate averages over
        steps) and the control variate minimises the mean of ``‖ĝ_t‖²``, the per-step estimate's variance
        plus a term that does not depend on it (``E[ĝ_t]`` does not depend on ``c``).

        :param batch: the episodes, with the Gumbel noise that drew their actions
        :param returns: the reward-to-go of each step, ``(N,)``
        :param generator: the source of ``z~`` (``None``: the global RNG)
        :param info: receives ``control_variate_loss``
        :return: the policy loss and the per-step entropy of the policy
        """
        assert batch.noise is not None
        if self.normalize_advantage and returns.numel() > 1:
            returns = (returns - returns.mean()) / (returns.std() + 1e-8)
        logits = self._action_logits(batch.observations)
        # The estimate is taken w.r.t. a detached copy of the logits, so that differentiating it again (for
        # the control variate's variance) never builds a graph through the policy network.
        leaf = logits.detach().requires_grad_(True)
        observations = batch.observations
        with th.enable_grad():
            log_probs = th.log_softmax(leaf, dim=-1)
            terms = control_variate_terms(
                log_probs,
                log_probs + batch.noise,
                batch.actions,
                returns,
                # c sees z and z~ stacked along the batch dimension, so the states are stacked alike.
                lambda perturbed: self.control_variate(th.cat([observations, observations]), perturbed),
                generator,
            )
            (estimate,) = th.autograd.grad(terms.sum(), leaf, create_graph=True)
        info["control_variate_loss"] = estimate.square().sum(dim=-1).mean()
        n_steps = returns.numel()
        # Value: minus the mean (standardised) return, as the score-function surrogate's; gradient: -mean ĝ_t.
        step = (logits * estimate.detach()).sum()
        policy_loss = -(returns.sum() + step - step.detach()) / n_steps
        entropy = th.distributions.Categorical(logits=logits).entropy()
        return policy_loss, entropy

    def actor_gradient_draws(
        self, n_draws: int, batch_size: int, generator: th.Generator
    ) -> ActorGradientDraws:
        """Draw the policy-gradient estimate ``n_draws`` times on the episodes of the last rollout.

        New episodes cannot be drawn without stepping the environment (which would change the training
        run), so each draw is the estimate on a bootstrap resample, with replacement, of the last
        rollout's episodes: as many episodes as one update uses. No exact gradient is available: the
        returns of the actions not taken are unknown. Used by
        :class:`rlrelax.callbacks.GradientStatsCallback`.

        :param n_draws: number of draws
        :param batch_size: unused (REINFORCE resamples whole episodes, not single steps)
        :param generator: random number generator for the resampling; the global one is not touched
        :return: the draws, with ``exact=None``
        """
        episodes = self.episode_buffer.episodes
        if not episodes:
            raise RuntimeError("actor_gradient_draws needs the episodes of a rollout; call it after one")
        parameters = [p for p in self.policy.parameters() if p.requires_grad]
        estimates = []
        for _ in range(n_draws):
            # Drawn on the generator's device (a CUDA generator cannot draw on the CPU), used as Python ints.
            picks = th.randint(len(episodes), (len(episodes),), generator=generator, device=generator.device)
            _, info = self._actor_loss(self._make_batch([episodes[i] for i in picks.tolist()]), generator)
            estimates.append(flat_gradient(info["policy_loss"], parameters))
        return ActorGradientDraws(th.stack(estimates), None)

    def _current_ent_coef(self) -> float:
        """
        :return: the entropy bonus coefficient at the current progress, checked to be a finite number >= 0
        """
        return value_at(self.ent_coef, self._current_progress_remaining, "ent_coef", check_non_negative)

    def train(self) -> None:
        """Take one gradient step on the episodes in ``episode_buffer``."""
        self.policy.set_training_mode(True)
        optimizers = self._optimizers()
        self._update_learning_rate(optimizers)
        episodes = self.episode_buffer.episodes
        loss, info = self._actor_loss(self._make_batch(episodes))
        if "value_loss" in info:
            loss = loss + self.vf_coef * info["value_loss"]
        if "control_variate_loss" in info:
            # It reaches only the control variate, the policy loss only the policy: one backward pass.
            loss = loss + info["control_variate_loss"]

        for optimizer in optimizers:
            optimizer.zero_grad()
        loss.backward()
        if self.max_grad_norm is not None:
            th.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
            if self.baseline == "relax":
                th.nn.utils.clip_grad_norm_(self.control_variate.parameters(), self.max_grad_norm)
        for optimizer in optimizers:
            optimizer.step()
        self._n_updates += 1

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/n_episodes", len(episodes))
        self.logger.record("train/batch_steps", self.episode_buffer.n_steps)
        self.logger.record("train/ent_coef", self._current_ent_coef())
        self.logger.record("train/loss", loss.item())
        for key, value in info.items():
            self.logger.record(f"train/{key}", value.item())

    def dump_logs(self, iteration: int = 0) -> None:
        """
        Write the log, with the keys of SB3's on-policy algorithms.

        :param iteration: the current logging iteration
        """
        assert self.ep_info_buffer is not None
        assert self.ep_success_buffer is not None
        time_elapsed = max((time.time_ns() - self.start_time) / 1e9, sys.float_info.epsilon)
        fps = int((self.num_timesteps - self._num_timesteps_at_start) / time_elapsed)
        if iteration > 0:
            self.logger.record("time/iterations", iteration, exclude="tensorboard")
        if len(self.ep_info_buffer) > 0 and len(self.ep_info_buffer[0]) > 0:
            self.logger.record(
                "rollout/ep_rew_mean", safe_mean([ep_info["r"] for ep_info in self.ep_info_buffer])
            )
            self.logger.record(
                "rollout/ep_len_mean", safe_mean([ep_info["l"] for ep_info in self.ep_info_buffer])
            )
        self.logger.record("time/fps", fps)
        self.logger.record("time/episodes", self._episode_num, exclude="tensorboard")
        self.logger.record("time/time_elapsed", int(time_elapsed), exclude="tensorboard")
        self.logger.record("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
        if len(self.ep_success_buffer) > 0:
            self.logger.record("rollout/success_rate", safe_mean(self.ep_success_buffer))
        self.logger.dump(step=self.num_timesteps)

    def learn(
        self: SelfREINFORCE,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str = "REINFORCE",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfREINFORCE:
        iteration = 0

        total_timesteps, callback = self._setup_learn(
            total_timesteps,
            callback,
            reset_num_timesteps,
            tb_log_name,
            progress_bar,
        )

        callback.on_training_start(locals(), globals())

        assert self.env is not None
        if self.episode_buffer.n_envs != self.n_envs:  # set_env() may have changed the number of envs
            self.episode_buffer = self._new_episode_buffer()

        while self.num_timesteps < total_timesteps:
            continue_training = self.collect_rollouts(self.env, callback, self.episode_buffer)

            if not continue_training:
                break

            iteration += 1
            self._update_current_progress_remaining(self.num_timesteps, total_timesteps)

            if log_interval is not None and iteration % log_interval == 0:
                self.dump_logs(iteration)

            # A rollout cut short by the budget holds the episodes that happened to end before it: too
            # many short ones, so it is not trained on.
            if self.episode_buffer.is_full:
                self.train()

        callback.on_training_end()

        return self
