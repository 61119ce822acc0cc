"""Log the variance, signal-to-noise ratio and bias of an actor's gradient estimates during training."""

import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

from rlrelax._validation import check_int
from rlrelax.agents.common import ActorGradientDraws, flat_gradient


@runtime_checkable
class DrawsActorGradients(Protocol):
    """An algorithm that can draw its own actor-gradient estimates (every rlrelax agent)."""

    def actor_gradient_draws(
        self, n_draws: int, batch_size: int, generator: torch.Generator
    ) -> ActorGradientDraws: ...


def measures_actor_gradient(algorithm: type) -> bool:
    """Whether :class:`GradientStatsCallback` can measure an algorithm's actor gradient.

    It can for the algorithms that draw their own estimates (every rlrelax agent) and for SB3's PPO and A2C,
    whose policy loss it differentiates itself; a value-based algorithm such as DQN has no actor gradient.

    :param algorithm: the algorithm's class
    :return: whether the callback measures it
    """
    if not isinstance(algorithm, type):
        raise TypeError(f"algorithm must be a class, got {algorithm!r} of type {type(algorithm).__name__}")
    return issubclass(algorithm, (DrawsActorGradients, PPO, A2C))


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
    # As SB3's PPO and A2C train: the buffer's actions as float32 (its _get_samples), a Discrete action
    # then as an index; MultiDiscrete and MultiBinary actions keep one entry per choice.
    actions = torch.as_tensor(buffer.actions.reshape(size, -1).astype(np.float32), device=model.device)
    if isinstance(model.action_space, spaces.Discrete):
        actions = actions.long().flatten()
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


def _jackknife(
    statistic: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor], draws: torch.Tensor
) -> tuple[float, float]:
    """A statistic of the draws and its jackknife standard error.

    The statistic is written in the draws' sufficient sums, so that its ``n`` leave-one-out values cost one
    pass: ``statistic(sum of the draws, sum of their squared norms, count)``.

    :param statistic: maps ``(sums (..., d), squared-norm sums (...), count)`` to values ``(...)``
    :param draws: ``(n, d)`` draws, float64
    :return: the statistic of all draws and its standard error
    """
    n = draws.shape[0]
    total, squares = draws.sum(0), draws.pow(2).sum()
    estimate = statistic(total, squares, n)
    left_out = statistic(total - draws, squares - draws.pow(2).sum(1), n - 1)
    # Jackknife variance (n - 1)/n Σ_i (θ_(i) - θ_(.))² (Efron and Stein, 1981); NaN leave-one-out values
    # (a ratio over a non-positive estimate) make the error NaN rather than silently small.
    spread = (left_out - left_out.mean()).pow(2).sum() * (n - 1) / n
    return float(estimate), float(spread.sqrt())


def gradient_statistics(draws: ActorGradientDraws) -> dict[str, float]:
    """Unbiased summaries of draws ``g_1..g_n`` of a gradient estimate, each with its standard error.

    With ``m`` the mean of the draws and ``S`` their sample covariance, the naive ``|m|²`` and
    ``|m - exact|²`` carry the sampling term ``tr(Σ)/n`` on top of the quantities they stand for; it is
    subtracted, which gives the U-statistic ``Σ_{i≠j} g_iᵀg_j / (n(n-1))`` for ``|E g|²``. So an unbiased
    estimator reads as ``relative_bias_sq ≈ 0`` within its error, whatever the number of draws. Standard
    errors (``*_se``) are jackknife estimates over the draws.

    ``cosine`` is NaN when the estimate of ``|E g|²`` is not positive (no mean gradient is detectable).
    Draws that are all the same (a deterministic estimate, such as GumbelAC's ``"exact"``) have a variance of
    exactly 0 and an infinite ``snr``.

    :param draws: at least three draws, and optionally the exact gradient
    :return: ``variance`` (``tr(Σ)``, the summed variance of the gradient's coordinates), ``signal``
        (``|E g|²``), ``snr`` (``signal / variance``), each with ``*_se``; with an exact gradient ``g*`` also
        ``exact_norm`` (``|g*|``), ``relative_bias_sq`` (``|E g - g*|² / |g*|²``) and ``cosine`` (between
        ``E g`` and ``g*``), with ``*_se``
    """
    estimates = draws.estimates.double()
    if estimates.dim() != 2 or estimates.shape[0] < 3:
        raise ValueError(
            f"gradient_statistics needs (n_draws >= 3, n_parameters) draws, got {tuple(estimates.shape)}"
        )

    # The sums are taken over the draws' deviations from their mean c: in the raw sums the variance is the
    # difference of two large, nearly equal numbers, and identical draws would read as rounding noise
    # (an SNR of ±1e16) instead of 0. Every statistic below is the same function of the raw draws.
    center = estimates.mean(0)
    deviations = estimates - center

    def variance(total: torch.Tensor, squares: torch.Tensor, n: int) -> torch.Tensor:
        return (squares - total.pow(2).sum(-1) / n) / (n - 1)

    def signal(total: torch.Tensor, squares: torch.Tensor, n: int) -> torch.Tensor:
        # Σ_{i≠j} g_iᵀg_j / (n(n-1)) with g_i = d_i + c.
        return (
            (total.pow(2).sum(-1) - squares) / (n * (n - 1)) + 2 * (total @ center) / n + center.pow(2).sum()
        )

    def snr(total: torch.Tensor, squares: torch.Tensor, n: int) -> torch.Tensor:
        return signal(total, squares, n) / variance(total, squares, n)

    stats: dict[str, float] = {}
    for name, statistic in (("variance", variance), ("signal", signal), ("snr", snr)):
        stats[name], stats[f"{name}_se"] = _jackknife(statistic, deviations)
    if draws.exact is not None:
        exact = draws.exact.double()
        exact_sq = exact.pow(2).sum()
        center_along_exact = center @ exact

        def mean_along_exact(total: torch.Tensor, n: int) -> torch.Tensor:
            return (total @ exact) / n + center_along_exact

        def relative_bias_sq(total: torch.Tensor, squares: torch.Tensor, n: int) -> torch.Tensor:
            # |E g - g*|² = |E g|² - 2 E[g]ᵀg* + |g*|², each term estimated without bias.
            return (signal(total, squares, n) - 2 * mean_along_exact(total, n) + exact_sq) / exact_sq

        def cosine(total: torch.Tensor, squares: torch.Tensor, n: int) -> torch.Tensor:
            return mean_along_exact(total, n) / (signal(total, squares, n).sqrt() * exact_sq.sqrt())

        stats["exact_norm"] = float(exact_sq.sqrt())
        for name, statistic in (("relative_bias_sq", relative_bias_sq), ("cosine", cosine)):
            stats[name], stats[f"{name}_se"] = _jackknife(statistic, deviations)
    return stats


