"""A spec's final evaluation (``[evaluation] final_episodes``): each final model played for many episodes
after training, given to runs finished before the spec asked for it without training them again.

Tiny budgets of SB3's PPO: these test the machinery, not learning.
"""

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from stable_baselines3 import PPO

from rlrelax.compare import (
    DamagedRunError,
    SpecError,
    finished_runs,
    run_experiment,
    spec_from_dict,
    write_report,
)
from rlrelax.compare.spec import Spec

TINY_PPO = {"n_steps": 64, "batch_size": 64, "n_epochs": 2, "policy_kwargs": {"net_arch": [16]}}
PPO_AGENT = {"label": "PPO", "algorithm": "PPO", "total_timesteps": 500, "n_envs": 2, "kwargs": TINY_PPO}


class FailsToLoad(PPO):
    """PPO whose saved models cannot be loaded: its runs finish, their final evaluations fail."""

    @classmethod
    def load(cls, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("deliberate failure to load")


def spec(evaluation: dict[str, Any], agents: list[dict[str, Any]], seeds: tuple[int, ...] = (0, 1)) -> Spec:
    return spec_from_dict(
        {
            "name": "final",
            "envs": ["CartPole-v1"],
            "seeds": list(seeds),
            # No evaluation before the end: the last one plays the final model on a fresh eval env.
            "evaluation": {"every": 10_000, "episodes": 3, **evaluation},
            "agents": agents,
        }
    )


AGENTS = [PPO_AGENT, {**PPO_AGENT, "label": "PPO-normalized", "normalize": True}]


def runs_csv(experiment: Path) -> dict[tuple[str, int], dict[str, str]]:
    with open(experiment / "runs.csv") as file:
        return {(row["agent"], int(row["seed"])): row for row in csv.DictReader(file)}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store of runs finished before their spec asked for a final evaluation."""
    out = tmp_path_factory.mktemp("store")
    assert run_experiment(spec({}, AGENTS), out, workers=2, progress=False).ok
    return out


@pytest.mark.parametrize("value", [0, -3, 2.5, "100", True])
def test_a_bad_final_episodes_is_refused_naming_it(value: object) -> None:
    with pytest.raises(SpecError, match=r"evaluation\.final_episodes.*must be a positive integer"):
        spec({"final_episodes": value}, AGENTS)


def test_final_episodes_leaves_the_runs_configs_as_they_were() -> None:
    # So that the runs of a store made without it stay finished when a spec asks for it.
    assert [run.to_config() for run in spec({"final_episodes": 5}, AGENTS).runs()] == [
        run.to_config() for run in spec({}, AGENTS).runs()
    ]


def test_finished_runs_get_their_final_evaluation_without_training_again(store: Path, tmp_path: Path) -> None:
    shutil.copytree(store, tmp_path, dirs_exist_ok=True)
    experiment = tmp_path / "final"
    markers = {path: path.read_bytes() for path in sorted(experiment.glob("*/*/seed-*/result.json"))}
    assert {int(row["final_episodes"]) for row in runs_csv(experiment).values()} == {3}

    # A part of the spec (seed 0): the report reads every run, so every finished run gets its evaluation.
    result = run_experiment(
        spec({"final_episodes": 3}, AGENTS, seeds=(0,)), tmp_path, workers=2, progress=False
    )

    assert result.ok and result.total == result.skipped == 2 and not result.finished
    assert sorted(result.evaluated) == sorted(str(path.parent) for path in markers)
    assert "final evaluation of 3 deterministic episodes" in (experiment / "report.md").read_text()
    assert {path: path.read_bytes() for path in markers} == markers  # the runs are the ones trained before
    for run in finished_runs(experiment):
        # The final model on the periodic evaluations' env (its VecNormalize statistics too): the same
        # episodes as the last evaluation, which played it on a fresh env.
        assert run.final_evaluation is not None
        np.testing.assert_array_equal(run.final_evaluation, run.returns[-1])

    more = run_experiment(spec({"final_episodes": 5}, AGENTS), tmp_path, workers=2, progress=False)

    assert len(more.evaluated) == 4
    table = runs_csv(experiment)
    for run in finished_runs(experiment):
        assert run.final_evaluation is not None and run.final_evaluation.shape == (5,)
        assert run.final_return == pytest.approx(run.final_evaluation.mean())
        row = table[(run.label, run.seed)]
        assert float(row["final_return"]) == pytest.approx(run.final_return, abs=1e-3)
        assert int(row["final_episodes"]) == 5
        assert run.returns.shape == (1, 3)  # the evaluations, the learning curve, are kept
    assert "final evaluation of 5 deterministic episodes" in (experiment / "report.md").read_text()
    assert not run_experiment(spec({"final_episodes": 5}, AGENTS), tmp_path, progress=False).evaluated

    path = experiment / "CartPole-v1" / "PPO" / "seed-0" / "final_evaluation.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "model_sha256": "0" * 64}))
    with pytest.raises(DamagedRunError, match=r"final_evaluation\.json is the final evaluation of another"):
        finished_runs(experiment)
    path.write_text(json.dumps({**data, "returns": data["returns"][:2]}))
    with pytest.raises(DamagedRunError, match="does not hold its episodes' returns"):
        finished_runs(experiment)
    path.unlink()
    # One run of an agent with a final evaluation and one without: their final returns are not comparable.
    with pytest.raises(ValueError, match=r"PPO on CartPole-v1: .*seed 0: 3, seed 1: 5"):
        write_report(experiment)


def test_a_failed_final_evaluation_keeps_the_run_and_writes_no_report(tmp_path: Path) -> None:
    agent = {**PPO_AGENT, "label": "Unloadable", "algorithm": f"{__name__}:FailsToLoad"}
    result = run_experiment(spec({"final_episodes": 3}, [agent]), tmp_path, workers=2, progress=False)
    assert not result.ok and len(result.finished) == 2 and not result.failed
    assert len(result.failed_evaluations) == 2
    assert all("deliberate failure to load" in str(outcome.error) for outcome in result.failed_evaluations)
    assert len(finished_runs(tmp_path / "final")) == 2
    assert not (tmp_path / "final" / "report.md").exists()
