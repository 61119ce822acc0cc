"""The floor under GumbelAC's gradient step on a CPU: hot caches, in-place ReLU, the memory allocator.

    python experiments/tuning/gradient_step_floor.py
    LD_PRELOAD=libtcmalloc_minimal.so.4 python experiments/tuning/gradient_step_floor.py   # Debian's tcmalloc

GumbelAC with its CartPole-v1 entry (8 envs, 3-step returns, ``lin_4e-3``, layer-normalised critics;
``gumbel_softmax``; its gradient steps eager, as ``--overrides`` may change) learns ``--warmup`` env steps;
then three variants of its ``train`` take turns from the same saved state (parameters, optimiser moments,
random generators), ``--steps`` gradient steps each, for ``--rounds`` rounds after one untimed, in one
process, one thread, subnormal floats flushed:

- ``replay batches``: the gradient steps as training takes them;
- ``one fixed batch``: every step on one replay batch drawn once, so the replay buffer's sampling is not paid
  and the step's data stays in the caches: what a gradient step costs on hot data;
- ``ReLU in place``: replay batches, every ``nn.ReLU`` of the actor and the critics overwriting its input
  instead of allocating its output (one activation-sized buffer less per layer); the last column says whether
  its parameters after the first turn are those of ``replay batches`` to the bit.

Printed: the median milliseconds per gradient step and the ratio to ``replay batches``, with the CPU and the
``LD_PRELOAD`` in force, so that runs under other memory allocators (tcmalloc, jemalloc) can be set side by
side; and last, how many operators a gradient step dispatches (counted by a ``TorchDispatchMode`` over 20 more
steps, autograd's backward included). Used for ``experiments/tuning/speed.md``, "The floor under a GumbelAC
gradient step".
"""

import argparse
import copy
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.env_util import make_vec_env
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from rlrelax._platform import configure_torch_for_one_run, cpu_model
from rlrelax.agents import GumbelAC
from rlrelax.compare.hyperparams import hyperparameter_file, resolve_kwargs

ENV_ID = "CartPole-v1"
VARIANTS = ("replay batches", "one fixed batch", "ReLU in place")


def saved_state(model: GumbelAC) -> dict[str, Any]:
    """Everything a gradient step reads or changes: parameters, optimiser moments, random generators."""
    return {
        "policy": copy.deepcopy(model.policy.state_dict()),
        "actor_optimizer": copy.deepcopy(model.actor.optimizer.state_dict()),
        "critic_optimizer": copy.deepcopy(model.critic.optimizer.state_dict()),
        "torch_rng": torch.get_rng_state(),
        # SB3's replay buffers draw from NumPy's global generator.
        "numpy_rng": np.random.get_state(),  # noqa: NPY002
        "n_updates": model._n_updates,
    }


def restore(model: GumbelAC, state: dict[str, Any]) -> None:
    """Put ``model`` and the global random generators back to ``state``."""
    model.policy.load_state_dict(state["policy"])
    model.actor.optimizer.load_state_dict(state["actor_optimizer"])
    model.critic.optimizer.load_state_dict(state["critic_optimizer"])
    torch.set_rng_state(state["torch_rng"])
    np.random.set_state(state["numpy_rng"])  # noqa: NPY002
    model._n_updates = state["n_updates"]


def set_relu_in_place(model: GumbelAC, in_place: bool) -> None:
    """Make every ``nn.ReLU`` of the actor and critics work in place, or not."""
    for module in model.policy.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = in_place


def timed_turn(model: GumbelAC, variant: str, steps: int) -> float:
    """Seconds per gradient step of ``steps`` steps of ``variant``, from the model's current state."""
    buffer = model.replay_buffer
    assert buffer is not None
    sample: Callable[..., Any] = buffer.sample
    if variant == "one fixed batch":
        batch = sample(model.batch_size)
        buffer.sample = lambda *args, **kwargs: batch
    set_relu_in_place(model, variant == "ReLU in place")
    try:
        start = time.perf_counter()
        model.train(gradient_steps=steps, batch_size=model.batch_size)
        return (time.perf_counter() - start) / steps
    finally:
        buffer.sample = sample
        set_relu_in_place(model, False)


class OperatorCount(TorchDispatchMode):
    """Counts the ATen operators dispatched while it is active."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.calls += 1
        return func(*args, **(kwargs or {}))


def operators_per_step(model: GumbelAC, steps: int = 20) -> float:
    """The ATen operators that one of ``steps`` gradient steps dispatches, on average."""
    with OperatorCount() as count:
        model.train(gradient_steps=steps, batch_size=model.batch_size)
    return count.calls / steps


def parameters(model: GumbelAC) -> torch.Tensor:
    """The policy's parameters, flattened into one tensor."""
    return torch.cat([param.detach().flatten() for param in model.policy.parameters()])


def relative_gap(reached: torch.Tensor, reference: torch.Tensor) -> float:
    """The largest difference between two vectors, relative to the reference's largest entry."""
    return float((reached - reference).abs().max() / reference.abs().max())