class GradientStatsCallback(BaseCallback):
    """Every ``every_n_steps`` env steps, draw the actor's gradient estimate ``n_draws`` times and log it.

    Logged under ``gradient_stats/``, each with its standard error ``*_se`` (see :func:`gradient_statistics`,
    whose estimates carry no Monte Carlo bias from the finite number of draws): ``variance`` (``tr Cov``),
    ``signal`` (``|E g|²``), ``snr`` (their ratio), and where the exact gradient ``g*`` of the same objective
    is available (``GumbelAC``, the Boltzmann policy of ``SoftQ``) ``exact_norm``, ``relative_bias_sq``
    (``|E g - g*|² / |g*|²``) and ``cosine`` (between ``E g`` and ``g*``); also ``seconds`` (this
    measurement) and ``total_seconds`` (all of them), so the cost can be budgeted.

    What is drawn: for rlrelax agents, their :meth:`actor_gradient_draws` on a fixed batch of their own
    training data; for SB3's PPO and A2C, the score-function gradient of the policy loss on minibatches of
    the last rollout. Measurements happen at the end of a rollout, when that data is ready: at the first
    rollout end at or after each multiple of ``every_n_steps`` (one measurement where a rollout spans several
    multiples), so runs whose rollouts differ in length, as REINFORCE's episodes do, measure at the same
    points of training.

    The draws use a private ``torch.Generator`` and :func:`torch.autograd.grad`, never the global random
    state or the parameters' ``.grad``: a run with this callback trains exactly like one without it.

    :param every_n_steps: env steps between two measurements
    :param n_draws: draws of the estimate per measurement (at least 3, for the standard errors)
    :param batch_size: size of the fixed batch (of observations, or of rollout minibatches)
    :param seed: seed of the private generator
    :param verbose: SB3's verbosity level
    """

    def __init__(
        self, every_n_steps: int, n_draws: int = 32, batch_size: int = 256, seed: int = 0, verbose: int = 0
    ) -> None:
        super().__init__(verbose)
        check_int(every_n_steps, "every_n_steps", minimum=1)
        check_int(n_draws, "n_draws", minimum=3)
        check_int(batch_size, "batch_size", minimum=1)
        check_int(seed, "seed", minimum=0)
        self.every_n_steps = every_n_steps
        self.n_draws = n_draws
        self.batch_size = batch_size
        self.seed = seed
        self.total_seconds = 0.0
        self.history: list[dict[str, float]] = []
        self._next_measurement = every_n_steps
        self._generator = torch.Generator()

    def _on_training_start(self) -> None:
        if not measures_actor_gradient(type(self.model)):
            raise TypeError(
                "GradientStatsCallback measures rlrelax agents and SB3's PPO and A2C, "
                f"not {type(self.model).__name__}"
            )
        # On the model's device, where the estimators draw their samples; index draws name their device.
        self._generator = torch.Generator(device=self.model.device).manual_seed(self.seed)
        self._schedule_next()

    def _schedule_next(self) -> None:
        self._next_measurement = (self.num_timesteps // self.every_n_steps + 1) * self.every_n_steps

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        if self.num_timesteps < self._next_measurement or not self._has_training_data():
            return
        self._schedule_next()
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
        episode_buffer = getattr(model, "episode_buffer", None)
        if episode_buffer is not None:
            # REINFORCE does not train on a rollout that the budget cut short (it may hold no episode at all),
            # so there is no update to measure.
            return bool(episode_buffer.is_full)
        return True
