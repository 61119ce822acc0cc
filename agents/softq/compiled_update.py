"""SoftQ's gradient step as one graph compiled by ``torch.compile`` (``SoftQ(compile_update=True)``)."""

from typing import TYPE_CHECKING

from stable_baselines3.common.type_aliases import ReplayBufferSamples

from rlrelax.agents.common.compiled import (
    AdamState,
    CompiledUpdateBase,
    Diagnostics,
    clip_gradient_norm_,
    loss_gradient,
)

if TYPE_CHECKING:
    from rlrelax.agents.softq.softq import SoftQ


class CompiledUpdate(CompiledUpdateBase[Diagnostics]):
    """One SoftQ gradient step of the Q-network, compiled into one graph by ``torch.compile``
    (:mod:`rlrelax.agents.common.compiled`).

    The graph holds the soft Bellman target, the Q-network's loss and its gradient (over SoftQ's own
    :meth:`~rlrelax.agents.SoftQ._q_loss`), the clipping of its norm and Adam: the eager step's arithmetic up
    to float rounding, 1.33 times the env steps a second on CartPole-v1's entry, on a CPU
    (``experiments/tuning/speed.md``, "SoftQ's gradient step compiled"). The target network's update stays
    eager, once per env step.

    :param model: the SoftQ model whose gradient steps to take
    """

    def __init__(self, model: "SoftQ") -> None:
        self._model = model
        self._gradient = loss_gradient(model.policy, model._q_loss, model._online_params)
        super().__init__(type(model).__name__, model.device)

    def _update(
        self, replay_data: ReplayBufferSamples, ent_coef: float, optimizer_state: AdamState
    ) -> Diagnostics:
        params = self._model._online_params
        grads, (_, diagnostics) = self._gradient([param.detach() for param in params], replay_data, ent_coef)
        clip_gradient_norm_(grads, self._model.max_grad_norm)
        optimizer_state.step(params, grads)
        return diagnostics

    def __call__(self, replay_data: ReplayBufferSamples, ent_coef: float) -> Diagnostics:
        """Take one gradient step of the Q-network on ``replay_data``.

        :param replay_data: a replay batch
        :param ent_coef: the temperature alpha, a constant of the graph
        :return: the diagnostics of :meth:`SoftQ._q_loss`, detached
        """
        model = self._model
        return self._take(replay_data, ent_coef, AdamState.of(model.policy.optimizer, model._online_params))
