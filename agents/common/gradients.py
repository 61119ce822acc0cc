"""Actor-gradient draws: what :class:`rlrelax.callbacks.GradientStatsCallback` measures on an agent."""

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
import torch
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.vec_env import VecNormalize


class ActorGradientDraws(NamedTuple):
    """Independent draws of an actor-gradient estimate on one fixed batch, flattened over parameters.

    :param estimates: ``(n_draws, n_parameters)``, one row per draw of the estimator
    :param exact: ``(n_parameters,)``, the exact gradient of the same objective on the same batch where
        it can be computed (by enumerating the actions), else ``None``
    """

    estimates: torch.Tensor
    exact: torch.Tensor | None


def flat_gradient(loss: torch.Tensor, parameters: Iterable[torch.nn.Parameter]) -> torch.Tensor:
    """Gradient of ``loss`` w.r.t. ``parameters``, concatenated into one vector.

    Uses :func:`torch.autograd.grad`, which returns the gradient instead of accumulating it into
    ``.grad``, so measuring never leaks into the next optimizer step.

    :param loss: a scalar tensor
    :param parameters: the parameters to differentiate with respect to
    :return: a flat tensor with one entry per parameter element (zeros where ``loss`` does not depend on it)
    """
    parameters = list(parameters)
    gradients = torch.autograd.grad(loss, parameters, allow_unused=True)
    return torch.cat(
        [
            (torch.zeros_like(p) if g is None else g).reshape(-1)
            for p, g in zip(parameters, gradients, strict=True)
        ]
    )


def replay_observations(
    replay_buffer: ReplayBuffer, batch_size: int, generator: torch.Generator, env: VecNormalize | None = None
) -> torch.Tensor:
    """Draw a batch of stored observations with ``generator``, leaving the global random state alone.

    ``ReplayBuffer.sample`` draws its indices from NumPy's global generator, so sampling through it to
    measure something would change the batches training draws afterwards.

    :param replay_buffer: the buffer to draw from (not empty)
    :param batch_size: number of observations
    :param generator: random number generator for the indices, on any device
    :param env: the ``VecNormalize`` wrapper whose statistics normalise the observations, if any
    :return: a ``(batch_size, *obs_shape)`` tensor on the buffer's device
    """
    stored = replay_buffer.buffer_size if replay_buffer.full else replay_buffer.pos
    if stored == 0:
        raise RuntimeError("the replay buffer is empty: there is no batch to measure on yet")
    # The indices are drawn on the generator's device (a CUDA generator cannot draw on the CPU) and brought
    # to the CPU, where the buffer's NumPy arrays live.
    steps = torch.randint(stored, (batch_size,), generator=generator, device=generator.device).cpu().numpy()
    envs = (
        torch.randint(replay_buffer.n_envs, (batch_size,), generator=generator, device=generator.device)
        .cpu()
        .numpy()
    )
    observations = replay_buffer._normalize_obs(replay_buffer.observations[steps, envs], env)
    assert isinstance(observations, np.ndarray)
    return torch.as_tensor(observations, device=replay_buffer.device).float()
