"""Gradient diagnostics in a comparison: the runs' ``gradient_stats.csv`` in the store, a training run that
measuring leaves unchanged, and the report's section, on a tiny spec (1,000-1,500 env steps).

The runs execute in this process (``execute_run``, as a worker does), which spares the workers' start-up.
"""

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from rlrelax.compare import DamagedRunError, execute_run, finished_runs, iqm, spec_from_dict, write_report
from rlrelax.compare.store import (
    GRADIENT_STATS_COLUMNS,
    RESULT_FILE,
    gradient_stats_csv,
    read_finished_run,
    read_gradient_stats,
    run_dir,
)

EVERY = 500
# hyperparams = False: one env and these kwargs, whatever CartPole-v1 entries the agents' files hold, so that
# the measurements fall at the multiples of EVERY.
SPEC = {
    "name": "diagnostics",
    "envs": ["CartPole-v1"],
    "seeds": [0, 1],
    "evaluation": {"every": EVERY, "episodes": 2},
    "diagnostics": {"every": EVERY, "draws": 3, "batch_size": 64},
    "agents": [
        {
            "label": "GumbelAC",
            "algorithm": "GumbelAC",
            "hyperparams": False,
            "total_timesteps": 1_500,
            "kwargs": {"learning_starts": 100, "batch_size": 32, "policy_kwargs": {"net_arch": [16]}},
        },
        {
            "label": "GumbelAC-exact",
            "algorithm": "GumbelAC",
            "hyperparams": False,
            "total_timesteps": 1_000,
            "kwargs": {
                "estimator": "exact",
                "learning_starts": 100,
                "batch_size": 32,
                "policy_kwargs": {"net_arch": [16]},
            },
        },
        {
            "label": "REINFORCE",
            "algorithm": "REINFORCE",
            "total_timesteps": 1_000,
            "kwargs": {"policy_kwargs": {"net_arch": [16]}},
        },
        {
            "label": "SoftQ",
            "algorithm": "SoftQ",
            "hyperparams": False,
            "total_timesteps": 1_000,
            "kwargs": {"learning_starts": 100, "batch_size": 32, "policy_kwargs": {"net_arch": [16]}},
        },
        {
            "label": "DQN",
            "algorithm": "DQN",
            "total_timesteps": 1_000,
            "kwargs": {"learning_starts": 100, "buffer_size": 1_000, "policy_kwargs": {"net_arch": [16]}},
        },
    ],
}
# A run of GumbelAC seed 0 without diagnostics, stored under its own label next to the others.
UNMEASURED = "GumbelAC-unmeasured"


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny spec's runs, one more of GumbelAC seed 0 without diagnostics, and their report."""
    import torch

    torch.set_num_threads(1)  # as in the workers
    out = tmp_path_factory.mktemp("store")
    runs = spec_from_dict(SPEC).runs()
    for run in runs:
        assert execute_run(run.to_config(), run.folder(out)).finished
    (gumbel_ac,) = [run for run in runs if run.agent.label == "GumbelAC" and run.seed == 0]
    unmeasured = {**gumbel_ac.to_config(), "label": UNMEASURED}
    del unmeasured["diagnostics"]
    folder = run_dir(out, SPEC["name"], "CartPole-v1", UNMEASURED, 0)
    assert execute_run(unmeasured, folder).finished
    write_report(out / SPEC["name"], reps=200)
    return out / SPEC["name"]


def run_folder(experiment: Path, label: str, seed: int = 0) -> Path:
    return experiment / "CartPole-v1" / label / f"seed-{seed}"


