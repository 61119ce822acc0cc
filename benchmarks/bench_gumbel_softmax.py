"""Time rlrelax.relax.gumbel_softmax against torch.nn.functional.gumbel_softmax in one process.

Run: ``python benchmarks/bench_gumbel_softmax.py [--threads N] [--min-run-time S] [--rounds R]``.
Prints, per logits shape and mode (soft, hard), the best time per call of both and the ratio
torch_time / ours_time; the bar is a ratio >= 0.8 (our validation and overflow safety may cost less than
20%). Both functions are timed in interleaved rounds in the same process; noise from other processes on a
shared CPU only adds time, so the fastest block of each is reported, next to the spread of the
per-round ratios.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch.utils.benchmark import Timer

from rlrelax.relax import gumbel_softmax

SHAPES = [(4096, 2), (4096, 18), (256, 1000)]


def main() -> None:
    """Parse the arguments, time every shape and mode, and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--min-run-time", type=float, default=0.2, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved measurements of each function")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), float32 logits, tau=0.5; best of "
        f"{args.rounds} interleaved rounds (noise from other processes only adds time)"
    )
    print(
        f"{'shape':>12} {'hard':>5} {'torch (us)':>11} {'ours (us)':>10} {'torch/ours':>11} "
        f"{'round ratios':>14}"
    )
    for shape in SHAPES:
        logits = torch.randn(shape)
        for hard in (False, True):
            timers = {
                name: Timer(
                    stmt=f"fn(logits, tau=0.5, hard={hard})",
                    globals={"fn": fn, "logits": logits},
                    num_threads=args.threads,
                )
                for name, fn in (("torch", F.gumbel_softmax), ("ours", gumbel_softmax))
            }
            rounds: dict[str, list[float]] = {"torch": [], "ours": []}
            for r in range(args.rounds):
                # Alternate which runs first so that a slow phase of the machine does not favour one side.
                for name in ("torch", "ours") if r % 2 == 0 else ("ours", "torch"):
                    measurement = timers[name].blocked_autorange(min_run_time=args.min_run_time)
                    rounds[name].append(min(measurement.times))
            best = {name: min(times) for name, times in rounds.items()}
            ratios = sorted(t / o for t, o in zip(rounds["torch"], rounds["ours"], strict=True))
            print(
                f"{shape!s:>12} {hard!s:>5} {best['torch'] * 1e6:11.1f} {best['ours'] * 1e6:10.1f} "
                f"{best['torch'] / best['ours']:11.2f} {ratios[0]:6.2f}-{ratios[-1]:<6.2f}"
            )


if __name__ == "__main__":
    main()
