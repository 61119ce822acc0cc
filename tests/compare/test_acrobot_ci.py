"""GumbelAC on Acrobot-v1 as CI runs it: with its per-env hyperparameters it finds the goal in 30,000 steps.

Acrobot-v1 is where GumbelAC's defaults fail: they never leave a return of -500, the episode limit
(``experiments/tuning/gumbel_ac.md``, "Acrobot-v1: one critic"). Its entry in
``agents/gumbel_ac/hyperparams.toml`` is what makes it solve, so this trains the way a user does, ``rlrelax
train GumbelAC Acrobot-v1``, which applies that entry, on seeds 0 and 1 at once (about a minute of 2 cores):
under a third of the suite's budget, with the learning rate decaying to 0 over the shorter run. The mean of
the two final returns (10 deterministic episodes each) must reach Acrobot-v1's threshold of -100; a seed that
never finds the goal ends at -500 and fails it.

Why 30,000 steps: the suite's 100,000-step runs (the AMD EPYC, seeds 0-9) first reached -100 at a median
of 15,000 steps and stayed from 20,000, so a 20,000-step run ends where some seeds are still settling. One
did on an Intel Xeon, where seed 0 of ``--steps 20000`` ended at -130.6 and seed 1 at -92.3 (a mean of
-111.5; on the AMD EPYC they end at -88 and -95). With ``--steps 30000`` seeds 0-3 end at -82.4, -80.7,
-78.6 and -78.3 on the Xeon: a margin of about 20 (``experiments/tuning/gumbel_ac.md``, "Acrobot-v1: one
critic"). On each CPU each seed is its own draw (see ``test_cartpole_ci.py``).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

THRESHOLD = -100.0
SEEDS = (0, 1)


@pytest.mark.learning
def test_gumbel_ac_solves_acrobot_with_its_hyperparameter_file(tmp_path: Path) -> None:
    rlrelax = str(Path(sys.executable).with_name("rlrelax"))
    train = [rlrelax, "train", "GumbelAC", "Acrobot-v1", "--steps", "30000"]
    runs = {
        seed: subprocess.Popen(
            [*train, "--seed", str(seed), "--out", str(tmp_path / f"seed-{seed}")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for seed in SEEDS
    }
    finals = {}
    for seed, process in runs.items():
        output, _ = process.communicate(timeout=10 * 60)
        assert process.returncode == 0, output
        assert "from its hyperparameter file" in output, output
        finals[seed] = json.loads((tmp_path / f"seed-{seed}" / "result.json").read_text())["final_return"]
    assert sum(finals.values()) / len(finals) >= THRESHOLD, finals
