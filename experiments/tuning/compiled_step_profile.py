"""Where a compiled GumbelAC gradient step's time goes: ``torch.profiler`` over ``train``, CartPole-v1 entry.

    python experiments/tuning/compiled_step_profile.py
    python experiments/tuning/compiled_step_profile.py --estimators gumbel_rao --steps 500

For each estimator, GumbelAC with its CartPole-v1 entry (compiled gradient steps, layer-normalised critics)
learns ``--warmup`` env steps (seed 0), compiles, takes ``--rounds`` untimed rounds of ``--steps`` gradient
steps (in ``train`` calls of the entry's ``gradient_steps``, as ``learn`` makes them), and then prints:

- milliseconds per gradient step of ``train`` over one more round, without the profiler;
- the profiler's operators by their own CPU time, per gradient step, over one more round: the compiled
  graph's generated kernels (``Call CompiledFxGraph``), the matrix products it calls out to (``aten::bmm``,
  ``aten::baddbmm``, ``aten::addmm``, ``aten::mm``), Dynamo's guard check before each call (``TorchDynamo
  Cache Lookup``, once a call), and what stays eager (the replay buffer's sample, the entropy coefficient).

Used for ``experiments/tuning/speed.md``, "Twenty seeds: half PPO's speed is at the edge".
"""

import time
from typing import Any

import torch
from gradient_step_floor import for_each_estimator, train_in_calls, trained_entry_model

#: Operators printed, the heaviest first by their own CPU time.
ROWS = 12


def profile(estimator: str, warmup: int, steps: int, rounds: int, overrides: dict[str, Any]) -> None:
    """Print ``estimator``'s milliseconds per compiled gradient step and its heaviest operators.

    :param overrides: keyword arguments that replace or add to the entry's
    """
    model = trained_entry_model(warmup, **{**overrides, "estimator": estimator, "compile_update": True})
    for _ in range(rounds):
        train_in_calls(model, steps)
    start = time.perf_counter()
    train_in_calls(model, steps)
    milliseconds = (time.perf_counter() - start) / steps * 1e3
    with torch.profiler.profile() as profiler:
        train_in_calls(model, steps)
    events = sorted(profiler.key_averages(), key=lambda event: event.self_cpu_time_total, reverse=True)
    total = sum(event.self_cpu_time_total for event in events)
    print(f"{estimator}: {milliseconds:.2f} ms a gradient step ({total / steps / 1e3:.2f} ms profiled)")
    for event in events[:ROWS]:
        share = event.self_cpu_time_total / total
        print(
            f"  {event.key[:40]:40s} {event.self_cpu_time_total / steps:8.1f} us a step {share:6.1%} "
            f"{event.count / steps:5.1f} calls",
            flush=True,
        )


def main() -> None:
    for_each_estimator(__doc__, profile)


if __name__ == "__main__":
    main()
