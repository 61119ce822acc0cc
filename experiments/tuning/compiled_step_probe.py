"""What a GumbelAC gradient step costs as one compiled graph (``compile_update=True``) against eager.

    python experiments/tuning/compiled_step_probe.py
    python experiments/tuning/compiled_step_probe.py --estimators exact --rounds 5
    python experiments/tuning/compiled_step_probe.py \
        --overrides '{"policy_kwargs": {"critic_layer_norm": false}}'

Earlier probes compiled GumbelAC's losses and kept autograd's ``backward`` and the optimisers' ``step``
outside the graph: x0.86-1.00 a step (``benchmarks/bench_compile.py``), because the compiled autograd
function's own work per call eats what fusing saves. ``GumbelAC(compile_update=True)`` compiles the whole
step (``rlrelax.agents.gumbel_ac.compiled_update.CompiledUpdate``: ``torch.func`` gradients of GumbelAC's
own losses, torch's functional Adam on the optimisers' own state), so nothing of autograd's tape runs at
step time.

For each estimator, GumbelAC with its CartPole-v1 entry learns ``--warmup`` env steps eagerly (seed 0); then,
from that saved state, with the model's update switched between eager and compiled, printed:

- the seconds the first compiled ``train`` call took (compiling; inductor's on-disk cache makes a later
  process faster);
- how far the parameters after one compiled call are from those after one eager call, relative to their
  largest entry (float rounding: the compiled arithmetic is fused, and the target update is not an FMA in it);
- milliseconds per gradient step, the eager and the compiled ``train`` taking turns (``--steps`` steps each,
  ``--rounds`` rounds after one untimed, in ``train`` calls of the entry's ``gradient_steps``), replay batches
  drawn as training draws them, and their ratio.

Used for ``experiments/tuning/speed.md``, "One compiled graph per gradient step".
"""

import statistics
import time
from typing import Any

from gradient_step_floor import (
    for_each_estimator,
    parameters,
    relative_gap,
    restore,
    saved_state,
    train_in_calls,
    trained_entry_model,
)

from rlrelax.agents import GumbelAC
from rlrelax.agents.gumbel_ac.compiled_update import CompiledUpdate


def trained(model: GumbelAC, update: CompiledUpdate | None, steps: int) -> None:
    """``steps`` gradient steps of ``model``, compiled by ``update`` or eager where it is ``None``."""
    model._compiled_update = update
    train_in_calls(model, steps)


def probe(estimator: str, warmup: int, steps: int, rounds: int, overrides: dict[str, Any]) -> None:
    """Print the compile time, the gap to eager after one call and the timings for ``estimator``.

    :param overrides: keyword arguments that replace or add to the entry's
    """
    model = trained_entry_model(warmup, **{**overrides, "estimator": estimator, "compile_update": False})
    state = saved_state(model)
    compiled = CompiledUpdate(model)

    start = time.perf_counter()
    trained(model, compiled, model.gradient_steps)
    compile_seconds = time.perf_counter() - start
    restore(model, state)
    trained(model, compiled, model.gradient_steps)
    after_compiled = parameters(model)
    restore(model, state)
    trained(model, None, model.gradient_steps)
    gap = relative_gap(after_compiled, parameters(model))

    turns: dict[str, CompiledUpdate | None] = {"eager": None, "compiled": compiled}
    seconds: dict[str, list[float]] = {name: [] for name in turns}
    for round_ in range(rounds + 1):
        for name, update in turns.items():
            restore(model, state)
            start = time.perf_counter()
            trained(model, update, steps)
            if round_ > 0:
                seconds[name].append((time.perf_counter() - start) / steps)
    eager, fast = (statistics.median(seconds[name]) * 1e3 for name in turns)
    print(
        f"{estimator:15s} compile {compile_seconds:5.1f} s | one call's gap to eager {gap:.1e} | "
        f"eager {eager:.2f} ms, compiled {fast:.2f} ms a step: x{eager / fast:.2f}",
        flush=True,
    )


def main() -> None:
    for_each_estimator(__doc__, probe)


if __name__ == "__main__":
    main()
