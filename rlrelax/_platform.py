"""The machine a result was measured on, in words: results of these small networks depend on the CPU."""

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
