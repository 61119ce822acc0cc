"""The machine a result was measured on, and how torch runs there: small networks' results depend on both."""

import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (Linux's ``/proc/cpuinfo``), or what :mod:`platform` knows elsewhere.

    Recorded with benchmark output and runs because the kernels that MKL and torch pick differ between CPUs
    (AVX2 or AVX-512), and with them the rounding of every matrix product and so each training run.

    :return: for example ``"AMD EPYC 9R14"``
    """
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def configure_torch_for_one_run() -> None:
    """Set up torch in this process as rlrelax's entry points run it: one thread, subnormal floats flushed.

    - One thread: runs are the parallel unit (one per core), and at these network sizes a second thread
      gains little.
    - Subnormal floats flushed to zero (the x86 FTZ and DAZ flags, ``torch.set_flush_denormal``): Adam's
      moment estimates of weights whose gradient stays zero (dead ReLU units) decay into the subnormal range,
      where each arithmetic operation costs tens of times more; GumbelAC's fused Adam step took 210 µs there
      instead of 20. SoftQ's and GumbelAC's runs of the CartPole-v1 comparison take about a tenth less time,
      SB3's DQN's a quarter, with the same results (experiments/tuning/speed.md, "Subnormal floats").

    Both are per-process settings, which rlrelax's library code never changes on its own: a script that
    trains the agents directly gets the same speed with ``torch.set_num_threads(1)`` and
    ``torch.set_flush_denormal(True)`` first (the README's performance section).
    """
    import torch

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
