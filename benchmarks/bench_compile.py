"""Does ``torch.compile`` pay for the off-policy agents' gradient step on a CPU? Eager against compiled.

The profile (``benchmarks/profile_agents.py``) puts most of SoftQ's and GumbelAC's training time in the
gradient step, and on a CPU these networks are small enough that per-call overhead could dominate, which is
what compiling removes (it fuses the elementwise operations between the matrix products). This measures it
on the real modules, after ``--warmup`` env steps of training on CartPole-v1 with the defaults: the critic's
update (GumbelAC's twin critics, or SoftQ's Q-network: forward on a replay batch, Huber loss against a fixed
target, backward) and GumbelAC's actor update (its loss forward and backward), each eager and under
``torch.compile`` (inductor, default mode), in one process, one thread, subnormal floats flushed as in the
comparison's runs (since ``7ef84bd``). Printed per part: the compile time
(the first call), the eager and compiled microseconds per call (median of ``--repeats`` timings of
``--calls`` calls) and the speed-up. Run it on a quiet machine::

    python benchmarks/bench_compile.py
    TORCHINDUCTOR_FORCE_DISABLE_CACHES=1 python benchmarks/bench_compile.py   # cold compile times

Measured on a 2-core AMD EPYC (torch 2.13.0+cpu, one thread, subnormals not yet flushed), commit
``77c5159``, two runs (the second with the cache disabled): compiling does not pay. Compiled over eager,
the critic update ran at 0.95-0.97x
(about 890 µs eager), the actor update at 0.89-0.93x (1,580-1,740 µs), SoftQ's update at 0.96-1.00x
(1,150-1,180 µs). A cold compile costs 3-14 s per part; inductor's on-disk cache brings that to 0.3-3 s.
In the eager update the batched matrix products take about a third of the time (``torch.profiler``,
GumbelAC); compiling the rest saved nothing measurable here. On a 2-core Intel Xeon with subnormals
flushed, commit ``c0d73b4``, two runs: the critic update 0.95x (477 µs eager), the actor update 0.86-0.90x
(965-1,004 µs), SoftQ's update 0.93x (651-665 µs). So the agents do not compile their updates, and their
results are the same whether or not a C++ compiler is installed.
"""

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from stable_baselines3.common.env_util import make_vec_env
from torch.nn import functional as F

from rlrelax._platform import configure_torch_for_one_run, cpu_model
from rlrelax.agents import GumbelAC, SoftQ

ENV_ID = "CartPole-v1"


def per_call_microseconds(step: Callable[[], None], calls: int, repeats: int) -> float:
    """The median over ``repeats`` timings of ``calls`` calls of ``step``, per call."""
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            step()
        timings.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(timings)


def gumbel_ac_parts(model: GumbelAC) -> dict[str, Callable[[], None]]:
    """GumbelAC's critic and actor updates (without the optimiser steps) on one replay batch."""
    assert model.replay_buffer is not None
    batch = model.replay_buffer.sample(model.batch_size)
    target = torch.randn(model.batch_size, 1)
    ent_coef = model._current_ent_coef()

    def critic_update() -> None:
        current = model.critic.taken_action_values(batch.observations, batch.actions)
        F.smooth_l1_loss(current, target.expand_as(current)).backward()

    def actor_update() -> None:
        loss, _ = model._actor_loss(batch.observations, ent_coef, model._current_temperature())
        loss.backward()

    return {"GumbelAC critic update": critic_update, "GumbelAC actor update": actor_update}


def softq_parts(model: SoftQ) -> dict[str, Callable[[], None]]:
    """SoftQ's Q-network update (without the optimiser step) on one replay batch."""
    assert model.replay_buffer is not None
    batch = model.replay_buffer.sample(model.batch_size)
    target = torch.randn(model.batch_size, 1)

    def q_update() -> None:
        current = model.q_net(batch.observations).gather(1, batch.actions.long())
        F.smooth_l1_loss(current, target).backward()

    return {"SoftQ Q-network update": q_update}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--warmup", type=int, default=3_000, help="env steps of training before timing")
    parser.add_argument("--calls", type=int, default=200, help="calls per timing")
    parser.add_argument("--repeats", type=int, default=5, help="timings per part and mode")
    args = parser.parse_args()
    configure_torch_for_one_run()
    threads = torch.get_num_threads()
    print(f"{cpu_model()}, torch {torch.__version__}, {threads} thread, subnormal floats flushed")
    print(f"{'part':<26}{'compile s':>10}{'eager µs':>10}{'compiled µs':>13}{'speed-up':>10}")
    gumbel_ac = GumbelAC("MlpPolicy", make_vec_env(ENV_ID, seed=0), seed=0).learn(args.warmup)
    softq = SoftQ("MlpPolicy", make_vec_env(ENV_ID, seed=0), seed=0).learn(args.warmup)
    for name, step in {**gumbel_ac_parts(gumbel_ac), **softq_parts(softq)}.items():
        eager = per_call_microseconds(step, args.calls, args.repeats)
        compiled = torch.compile(step)
        start = time.perf_counter()
        compiled()
        compile_seconds = time.perf_counter() - start
        fast = per_call_microseconds(compiled, args.calls, args.repeats)
        print(f"{name:<26}{compile_seconds:>10.1f}{eager:>10.0f}{fast:>13.0f}{eager / fast:>10.2f}")


if __name__ == "__main__":
    main()
