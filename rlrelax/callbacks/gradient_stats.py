"""Log the variance, signal-to-noise ratio and bias of an actor's gradient estimates during training."""

import time
from typing import Protocol, runtime_checkable

import torch
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

from rlrelax.agents.common import ActorGradientDraws, flat_gradient


@runtime_checkable
class DrawsActorGradients(Protocol):
    """An algorithm that can draw its own actor-gradient estimates (every rlrelax agent)."""

    def actor_gradient_draws(
        self, n_draws: int, batch_size: int, generator: torch.Generator
    ) -> ActorGradientDraws: ...


def on_policy_gradient_draws(
    model: OnPolicyAlgorithm, n_draws: int, batch_size: int, generator: torch.Generator
) -> ActorGradientDraws:
    """Score-function gradients of SB3's PPO/A2C policy loss on random minibatches of the last rollout.

    At the parameters that collected the rollout PPO's probability ratio is 1, so its clipped loss has
    the gradient of ``-mean(advantage * log_prob)``, which is also A2C's policy loss. Advantages are
    normalised per minibatch where the algorithm does so (``normalize_advantage``). There is no exact
    gradient to compare with: the returns of the actions not taken are unknown.

    :param model: a PPO or A2C model whose rollout buffer holds the last rollout
    :param n_draws: number of minibatches to draw
    :param batch_size: minibatch size
    :param generator: random number generator for the minibatch indices
    :return: the draws (``exact`` is ``None``)
    """
    buffer = model.rollout_buffer
    size = buffer.buffer_size * buffer.n_envs
    observations = torch.as_tensor(buffer.observations.reshape(size, *buffer.obs_shape), device=model.device)
    actions = torch.as_tensor(buffer.actions.reshape(size, -1), device=model.device).long().flatten()
    advantages = torch.as_tensor(buffer.advantages.reshape(size), device=model.device)
    parameters = [p for p in model.policy.parameters() if p.requires_grad]
    normalize = bool(getattr(model, "normalize_advantage", False))
    estimates = []
    for _ in range(n_draws):
        batch = torch.randint(size, (min(batch_size, size),), generator=generator, device=model.device)
        _, log_prob, _ = model.policy.evaluate_actions(observations[batch], actions[batch])
        advantage = advantages[batch]
        if normalize and len(advantage) > 1:
            advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
        estimates.append(flat_gradient(-(advantage * log_prob).mean(), parameters))
    return ActorGradientDraws(torch.stack(estimates), None)


def gradient_statistics(draws: ActorGradientDraws) -> dict[str, float]:
    """Summarise draws of a gradient estimate.

    :param draws: at least two draws, and optionally the exact gradient
    :return: ``variance`` (trace of the covariance of the draws, unbiased), ``snr`` (squared norm of
        the mean over the variance), ``mean_norm``, and with an exact gradient ``bias_cosine`` (cosine
        between mean and exact) and ``bias_relative_error`` (``|mean - exact| / |exact|``)
    """
    estimates = draws.estimates.double()
    mean = estimates.mean(0)
    variance = float(estimates.var(0, unbiased=True).sum())
    mean_norm = float(mean.norm())
    stats = {
        "variance": variance,
        "snr": mean_norm**2 / variance if variance > 0 else float("inf"),
        "mean_norm": mean_norm,
    }
    if draws.exact is not None:
        exact = draws.exact.double()
        exact_norm = float(exact.norm())
        stats["bias_cosine"] = float(torch.nn.functional.cosine_similarity(mean, exact, dim=0))
        stats["bias_relative_error"] = (
            float((mean - exact).norm()) / exact_norm if exact_norm > 0 else float("nan")
        )
    return stats


class GradientStatsCallback(BaseCallback):
    """Every ``every_n_steps`` env steps, draw the actor's gradient estimate ``n_draws`` times and log it.

    Logged under ``gradient_stats/``: ``variance`` (trace of the covariance of the draws), ``snr`` (the
    signal-to-noise ratio ``|mean|^2 / variance``), ``mean_norm``, and where the exact gradient of the
    same objective is available (``GumbelAC``, the Boltzmann policy of ``SoftQ``) ``bias_cosine`` and
    ``bias_relative_error``; also ``seconds`` (this measurement) and ``total_seconds`` (all of them), so
    the cost can be budgeted.

    What is drawn: for rlrelax agents, their :meth:`actor_gradient_draws` on a fixed batch of their own
    training data; for SB3's PPO and A2C, the score-function gradient of the policy loss on minibatches of
    the last rollout. Measurements happen at the end of a rollout, when that data is ready.

    The draws use a private ``torch.Generator`` and :func:`torch.autograd.grad`, never the global random
    state or the parameters' ``.grad``: a run with this callback trains exactly like one without it.

    :param every_n_steps: env steps between two measurements
    :param n_draws: draws of the estimate per measurement (at least 2, for a variance)
    :param batch_size: size of the fixed batch (of observations, or of rollout minibatches)
    :param seed: seed of the private generator
    :param verbose: SB3's verbosity level
    """

    def __init__(
        self, every_n_steps: int, n_draws: int = 32, batch_size: int = 256, seed: int = 0, verbose: int = 0
    ) -> None:
        super().__init__(verbose)
        for name, value, least in (
            ("every_n_steps", every_n_steps, 1),
            ("n_draws", n_draws, 2),
            ("batch_size", batch_size, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be an int >= {least}, got {value!r}")
        self.every_n_steps = every_n_steps
        self.n_draws = n_draws
        self.batch_size = batch_size
        self.seed = seed
        self.total_seconds = 0.0
        self.history: list[dict[str, float]] = []
        self._next_measurement = every_n_steps
        self._generator = torch.Generator()

    def _on_training_start(self) -> None:
        if not isinstance(self.model, (DrawsActorGradients, PPO, A2C)):
            raise TypeError(
                "GradientStatsCallback measures rlrelax agents and SB3's PPO and A2C, "
                f"not {type(self.model).__name__}"
            )
        self._generator = torch.Generator(device=self.model.device).manual_seed(self.seed)
        self._next_measurement = self.num_timesteps + self.every_n_steps

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        if self.num_timesteps < self._next_measurement or not self._has_training_data():
            return
        self._next_measurement = self.num_timesteps + self.every_n_steps
        started = time.perf_counter()
        if isinstance(self.model, DrawsActorGradients):
            draws = self.model.actor_gradient_draws(self.n_draws, self.batch_size, self._generator)
        else:
            assert isinstance(self.model, OnPolicyAlgorithm)
            draws = on_policy_gradient_draws(self.model, self.n_draws, self.batch_size, self._generator)
        stats = gradient_statistics(draws)
        seconds = time.perf_counter() - started
        self.total_seconds += seconds
        stats.update(seconds=seconds, total_seconds=self.total_seconds, timesteps=float(self.num_timesteps))
        self.history.append(stats)
        for key, value in stats.items():
            if key != "timesteps":
                self.logger.record(f"gradient_stats/{key}", value)

    def _has_training_data(self) -> bool:
        model: BaseAlgorithm = self.model
        replay_buffer = getattr(model, "replay_buffer", None)
        if replay_buffer is not None:
            return replay_buffer.size() > 0 and model.num_timesteps > getattr(model, "learning_starts", 0)
        return True
