"""GumbelAC's gradient step as one graph compiled by ``torch.compile`` (``GumbelAC(compile_update=True)``)."""

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import torch as th
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from torch import nn
from torch.func import functional_call, grad_and_value
from torch.optim.adam import adam

if TYPE_CHECKING:
    from rlrelax.agents.gumbel_ac.gumbel_ac import GumbelAC

#: How many graphs of the update, one per setting (estimator, action space, hyperparameters), a process keeps
#: (Dynamo's default is 8 per function); models of the same setting share one.
GRAPHS_PER_PROCESS = 64

#: What a gradient step reports: the critics' loss, the soft actor objective and the policy's mean entropy.
Diagnostics = dict[str, th.Tensor]


class _PolicyLoss(nn.Module):
    """A loss of the policy as a module, so that ``functional_call`` can swap the policy's parameters."""

    def __init__(self, policy: nn.Module, loss: Callable[..., tuple[th.Tensor, Diagnostics]]) -> None:
        super().__init__()
        self.policy = policy
        self.loss = loss

    def forward(self, *args: Any) -> tuple[th.Tensor, Diagnostics]:
        return self.loss(*args)


def check_compilable_optimizer(optimizer: th.optim.Optimizer, name: str) -> None:
    """Raise unless the compiled update can run ``optimizer``'s step itself: torch's Adam, without AMSGrad,
    with one parameter group (as SB3 builds it).

    :param optimizer: an optimiser of the policy
    :param name: what the optimiser updates, for the message
    """
    if (
        type(optimizer) is not th.optim.Adam
        or len(optimizer.param_groups) != 1
        or optimizer.param_groups[0]["amsgrad"]
    ):
        raise ValueError(
            f"compile_update=True runs Adam's step inside the compiled graph: the {name}'s optimiser must be "
            f"torch.optim.Adam without amsgrad, with one parameter group, got {optimizer!r}"
        )


def _adam_state(optimizer: th.optim.Optimizer, param: th.Tensor) -> dict[str, th.Tensor]:
    """``param``'s Adam state, created as torch's Adam creates it at its first step where there is none."""
    state = optimizer.state[param]
    if not state:
        fused_or_capturable = any(group["fused"] or group["capturable"] for group in optimizer.param_groups)
        state["step"] = th.zeros((), dtype=th.float32, device=param.device if fused_or_capturable else "cpu")
        state["exp_avg"] = th.zeros_like(param, memory_format=th.preserve_format)
        state["exp_avg_sq"] = th.zeros_like(param, memory_format=th.preserve_format)
    return state


class _AdamState(NamedTuple):
    """What torch's functional Adam reads and updates, besides the parameters and their gradients."""

    exp_avgs: list[th.Tensor]
    exp_avg_sqs: list[th.Tensor]
    steps: list[th.Tensor]
    lr: th.Tensor
    #: betas, weight_decay, eps, maximize, decoupled_weight_decay: constants of the graph
    settings: tuple[tuple[float, float], float, float, bool, bool]

    @classmethod
    def of(cls, optimizer: th.optim.Optimizer, params: list[th.Tensor]) -> "_AdamState":
        """The state of ``optimizer`` (torch's Adam, one parameter group) for ``params``, created if new.

        :param optimizer: the optimiser
        :param params: its parameters
        """
        group = optimizer.param_groups[0]
        states = [_adam_state(optimizer, param) for param in params]
        return cls(
            [state["exp_avg"] for state in states],
            [state["exp_avg_sq"] for state in states],
            [state["step"] for state in states],
            # A tensor, not a number: the graph would be compiled again for each value of a schedule.
            th.tensor(group["lr"]),
            (
                tuple(group["betas"]),
                group["weight_decay"],
                group["eps"],
                group["maximize"],
                group.get("decoupled_weight_decay", False),
            ),
        )

    def step(self, params: list[th.Tensor], grads: list[th.Tensor]) -> None:
        """One Adam step on ``params`` with ``grads``, by torch's own functional Adam."""
        (beta1, beta2), weight_decay, eps, maximize, decoupled_weight_decay = self.settings
        adam(
            params,
            grads,
            self.exp_avgs,
            self.exp_avg_sqs,
            [],
            self.steps,
            foreach=False,
            amsgrad=False,
            beta1=beta1,
            beta2=beta2,
            lr=self.lr,
            weight_decay=weight_decay,
            eps=eps,
            maximize=maximize,
            decoupled_weight_decay=decoupled_weight_decay,
        )


