"""GumbelAC's gradient step as one graph compiled by ``torch.compile`` (``GumbelAC(compile_update=True)``)."""

from typing import TYPE_CHECKING

import torch as th
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from rlrelax.agents.common.compiled import (
    AdamState,
    CompiledGradientStep,
    Diagnostics,
    clip_gradient_norm_,
    loss_gradient,
)

if TYPE_CHECKING:
    from rlrelax.agents.gumbel_ac.gumbel_ac import GumbelAC


class CompiledUpdate(CompiledGradientStep):
    """One GumbelAC gradient step of the critics and the actor, compiled into one graph by ``torch.compile``
    (:mod:`rlrelax.agents.common.compiled`).

    The graph holds the critics' loss and its gradient (over GumbelAC's own loss methods), the clipping of its
    norm, Adam, the actor's loss and its gradient, and Adam again. It is the eager step's arithmetic up to
    float rounding, and a gradient step is 2.0 to 2.4 times as fast on a CPU
    (``experiments/tuning/speed.md``, "One compiled graph per gradient step"). The entropy coefficient's
    step and the target update stay eager.

    :param model: the GumbelAC model whose gradient steps to take
    """

    def __init__(self, model: "GumbelAC") -> None:
        self._model = model
        self._critic_gradient = loss_gradient(model.policy, self._critic_loss, model.critic_parameters)
        self._actor_gradient = loss_gradient(model.policy, model._actor_loss, list(model.actor.parameters()))
        super().__init__(type(model).__name__)

    def _critic_loss(
        self, replay_data: ReplayBufferSamples, ent_coef: float
    ) -> tuple[th.Tensor, Diagnostics]:
        loss = self._model._critic_loss(replay_data, ent_coef)
        return loss, {"critic_loss": loss.detach()}

    def _gradient_step(
        self,
        replay_data: ReplayBufferSamples,
        ent_coef: th.Tensor,
        ent_coef_value: float,
        temperature: float,
        critic_adam: AdamState,
        actor_adam: AdamState,
    ) -> Diagnostics:
        model = self._model
        critic_params = model.critic_parameters
        actor_params: list[th.Tensor] = list(model.actor.parameters())
        grads, (_, diagnostics) = self._critic_gradient(
            [param.detach() for param in critic_params], replay_data, ent_coef_value
        )
        clip_gradient_norm_(grads, model.max_grad_norm)
        critic_adam.step(critic_params, grads)
        grads, (_, info) = self._actor_gradient(
            [param.detach() for param in actor_params], replay_data.observations, ent_coef, temperature
        )
        actor_adam.step(actor_params, grads)
        return {**diagnostics, **info}

    def __call__(
        self, replay_data: ReplayBufferSamples, ent_coef: th.Tensor, temperature: float
    ) -> Diagnostics:
        """Take one gradient step of the critics and the actor on ``replay_data``.

        :param replay_data: a replay batch
        :param ent_coef: the entropy coefficient alpha, a one-element tensor
        :param temperature: the Gumbel temperature
        :return: the critics' loss (``"critic_loss"``) and the actor's diagnostics (``"objective"``,
            ``"entropy"``, as :meth:`GumbelAC._actor_loss` returns them), detached
        """
        model = self._model
        model._functional_gradients = True
        try:
            return self._take(
                replay_data,
                ent_coef,
                float(ent_coef),
                temperature,
                AdamState.of(model.critic.optimizer, model.critic_parameters),
                AdamState.of(model.actor.optimizer, list(model.actor.parameters())),
            )
        finally:
            model._functional_gradients = False