def timing_arguments(description: str | None, estimators: tuple[str, ...] = ()) -> argparse.Namespace:
    """The command line of this script and of its siblings that time gradient steps the same way.

    :param description: the script's help text
    :param estimators: for a script that times several of GumbelAC's estimators, the choices of its
        ``--estimators`` option (all of them by default); none: no such option
    """
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--warmup", type=int, default=12_000, help="env steps of training before timing")
    parser.add_argument("--steps", type=int, default=200, help="gradient steps per turn")
    parser.add_argument("--rounds", type=int, default=10, help="timed rounds")
    parser.add_argument(
        "--overrides",
        type=json.loads,
        default={},
        help="keyword arguments as JSON that replace or add to the entry's, e.g. "
        '\'{"policy_kwargs": {"critic_layer_norm": false}}\'',
    )
    if estimators:
        parser.add_argument(
            "--estimators", nargs="+", choices=estimators, default=list(estimators), help="which estimators"
        )
    return parser.parse_args()


#: The estimators a per-estimator probe runs, all of GumbelAC's but ``straight_through`` (it trains as
#: ``gumbel_softmax`` under the default mixture critic).
ESTIMATORS = ("gumbel_softmax", "exact", "score_function", "gumbel_rao")


def for_each_estimator(
    description: str | None, measure: Callable[[str, int, int, int, dict[str, Any]], None]
) -> None:
    """Parse the command line (:func:`timing_arguments`) and run ``measure`` for each estimator it names.

    :param description: the script's help text
    :param measure: called as ``measure(estimator, warmup, steps, rounds, overrides)``
    """
    args = timing_arguments(description, estimators=ESTIMATORS)
    for estimator in args.estimators:
        measure(estimator, args.warmup, args.steps, args.rounds, args.overrides)
        if estimator == args.estimators[0]:
            # After the first model: trained_entry_model sets torch up as the comparison's runs.
            print(
                f"{cpu_model()}, torch {torch.__version__}, {torch.get_num_threads()} thread(s)", flush=True
            )


def train_in_calls(model: GumbelAC, steps: int) -> None:
    """``steps`` gradient steps of ``model``, in ``train`` calls of its ``gradient_steps`` each, as ``learn``
    makes them: the compiled update takes a call's steps in one graph, compiled for that number of steps.

    :param model: the model
    :param steps: gradient steps in all, a multiple of ``model.gradient_steps``
    """
    calls, left = divmod(steps, model.gradient_steps)
    if left:
        raise ValueError(f"steps must be a multiple of gradient_steps={model.gradient_steps}, got {steps}")
    for _ in range(calls):
        model.train(gradient_steps=model.gradient_steps, batch_size=model.batch_size)


def trained_entry_model(warmup: int, **overrides: Any) -> GumbelAC:
    """GumbelAC with its CartPole-v1 entry (and ``overrides``), seed 0, trained for ``warmup`` env steps.

    Its gradient steps are eager unless ``overrides`` say otherwise (the entry compiles them): these probes
    time the eager step, and ``compiled_step_probe.py`` switches between the two itself.

    :param warmup: env steps to learn
    :param overrides: keyword arguments that replace or add to the entry's
    """
    configure_torch_for_one_run()
    entry = hyperparameter_file("rlrelax.agents:GumbelAC")[ENV_ID]
    env = make_vec_env(ENV_ID, n_envs=entry.n_envs or 1, seed=0)
    kwargs = {**resolve_kwargs(entry.kwargs), "compile_update": False, **overrides}
    return GumbelAC("MlpPolicy", env, seed=0, device="cpu", **kwargs).learn(warmup)


def main() -> None:
    args = timing_arguments(__doc__)
    model = trained_entry_model(args.warmup, **args.overrides)
    state = saved_state(model)

    seconds: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    reached: dict[str, torch.Tensor] = {}
    for round_ in range(args.rounds + 1):
        order = VARIANTS if round_ % 2 == 0 else tuple(reversed(VARIANTS))
        for variant in order:
            restore(model, state)
            per_step = timed_turn(model, variant, args.steps)
            if round_ == 0:  # untimed: warms up, and records the parameters each variant reaches
                reached[variant] = parameters(model)
            else:
                seconds[variant].append(per_step)
    base = statistics.median(seconds["replay batches"])
    preload = os.environ.get("LD_PRELOAD", "")
    print(f"{cpu_model()}, torch {torch.__version__}, 1 thread, LD_PRELOAD={preload!r}")
    print(f"GumbelAC's {ENV_ID} entry, {args.warmup:,} env steps, then {args.rounds} x {args.steps} steps")
    for variant in VARIANTS:
        median = statistics.median(seconds[variant])
        same = torch.equal(reached[variant], reached["replay batches"])
        bits = "" if variant == "one fixed batch" else f"   same parameters: {same}"
        print(f"{variant:<18} {median * 1e3:6.3f} ms/step   speed x{base / median:.3f}{bits}")
    restore(model, state)
    print(f"operators dispatched per gradient step: {operators_per_step(model):.0f}")


if __name__ == "__main__":
    main()