class CompiledUpdate:
    """One GumbelAC gradient step of the critics and the actor, compiled into one graph by ``torch.compile``.

    At these network sizes a CPU spends most of an eager gradient step dispatching its some 260 operators one
    by one, and compiling the losses alone does not pay, as autograd's backward pass still runs operator by
    operator. Here the whole step is one function of tensors, compiled with ``fullgraph=True``: the critics'
    loss and its gradient (``torch.func.grad_and_value`` over GumbelAC's own loss methods, the parameters
    swapped in by ``torch.func.functional_call``), the clipping of its norm, Adam (``torch.optim.adam.adam``
    on the optimisers' own state, so that ``save``/``load`` and the learning-rate schedule work unchanged),
    the actor's loss and its gradient, and Adam again. It is the eager step's arithmetic up to float
    rounding; random draws come from eager's generator (inductor's ``fallback_random``), so a compiled step
    draws what an eager one draws. A gradient step is 2.0 to 2.4 times as fast on a CPU
    (``experiments/tuning/speed.md``, "One compiled graph per gradient step").

    The entropy coefficient's step and the target update stay eager. Where ``torch.compile`` is disabled
    (``TORCHDYNAMO_DISABLE=1``) the same function runs eagerly; where it cannot compile (no C++ compiler), a
    warning says so and it runs eagerly from then on.

    :param model: the GumbelAC model whose gradient steps to take
    """

    def __init__(self, model: "GumbelAC") -> None:
        self._model = model
        critic_loss = _PolicyLoss(model.policy, self._critic_loss)
        actor_loss = _PolicyLoss(model.policy, model._actor_loss)
        names: dict[th.Tensor, str] = {
            param: name for name, param in critic_loss.named_parameters(remove_duplicate=False)
        }
        self._critic_gradient = self._gradient_of(critic_loss, [names[p] for p in model.critic_parameters])
        self._actor_gradient = self._gradient_of(actor_loss, [names[p] for p in model.actor.parameters()])
        self._step: Callable[..., Diagnostics] = th.compile(
            self._gradient_step, fullgraph=True, dynamic=False, options={"fallback_random": True}
        )

    @staticmethod
    def _gradient_of(
        loss: _PolicyLoss, names: list[str]
    ) -> Callable[..., tuple[list[th.Tensor], tuple[th.Tensor, Diagnostics]]]:
        """The gradient of ``loss`` w.r.t. the policy's parameters ``names``, a function of their values."""

        def of(values: list[th.Tensor], *args: Any) -> tuple[th.Tensor, Diagnostics]:
            return functional_call(loss, dict(zip(names, values, strict=True)), args)

        return grad_and_value(of, has_aux=True)

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
        critic_adam: _AdamState,
        actor_adam: _AdamState,
    ) -> Diagnostics:
        model = self._model
        critic_params = model.critic_parameters
        actor_params: list[th.Tensor] = list(model.actor.parameters())
        grads, (_, diagnostics) = self._critic_gradient(
            [param.detach() for param in critic_params], replay_data, ent_coef_value
        )
        # torch.nn.utils.clip_grad_norm_'s arithmetic, on gradients that are not the parameters' .grad.
        total_norm = th.nn.utils.get_total_norm(grads)
        th._foreach_mul_(grads, th.clamp(model.max_grad_norm / (total_norm + 1e-6), max=1.0))
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
        arguments = (
            replay_data,
            ent_coef,
            float(ent_coef),
            temperature,
            _AdamState.of(model.critic.optimizer, model.critic_parameters),
            _AdamState.of(model.actor.optimizer, list(model.actor.parameters())),
        )
        model._functional_gradients = True
        try:
            with th.no_grad(), th._dynamo.config.patch(recompile_limit=GRAPHS_PER_PROCESS):
                return self._step(*arguments)
        except (th._dynamo.exc.BackendCompilerFailed, th._dynamo.exc.FailOnRecompileLimitHit) as error:
            warnings.warn(
                f"GumbelAC(compile_update=True) could not compile its update ({type(error).__name__}: "
                f"{error}); this model's update runs eagerly from now on, the same arithmetic up to float "
                "rounding",
                stacklevel=3,
            )
            self._step = self._gradient_step
            with th.no_grad():
                return self._step(*arguments)
        finally:
            model._functional_gradients = False
