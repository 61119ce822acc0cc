"""The CartPole-v1 comparisons as CI runs them: their first seeds, every agent, against the committed runs.

``experiments/cartpole.toml --seeds 3`` and ``experiments/gumbel_ac_estimators.toml --seeds 1`` are the
CartPole-v1 learning test of REINFORCE, SoftQ and every GumbelAC estimator (``straight_through`` trains
identically to ``gumbel_softmax`` under the default critic): each trains with its defaults at its documented
budget, exactly as in the committed full runs (``experiments/results/*/runs.csv``), whose first seeds these
are. The estimators' spec gets one seed, what CI's 20 minutes leave (a ``gumbel_rao`` run takes about 100 s
of a core); their 10-seed evidence is the committed run. The bar is that evidence: every one of these seeds
that solved there (final return >= 475) must solve here, and each agent's IQM final return over these seeds
must reach 90% of the committed runs' (which also guards the seeds that did not solve there against getting
worse). SB3's PPO and DQN are anchors of the comparison, not under test: their rows are not checked.

Flakiness. On the machine that made the committed runs (and any whose CPU takes the same kernels in MKL
and torch) these runs are bit for bit the committed ones, so the test cannot flake there; what it catches
is a change to an agent, its defaults or the evaluation. A CPU whose kernels round differently (MKL's
matrix products differ between AVX2 and AVX-512) makes each seed a new draw: a seed that solved with
probability p fails with probability 1 - p. Measured: the same code solved 9 of 10 seeds with GumbelAC's
``gumbel_softmax`` on the CPU of an earlier session and 6 of 10 on this AVX-512 one, SoftQ 10 and 9
(``experiments/results/cartpole/README.md``). About twelve minutes of 2 cores: marked ``learning``.
"""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlrelax.compare import iqm

REPO = Path(__file__).resolve().parents[2]
RLRELAX_AGENTS = {"REINFORCE", "SoftQ", "GumbelAC"}
THRESHOLD = 475.0
# The IQM floor as a fraction of the committed runs' IQM over the same seeds: equal on the committed
# machine; the 10% margin lets one unsolved seed of another machine's draw move by about 100 either way.
IQM_FLOOR = 0.9
# spec -> (seeds run in CI, its committed full run)
COMPARISONS = {
    "cartpole.toml": (3, REPO / "experiments" / "results" / "cartpole" / "runs.csv"),
    "gumbel_ac_estimators.toml": (1, REPO / "experiments" / "results" / "gumbel_ac_estimators" / "runs.csv"),
}


def final_returns(runs_csv: Path) -> dict[tuple[str, int], float]:
    with open(runs_csv) as file:
        return {(row["agent"], int(row["seed"])): float(row["final_return"]) for row in csv.DictReader(file)}


@pytest.mark.learning
@pytest.mark.parametrize("spec", COMPARISONS)
def test_ci_comparison_solves_the_seeds_the_committed_run_solved(spec: str, tmp_path: Path) -> None:
    seeds, committed_runs = COMPARISONS[spec]
    command = [
        str(Path(sys.executable).with_name("rlrelax")),
        "compare",
        str(REPO / "experiments" / spec),
        "--seeds",
        str(seeds),
        "--out",
        str(tmp_path),
        "--workers",
        str(len(os.sched_getaffinity(0))),
        "--no-progress",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=20 * 60)
    assert done.returncode == 0, done.stdout + done.stderr
    (directory,) = tmp_path.iterdir()
    for name in ["report.md", "summary.csv", "runs.csv", "evaluations.csv", "learning_curves.png"]:
        assert (directory / name).stat().st_size > 0, name
    assert (directory / "report.md").read_text().startswith(f"# Comparison: {directory.name}")

    with open(directory / "summary.csv") as file:
        algorithms = {row["agent"]: row["algorithm"] for row in csv.DictReader(file)}
    here = final_returns(directory / "runs.csv")
    committed = final_returns(committed_runs)
    assert set(here) == {(label, seed) for label in algorithms for seed in range(seeds)}
    under_test = [key for key in sorted(here) if algorithms[key[0]] in RLRELAX_AGENTS]
    assert under_test, "no rlrelax agent in the comparison"
    must_solve = [key for key in under_test if committed[key] >= THRESHOLD]
    failed = {key: (here[key], committed[key]) for key in must_solve if here[key] < THRESHOLD}
    assert not failed, f"(label, seed): (final return now, in the committed run) {failed}"
    for label in {label for label, _ in under_test}:
        now, before = ([returns[(label, seed)] for seed in range(seeds)] for returns in (here, committed))
        assert iqm(now) >= IQM_FLOOR * iqm(before), f"{label}: final returns {now}, committed {before}"
