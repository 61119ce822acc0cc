"""A whole gradient step compiled into one graph by ``torch.compile``: what the compiled updates of GumbelAC
and SoftQ (``compile_update=True``) share.

At these network sizes a CPU spends most of an eager gradient step dispatching its operators one by one, and
compiling the losses alone does not pay, as autograd's backward pass still runs operator by operator. So a
compiled update is one function of tensors, compiled with ``fullgraph=True``: a loss's gradient by
``torch.func.grad_and_value`` (the parameters swapped in by ``torch.func.functional_call``), the clipping of
its norm, and torch's functional Adam on the optimiser's own state, so that ``save``/``load`` and
learning-rate schedules work unchanged (``experiments/tuning/speed.md``, "One compiled graph per gradient
step").
"""

import logging
import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Generic, NamedTuple, TypeVar

import torch as th
from torch import nn
from torch.func import functional_call, grad_and_value
from torch.optim.adam import adam

#: How many graphs of an update, one per setting (algorithm, action space, hyperparameters), a process keeps
#: (Dynamo's default is 8 per function); models of the same setting share one.
GRAPHS_PER_PROCESS = 64

#: What a gradient step reports: losses and diagnostics by name, detached.
Diagnostics = dict[str, th.Tensor]

#: What an update returns: one gradient step's diagnostics, or a list of them.
Reported = TypeVar("Reported", Diagnostics, list[Diagnostics])

#: The gradient of a loss w.r.t. some of a policy's parameters, a function of their values and the loss's
#: arguments: ``(gradients, (loss, diagnostics))``.
LossGradient = Callable[..., tuple[list[th.Tensor], tuple[th.Tensor, Diagnostics]]]


class _PolicyLoss(nn.Module):
    """A loss of the policy as a module, so that ``functional_call`` can swap the policy's parameters."""

    def __init__(self, policy: nn.Module, loss: Callable[..., tuple[th.Tensor, Diagnostics]]) -> None:
        super().__init__()
        self.policy = policy
        self.loss = loss

    def forward(self, *args: Any) -> tuple[th.Tensor, Diagnostics]:
        return self.loss(*args)


def loss_gradient(
    policy: nn.Module, loss: Callable[..., tuple[th.Tensor, Diagnostics]], params: list[th.Tensor]
) -> LossGradient:
    """The gradient of ``loss`` w.r.t. ``params`` (some of ``policy``'s), as a function of their values.

    :param policy: the module that holds ``params`` and that ``loss`` evaluates
    :param loss: returns a scalar loss and its diagnostics (detached) from its arguments
    :param params: the parameters to differentiate w.r.t., in the order of the returned gradients
    :return: ``gradient(values, *args) -> (gradients, (loss, diagnostics))``
    """
    module = _PolicyLoss(policy, loss)
    name_of: dict[th.Tensor, str] = {
        param: name for name, param in module.named_parameters(remove_duplicate=False)
    }
    names = [name_of[param] for param in params]

    def of(values: list[th.Tensor], *args: Any) -> tuple[th.Tensor, Diagnostics]:
        return functional_call(module, dict(zip(names, values, strict=True)), args)

    return grad_and_value(of, has_aux=True)


def clip_gradient_norm_(gradients: list[th.Tensor], max_norm: float) -> None:
    """``torch.nn.utils.clip_grad_norm_``'s arithmetic, on gradients that are not the parameters' ``.grad``.

    :param gradients: the gradients, scaled in place
    :param max_norm: the largest total 2-norm they may have
    """
    total_norm = th.nn.utils.get_total_norm(gradients)
    th._foreach_mul_(gradients, th.clamp(max_norm / (total_norm + 1e-6), max=1.0))


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


class AdamState(NamedTuple):
    """What torch's functional Adam reads and updates, besides the parameters and their gradients."""

    exp_avgs: list[th.Tensor]
    exp_avg_sqs: list[th.Tensor]
    steps: list[th.Tensor]
    lr: th.Tensor
    #: betas, weight_decay, eps, maximize, decoupled_weight_decay: constants of the graph
    settings: tuple[tuple[float, float], float, float, bool, bool]

    @classmethod
    def of(cls, optimizer: th.optim.Optimizer, params: list[th.Tensor]) -> "AdamState":
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