def test_measuring_leaves_the_training_run_unchanged(experiment: Path) -> None:
    import torch

    from rlrelax.agents import GumbelAC

    with (
        np.load(run_folder(experiment, "GumbelAC") / "evaluations.npz") as measured,
        np.load(run_folder(experiment, UNMEASURED) / "evaluations.npz") as plain,
    ):
        assert measured["timesteps"].tolist() == [500, 1000, 1500]
        for key in plain.files:
            np.testing.assert_array_equal(measured[key], plain[key])
    # After so few steps the evaluations could agree by chance; the trained parameters cannot.
    measured_model, plain_model = (
        GumbelAC.load(run_folder(experiment, label) / "model.zip") for label in ("GumbelAC", UNMEASURED)
    )
    for key, value in plain_model.policy.state_dict().items():
        torch.testing.assert_close(measured_model.policy.state_dict()[key], value, rtol=0, atol=0)


def test_each_measured_run_stores_its_measurements(experiment: Path) -> None:
    folder = run_folder(experiment, "GumbelAC")
    stats = read_gradient_stats(folder / "gradient_stats.csv")
    assert stats["timestep"].tolist() == [500, 1000, 1500]
    assert np.all(stats["variance"] > 0) and np.all(stats["seconds"] > 0)
    assert np.isfinite(stats["relative_bias_sq"]).all() and np.isfinite(stats["exact_norm"]).all()
    listed = json.loads((folder / RESULT_FILE).read_text())["files"]
    assert listed["gradient_stats.csv"]["size"] == (folder / "gradient_stats.csv").stat().st_size
    (finished,) = [r for r in finished_runs(experiment) if (r.label, r.seed) == ("GumbelAC", 0)]
    assert finished.gradient_stats is not None
    for name in GRADIENT_STATS_COLUMNS:
        np.testing.assert_array_equal(finished.gradient_stats[name], stats[name])
    # REINFORCE has no exact gradient: its bias columns are empty; DQN has no actor gradient, no file.
    reinforce = read_gradient_stats(run_folder(experiment, "REINFORCE") / "gradient_stats.csv")
    assert len(reinforce["timestep"]) >= 1 and np.isnan(reinforce["relative_bias_sq"]).all()
    assert not (run_folder(experiment, "DQN") / "gradient_stats.csv").exists()
    assert (
        json.loads((run_folder(experiment, "DQN") / "config.json").read_text())["run"]["diagnostics"] is None
    )


def test_the_file_reads_back_what_was_measured(tmp_path: Path) -> None:
    with_exact = {name: float(index) + 0.25 for index, name in enumerate(GRADIENT_STATS_COLUMNS)}
    with_exact.update(timesteps=500.0, cosine=math.nan, total_seconds=9.0)
    without = {"timesteps": 1000.0, "variance": 2.0, "variance_se": 0.5, "signal": -1e-9, "signal_se": 1e-3}
    without.update(snr=-5e-10, snr_se=1e-4, seconds=0.125)
    path = tmp_path / "gradient_stats.csv"
    path.write_bytes(gradient_stats_csv([with_exact, without]))
    stats = read_gradient_stats(path)
    assert stats["timestep"].tolist() == [500, 1000] and stats["timestep"].dtype == np.int64
    for name in GRADIENT_STATS_COLUMNS[1:]:
        expected = [with_exact[name], without.get(name, math.nan)]
        np.testing.assert_array_equal(stats[name], expected)  # NaN where equal NaN; floats bit for bit
    path.write_bytes(gradient_stats_csv([]))
    assert read_gradient_stats(path)["variance"].shape == (0,)
    path.write_text("timestep,variance\n500,1.0\n")
    with pytest.raises(ValueError, match="does not start with the header timestep,variance,variance_se"):
        read_gradient_stats(path)


def test_a_measured_run_whose_result_leaves_out_its_file_is_damaged(experiment: Path, tmp_path: Path) -> None:
    folder = tmp_path / "seed-0"
    shutil.copytree(run_folder(experiment, "GumbelAC"), folder)
    marker = folder / RESULT_FILE
    result = json.loads(marker.read_text())
    del result["files"]["gradient_stats.csv"]
    marker.write_text(json.dumps(result))
    with pytest.raises(DamagedRunError, match=r"does not list the run's file\(s\) \['gradient_stats.csv'\]"):
        read_finished_run(folder)


