"""GumbelAC's gradient steps as one graph compiled by ``torch.compile`` (``compile_update=True``)."""

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch as th
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from rlrelax.agents.common.compiled import (
    AdamState,
    CompiledUpdateBase,
    Diagnostics,
    clip_gradient_norm_,
    loss_gradient,
)

if TYPE_CHECKING:
    from rlrelax.agents.gumbel_ac.gumbel_ac import GumbelAC


class CompiledUpdate(CompiledUpdateBase[list[Diagnostics]]):
    """The gradient steps of one GumbelAC ``train`` call, compiled into one graph by ``torch.compile``
    (:mod:`rlrelax.agents.common.compiled`).

    Each step holds the critics' loss and its gradient (over GumbelAC's own loss methods), the clipping of its
    norm, Adam and, where due, the actor's loss and its gradient, Adam again, and the target critics' update:
    the eager steps' arithmetic up to float rounding. A gradient step is 2.0 to 2.4 times as fast on a CPU
    (``experiments/tuning/speed.md``, "One compiled graph per gradient step"), and taking a call's steps in
    one graph saves Dynamo's check of its inputs and the eager target update at every step but the first
    ("Both gradient steps in one graph").

    :param model: the GumbelAC model whose gradient steps to take
    """

    def __init__(self, model: "GumbelAC") -> None:
        self._model = model
        self._critic_gradient = loss_gradient(model.policy, self._critic_loss, model.critic_parameters)
        self._actor_gradient = loss_gradient(model.policy, model._actor_loss, list(model.actor.parameters()))
        super().__init__(type(model).__name__, model.device)

    def _critic_loss(
        self, replay_data: ReplayBufferSamples, ent_coef: float
    ) -> tuple[th.Tensor, Diagnostics]:
        loss, critic_values = self._model._critic_loss(replay_data, ent_coef)
        aux = {"critic_loss": loss.detach()}
        if critic_values is not None:  # simultaneous_updates: for the actor's loss, not a diagnostic
            aux["critic_values"] = critic_values
        return loss, aux

    def _gradient_step(
        self,
        replay_data: ReplayBufferSamples,
        ent_coef: th.Tensor,
        ent_coef_value: float,
        temperature: float,
        critic_adam: AdamState,
        actor_adam: AdamState,
        update_actor: bool,
    ) -> Diagnostics:
        model = self._model
        critic_params = model.critic_parameters
        grads, (_, diagnostics) = self._critic_gradient(
            [param.detach() for param in critic_params], replay_data, ent_coef_value
        )
        critic_values = diagnostics.pop("critic_values", None)
        clip_gradient_norm_(grads, model.max_grad_norm)
        critic_adam.step(critic_params, grads)
        if not update_actor:
            return diagnostics
        actor_params: list[th.Tensor] = list(model.actor.parameters())
        grads, (_, info) = self._actor_gradient(
            [param.detach() for param in actor_params],
            replay_data.observations,
            ent_coef,
            temperature,
            critic_values,
        )
        actor_adam.step(actor_params, grads)
        return {**diagnostics, **info}

    def _update(
        self,
        batches: list[ReplayBufferSamples],
        ent_coef: th.Tensor,
        ent_coef_value: float,
        temperature: float,
        critic_adam: AdamState,
        actor_adam: AdamState,
        target_updates: tuple[bool, ...],
        actor_updates: tuple[bool, ...],
    ) -> list[Diagnostics]:
        steps = []
        for replay_data, update_target, update_actor in zip(
            batches, target_updates, actor_updates, strict=True
        ):
            steps.append(
                self._gradient_step(
                    replay_data, ent_coef, ent_coef_value, temperature, critic_adam, actor_adam, update_actor
                )
            )
            if update_target:
                self._model._update_target_critic()
        return steps

    def __call__(
        self,
        batches: list[ReplayBufferSamples],
        ent_coef: th.Tensor,
        temperature: float,
        target_updates: Sequence[bool],
        actor_updates: Sequence[bool],
    ) -> list[Diagnostics]:
        """Take one gradient step of the critics, and where due of the actor, on each replay batch, in order.

        :param batches: the replay batches, one a step
        :param ent_coef: the entropy coefficient alpha, a one-element tensor
        :param temperature: the Gumbel temperature
        :param target_updates: for each step, whether the target critics move after it (a constant of the
            graph: one graph per pattern, and there is one pattern for a fixed ``target_update_interval``
            dividing ``gradient_steps``)
        :param actor_updates: for each step, whether the actor takes its step after the critics' (a constant
            of the graph, as ``target_updates``)
        :return: each step's critics' loss (``"critic_loss"``) and, where the actor stepped, its diagnostics
            (``"objective"``, ``"entropy"``, as :meth:`GumbelAC._actor_loss` returns them), detached
        """
        for name, flags in (("target_updates", target_updates), ("actor_updates", actor_updates)):
            if len(flags) != len(batches):
                raise ValueError(f"one {name} flag a batch: got {len(flags)} for {len(batches)}")
        model = self._model
        model._functional_gradients = True
        try:
            return self._take(
                batches,
                ent_coef,
                float(ent_coef),
                temperature,
                AdamState.of(model.critic.optimizer, model.critic_parameters),
                AdamState.of(model.actor.optimizer, list(model.actor.parameters())),
                tuple(target_updates),
                tuple(actor_updates),
            )
        finally:
            model._functional_gradients = False