class ProxyExecutorNoticeFilter(logging.Filter):
    """Drops inductor's warning that ``_foreach_norm`` (the clipped norm's) has no C shim under
    ``cpp_wrapper`` and is dispatched at run time instead: the same ATen kernel, so the same numbers, and
    nothing for a user to act on at every first compile of an update. Any other op's warning passes.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        op = record.args[0] if isinstance(record.args, tuple) and record.args else ""
        return not (
            "is missing a c-shim implementation" in str(record.msg)
            and str(op).startswith("aten._foreach_norm")
        )


#: The filter on inductor's logger, added once by the first compiled update.
PROXY_EXECUTOR_NOTICE_FILTER = ProxyExecutorNoticeFilter()


class CompiledUpdateBase(ABC, Generic[Reported]):
    """An update of one or more gradient steps, :meth:`_update`, compiled into one graph, with an eager
    fallback.

    Random draws come from eager's generator (inductor's ``fallback_random``), so a compiled step draws what
    an eager one draws. On a CPU the graph's kernels are called from C++ (inductor's ``cpp_wrapper``) instead
    of a generated Python function: the same kernels, so the same numbers, and about 3% less time a GumbelAC
    step at no extra compiling time (``experiments/tuning/speed.md``, "Kernels called from C++"). Where
    ``torch.compile`` is disabled (``TORCHDYNAMO_DISABLE=1``) the same function runs eagerly; where it cannot
    compile (no C++ compiler), a warning says so and it runs eagerly from then on.

    :param agent: the agent's name, for the warning
    :param device: the device the update's tensors are on
    """

    def __init__(self, agent: str, device: th.device) -> None:
        self._agent = agent
        # Made once: each patch() call builds a class, some 20 µs of every step (a cProfile of GumbelAC).
        self._graphs_per_process = th._dynamo.config.patch(recompile_limit=GRAPHS_PER_PROCESS)
        inductor_ir_log = logging.getLogger("torch._inductor.ir")
        if PROXY_EXECUTOR_NOTICE_FILTER not in inductor_ir_log.filters:
            inductor_ir_log.addFilter(PROXY_EXECUTOR_NOTICE_FILTER)
        self._compiled: Callable[..., Reported] = th.compile(
            self._update,
            fullgraph=True,
            dynamic=False,
            options={"fallback_random": True, "cpp_wrapper": device.type == "cpu"},
        )

    @abstractmethod
    def _update(self, *args: Any) -> Reported:
        """The update, a function of tensors and constants that ``torch.compile`` traces whole."""

    def _take(self, *args: Any) -> Reported:
        """Take the update with ``args``: compiled, or eagerly where it cannot compile.

        :return: its diagnostics
        """
        try:
            with th.no_grad(), self._graphs_per_process:
                return self._compiled(*args)
        except (th._dynamo.exc.BackendCompilerFailed, th._dynamo.exc.FailOnRecompileLimitHit) as error:
            warnings.warn(
                f"{self._agent}(compile_update=True) could not compile its update ({type(error).__name__}: "
                f"{error}); this model's update runs eagerly from now on, the same arithmetic up to float "
                "rounding",
                stacklevel=4,
            )
            self._compiled = self._update
            with th.no_grad():
                return self._compiled(*args)


def check_not_diverged(agent: str, name: str, mean: float) -> None:
    """Raise where a logged diagnostic of a compiled update is not finite.

    A compiled graph cannot read tensor values, so it skips the relaxations' checks of values
    (``rlrelax.relax``'s ``values_readable``); ``train`` checks what it logs instead.

    :param agent: the agent's name, for the message
    :param name: the diagnostic's name under ``train/``
    :param mean: its mean over the ``train`` call
    """
    if not math.isfinite(mean):
        raise ValueError(f"{agent}'s training diverged: train/{name} is {mean} (compile_update=True)")