def rows(path: Path) -> list[dict[str, str]]:
    with open(path) as file:
        return list(csv.DictReader(file))


def test_the_report_shows_each_agents_gradient_quality(experiment: Path) -> None:
    report = (experiment / "report.md").read_text()
    section = report[report.index("## Gradient quality: CartPole-v1") :]
    table = [line for line in section.splitlines() if line.startswith("| ")][2:]
    labels = ["| GumbelAC", "| GumbelAC-exact", "| REINFORCE", "| SoftQ"]
    assert [line.split(" | ")[0] for line in table] == labels
    assert table[0].startswith("| GumbelAC | GumbelAC | 2 | 500 / 3 / 64 | 3 | ")
    # The exact estimator is the same at every draw: no variance, an infinite SNR, no bias.
    assert table[1].startswith(
        "| GumbelAC-exact | GumbelAC | 2 | 500 / 3 / 64 | 2 | 0 [0, 0] | inf [nan, nan] | "
    )
    assert table[2].startswith("| REINFORCE | REINFORCE | 2 | 500 / 3 / 64 | ")
    assert table[2].split(" | ")[7:9] == ["—", "—"]  # relative bias², cosine
    assert "- DQN (DQN): no gradient diagnostics: DQN has no actor gradient they can measure" in section
    assert f"- {UNMEASURED} (GumbelAC): no gradient diagnostics: its runs asked for none." in section
    assert "- REINFORCE (REINFORCE): no exact gradient to compare with" in section
    assert "- SoftQ (SoftQ): SoftQ trains no actor, so no update follows the gradient measured" in section
    assert sum("trains no actor" in line for line in section.splitlines()) == 1
    assert "- GumbelAC-exact (GumbelAC): zero variance: its estimate is the same at every draw" in section
    assert "![gradient_diagnostics.png](gradient_diagnostics.png)" in section
    assert (experiment / "gradient_diagnostics.png").stat().st_size > 0

    curves = rows(experiment / "gradient_curves.csv")
    assert {(row["agent"], row["timestep"]) for row in curves if row["agent"] == "GumbelAC"} == {
        ("GumbelAC", "500"),
        ("GumbelAC", "1000"),
        ("GumbelAC", "1500"),
    }
    assert {row["agent"] for row in curves} == {"GumbelAC", "GumbelAC-exact", "REINFORCE", "SoftQ"}
    per_run = [
        read_gradient_stats(run_folder(experiment, "GumbelAC", seed) / "gradient_stats.csv")
        for seed in (0, 1)
    ]
    for index, row in enumerate(r for r in curves if r["agent"] == "GumbelAC"):
        for name in ("variance", "snr", "relative_bias_sq", "cosine"):
            expected = iqm(np.array([stats[name][index] for stats in per_run]))
            assert float(row[f"{name}_iqm"]) == pytest.approx(expected, rel=1e-5), (row, name)
            assert float(row[f"{name}_low"]) <= float(row[f"{name}_high"])
    assert all(
        row["relative_bias_sq_iqm"] == row["cosine_high"] == ""
        for row in curves
        if row["agent"] == "REINFORCE"
    )


def test_the_report_is_the_same_when_rewritten(experiment: Path) -> None:
    before = {name: (experiment / name).read_bytes() for name in ("report.md", "gradient_curves.csv")}
    write_report(experiment, reps=200)
    assert {name: (experiment / name).read_bytes() for name in before} == before


def test_a_report_without_diagnostics_has_no_such_section(experiment: Path, tmp_path: Path) -> None:
    shutil.copytree(run_folder(experiment, UNMEASURED), tmp_path / "plain" / "CartPole-v1" / "A" / "seed-0")
    written = write_report(tmp_path / "plain", reps=200)
    assert "gradient_curves.csv" not in written and "gradient_diagnostics.png" not in written
    assert "Gradient quality" not in (tmp_path / "plain" / "report.md").read_text()
