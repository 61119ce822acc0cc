"""The CartPole-v1 comparison as CI runs it: experiments/cartpole.toml on its first 3 seeds, every agent.

This is also the CartPole-v1 learning test of REINFORCE, SoftQ and GumbelAC (``gumbel_softmax`` and
``exact``; ``straight_through`` trains identically to ``gumbel_softmax`` under the default critic): each
trains with its defaults at its documented budget, and must end with a final evaluation of at least 475
(10 deterministic episodes) on at least 2 of the 3 fixed seeds, the margin against flakiness on a
different CPU; the report files must exist and parse. About ten minutes of 2 cores: marked ``learning``.
"""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RLRELAX_AGENTS = {"REINFORCE", "SoftQ", "GumbelAC"}
THRESHOLD = 475.0
MIN_SOLVED_SEEDS = 2  # of 3


@pytest.mark.learning
def test_cartpole_ci_comparison(tmp_path: Path) -> None:
    spec = REPO / "experiments" / "cartpole.toml"
    command = [
        str(Path(sys.executable).with_name("rlrelax")),
        "compare",
        str(spec),
        "--seeds",
        "3",
        "--out",
        str(tmp_path),
    ]
    workers = str(len(os.sched_getaffinity(0)))
    done = subprocess.run(
        [*command, "--workers", workers, "--no-progress"], capture_output=True, text=True, timeout=20 * 60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    directory = tmp_path / "cartpole"
    for name in [
        "report.md",
        "summary.csv",
        "runs.csv",
        "evaluations.csv",
        "learning_curves.png",
        "final_returns.png",
    ]:
        assert (directory / name).stat().st_size > 0, name
    with open(directory / "runs.csv") as file:
        runs = list(csv.DictReader(file))
    with open(directory / "summary.csv") as file:
        summary = {row["agent"]: row for row in csv.DictReader(file)}
    assert len(runs) == 6 * 3 and all(row["runs"] == "3" for row in summary.values())
    for label, row in summary.items():
        if row["algorithm"] in RLRELAX_AGENTS:
            finals = [float(r["final_return"]) for r in runs if r["agent"] == label]
            solved = sum(f >= THRESHOLD for f in finals)
            assert solved >= MIN_SOLVED_SEEDS, f"{label}: final returns {finals}"
    assert (directory / "report.md").read_text().startswith("# Comparison: cartpole")
