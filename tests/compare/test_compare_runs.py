"""Running a spec: the store's layout, failures recorded while the others finish, resuming after Ctrl-C and
``kill -9``, the report's determinism, the command line, and the Ray backend.

Tiny budgets (500 env steps of SB3's PPO and DQN): these test the machinery, not learning.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from stable_baselines3 import PPO

from rlrelax._platform import cpu_model
from rlrelax.cli import EXIT_BUSY, EXIT_FAILED, EXIT_INVALID, main
from rlrelax.compare import (
    CompareResult,
    DamagedRunError,
    ExperimentLockedError,
    Spec,
    execute_run,
    finished_runs,
    run_experiment,
    spec_from_dict,
    write_report,
)
from rlrelax.compare.store import experiment_lock, run_status

HERE = Path(__file__).resolve().parent
RLRELAX = str(Path(sys.executable).with_name("rlrelax"))
TINY_PPO = {"n_steps": 64, "batch_size": 64, "n_epochs": 2, "policy_kwargs": {"net_arch": [16]}}
TINY_DQN = {"learning_starts": 100, "buffer_size": 1000, "policy_kwargs": {"net_arch": [16]}}
TABLES = ["report.md", "summary.csv", "runs.csv", "evaluations.csv"]
REPORT_FILES = [*TABLES, "learning_curves.png", "final_returns.png"]


class FailsOnSeedOne(PPO):
    """PPO that raises once training starts on seed 1: a run that passes the spec check and then fails."""

    def learn(self, *args: Any, **kwargs: Any) -> Any:
        if self.seed == 1:
            raise RuntimeError("deliberate failure on seed 1")
        return super().learn(*args, **kwargs)


class HangsAfterTraining(PPO):
    """PPO that, while ``RLRELAX_TEST_HANG`` is set, trains and then hangs before returning from ``learn``.

    The run has trained and evaluated but not written its ``result.json``: the worst moment for an
    interruption. A file ``hanging`` in the run folder, holding the worker's pid, tells the test it got there.
    """

    def learn(self, *args: Any, **kwargs: Any) -> Any:
        model = super().learn(*args, **kwargs)
        if os.environ.get("RLRELAX_TEST_HANG"):
            Path(self.logger.dir or ".", "hanging").write_text(str(os.getpid()))
            time.sleep(600)
        return model


def tiny_spec(name: str, agents: list[dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    return {
        "name": name,
        "envs": ["CartPole-v1"],
        "seeds": seeds,
        "evaluation": {"every": 250, "episodes": 2},
        "agents": agents,
    }


PPO_AGENT = {"label": "PPO", "algorithm": "PPO", "total_timesteps": 500, "n_envs": 2, "kwargs": TINY_PPO}
FAILING_AGENT = {
    "label": "Failing",
    "algorithm": f"{__name__}:FailsOnSeedOne",
    "total_timesteps": 500,
    "kwargs": TINY_PPO,
}


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> tuple[Spec, Path, CompareResult]:
    out = tmp_path_factory.mktemp("store")
    spec = spec_from_dict(tiny_spec("unit", [PPO_AGENT, FAILING_AGENT], [0, 1]))
    result = run_experiment(spec, out, workers=2, progress=False)
    return spec, out, result


def test_a_failing_run_is_recorded_and_the_others_finish(local: tuple[Spec, Path, CompareResult]) -> None:
    spec, out, result = local
    assert not result.ok and result.total == 4 and result.skipped == 0
    assert len(result.finished) == 3
    (failure,) = result.failed
    folder = out / "unit" / "CartPole-v1" / "Failing" / "seed-1"
    assert failure.folder == str(folder) and failure.error is not None
    assert "deliberate failure on seed 1" in failure.error
    assert "RuntimeError: deliberate failure on seed 1" in (folder / "error.txt").read_text()
    assert not (folder / "result.json").exists()
    (failed_run,) = [r for r in spec.runs() if r.agent.label == "Failing" and r.seed == 1]
    assert run_status(folder, failed_run.to_config()) == "unfinished"  # redone by the next compare


def test_a_worker_runs_one_thread_with_subnormals_flushed() -> None:
    # In a fresh process: both are process-wide settings that the test session itself must not change.
    probe = (
        "import torch\n"
        "from rlrelax.compare.worker import init_worker\n"
        "subnormal = torch.tensor([1e-40])\n"
        "assert subnormal.item() != 0.0, 'subnormals already flushed before init_worker'\n"
        "init_worker()\n"
        "print(torch.get_num_threads(), (subnormal * 1.0).item())\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "0.0"]


def test_store_layout_and_marker_written_last(local: tuple[Spec, Path, CompareResult]) -> None:
    spec, out, _ = local
    folder = out / "unit" / "CartPole-v1" / "PPO" / "seed-1"
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "evaluations.npz",
        "model.zip",
        "progress.csv",
        "result.json",
    ]
    config = json.loads((folder / "config.json").read_text())
    assert config["run"] == spec.runs()[1].to_config()
    assert set(config["environment"]["versions"]) >= {"stable-baselines3", "torch", "gymnasium", "numpy"}
    assert "git_commit" in config["environment"]
    assert config["environment"]["cpu"] == cpu_model()
    with np.load(folder / "evaluations.npz") as evaluations:  # SB3's EvalCallback format, unchanged
        assert sorted(evaluations.files) == ["ep_lengths", "results", "timesteps"]
        # every 250 steps (125 calls of 2 envs), then the final model at 512 (PPO's last rollout overshoots)
        assert evaluations["timesteps"].tolist() == [250, 500, 512]
        assert evaluations["results"].shape == (3, 2)
    result = json.loads((folder / "result.json").read_text())
    assert result["final_timestep"] == 512 and result["n_evaluations"] == 3
    with np.load(folder / "evaluations.npz") as evaluations:
        assert result["final_return"] == pytest.approx(evaluations["results"][-1].mean())
    marker = (folder / "result.json").stat().st_mtime_ns
    assert all(p.stat().st_mtime_ns <= marker for p in folder.iterdir())
    with open(folder / "progress.csv") as file:
        assert "time/total_timesteps" in next(csv.reader(file))
    assert not list(out.rglob("*.tmp"))
    loaded = PPO.load(folder / "model.zip")
    assert loaded.num_timesteps == 512


def test_same_seed_same_run(local: tuple[Spec, Path, CompareResult], tmp_path: Path) -> None:
    import torch

    torch.set_num_threads(1)  # as in the workers
    (run,) = spec_from_dict(tiny_spec("unit", [PPO_AGENT], [1])).runs()
    assert execute_run(run.to_config(), run.folder(tmp_path)).finished
    with (
        np.load(local[1] / "unit/CartPole-v1/PPO/seed-1/evaluations.npz") as a,
        np.load(tmp_path / "unit/CartPole-v1/PPO/seed-1/evaluations.npz") as b,
    ):
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key])


def test_report_reads_finished_runs_only_and_is_deterministic(
    local: tuple[Spec, Path, CompareResult],
) -> None:
    _, out, _ = local
    directory = out / "unit"
    before = {name: (directory / name).read_bytes() for name in TABLES}
    write_report(directory)
    for name, content in before.items():
        assert (directory / name).read_bytes() == content, name
    for name in REPORT_FILES:
        assert (directory / name).stat().st_size > 0
    with open(directory / "summary.csv") as file:
        rows = {row["agent"]: row for row in csv.DictReader(file)}
    assert rows["PPO"]["runs"] == "2" and rows["Failing"]["runs"] == "1"  # the failed run is not counted
    assert float(rows["PPO"]["threshold"]) == 475.0
    low, iqm, high = (
        float(rows["PPO"][k]) for k in ["final_return_iqm_low", "final_return_iqm", "final_return_iqm_high"]
    )
    assert low <= iqm <= high
    report = (directory / "report.md").read_text()
    assert "## CartPole-v1 (success threshold 475)" in report
    assert "| PPO | PPO | 2 | 500 |" in report and "P(row > column)" in report
    assert "CartPole-v1 / Failing / seed-1: failed, see error.txt (not counted)" in report
    with open(directory / "runs.csv") as file:
        runs = list(csv.DictReader(file))
    assert [(r["agent"], r["seed"]) for r in runs] == [("Failing", "0"), ("PPO", "0"), ("PPO", "1")]
    # What rlrelax aggregate needs of a run besides its returns: the threshold in full and the budget.
    assert (runs[1]["threshold"], runs[1]["total_timesteps"]) == ("475.0", "500")
    assert len(finished_runs(directory)) == 3
    with open(directory / "evaluations.csv") as file:
        evaluations = list(csv.DictReader(file))
    # Evaluations at 250 and 500 steps and the final model's at 512 (PPO's last rollout of 2 x 64 overshoots),
    # each the mean over the two episodes of its row in evaluations.npz.
    ppo_0 = [row for row in evaluations if (row["agent"], row["seed"]) == ("PPO", "0")]
    (run,) = [run for run in finished_runs(directory) if (run.label, run.seed) == ("PPO", 0)]
    assert [int(row["timestep"]) for row in ppo_0] == run.timesteps.tolist()
    assert [float(row["mean_return"]) for row in ppo_0] == pytest.approx(run.returns.mean(axis=1).tolist())
    assert float(ppo_0[-1]["mean_return"]) == pytest.approx(float(runs[1]["final_return"]))


def cli(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RLRELAX, *args], capture_output=True, text=True, timeout=300, **kwargs)


def test_cli_report_writes_the_same_files(
    local: tuple[Spec, Path, CompareResult], capsys: pytest.CaptureFixture[str]
) -> None:
    directory = local[1] / "unit"
    before = (directory / "summary.csv").read_bytes()
    assert main(["report", str(directory)]) == 0
    assert str(directory / "report.md") in capsys.readouterr().out.splitlines()
    assert (directory / "summary.csv").read_bytes() == before


def test_cli_report_of_an_empty_folder_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path)]) == 2
    assert "holds no finished run" in capsys.readouterr().err


def test_cli_compare_refuses_a_bad_spec_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "bad.toml"
    bad_agent = {**PPO_AGENT, "kwargs": {"gama": 0.9}}
    spec.write_text(to_toml(tiny_spec("bad", [PPO_AGENT, bad_agent], [0])))
    assert main(["compare", str(spec), "--out", str(tmp_path / "runs")]) == 2
    assert f"{spec}: agents[1].kwargs.gama: PPO does not take a keyword 'gama'" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_cli_train(tmp_path: Path) -> None:
    out = tmp_path / "ppo"
    done = cli(
        "train",
        "PPO",
        "CartPole-v1",
        "--steps",
        "500",
        "--seed",
        "0",
        "--out",
        str(out),
        "--kwargs",
        json.dumps(TINY_PPO),
    )
    assert done.returncode == 0, done.stderr
    assert f"saved to {out}/model.zip" in done.stdout
    result = json.loads((out / "result.json").read_text())
    assert result["final_timestep"] == 512
    assert json.loads((out / "config.json").read_text())["run"]["seed"] == 0
    assert PPO.load(out / "model.zip").num_timesteps == 512
    bad = cli("train", "PPO", "CartPole-v1", "--kwargs", '{"gama": 1}', "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "does not take a keyword 'gama'" in bad.stderr


def test_cli_train_applies_the_agents_hyperparameter_file_unless_told_not_to(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], reinforce_hyperparameters: Callable[[str], None]
) -> None:
    reinforce_hyperparameters('["CartPole-v1"]\nn_episodes = 2\ngamma = 0.9\n')
    common = ["train", "REINFORCE", "CartPole-v1", "--steps", "200", "--kwargs", '{"gamma": 0.95}']
    assert main([*common, "--out", str(tmp_path / "with")]) == 0
    assert 'from its hyperparameter file, {"n_episodes": 2, "gamma": 0.9}' in capsys.readouterr().out
    config = json.loads((tmp_path / "with" / "config.json").read_text())["run"]
    assert config["kwargs"] == {"n_episodes": 2, "gamma": 0.95}  # --kwargs wins over the file
    assert main([*common, "--no-hyperparams", "--out", str(tmp_path / "without")]) == 0
    assert "hyperparameter file" not in capsys.readouterr().out
    config = json.loads((tmp_path / "without" / "config.json").read_text())["run"]
    assert config["kwargs"] == {"gamma": 0.95}


def test_cli_train_takes_the_number_of_envs_from_the_file_unless_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], reinforce_hyperparameters: Callable[[str], None]
) -> None:
    reinforce_hyperparameters('["CartPole-v1"]\nn_envs = 2\n')
    common = ["train", "REINFORCE", "CartPole-v1", "--steps", "200"]

    def n_envs(folder: str) -> int:
        return int(json.loads((tmp_path / folder / "config.json").read_text())["run"]["n_envs"])

    assert main([*common, "--out", str(tmp_path / "file")]) == 0
    assert "from its hyperparameter file, {} and n_envs = 2" in capsys.readouterr().out
    assert main([*common, "--n-envs", "3", "--out", str(tmp_path / "given")]) == 0
    assert main([*common, "--no-hyperparams", "--out", str(tmp_path / "none")]) == 0
    assert (n_envs("file"), n_envs("given"), n_envs("none")) == (2, 3, 1)


@pytest.mark.parametrize(("content", "kind"), [("result.json", "a finished run"), ("notes.txt", "not a run")])
def test_cli_train_never_wipes_a_folder_it_did_not_leave_unfinished(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, kind: str
) -> None:
    if content == "result.json":
        (tmp_path / "config.json").write_text("{}")
    (tmp_path / content).write_text("{}")
    assert main(["train", "PPO", "CartPole-v1", "--steps", "100", "--out", str(tmp_path)]) == 2
    assert kind in capsys.readouterr().err and (tmp_path / content).exists()


def to_toml(spec: dict[str, Any]) -> str:
    """Write the small specs of these tests as TOML (the standard library reads TOML but cannot write it)."""

    def value(v: Any) -> str:
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v)

    lines = [f"{k} = {value(v)}" for k, v in spec.items() if k not in ("evaluation", "agents")]
    lines += ["[evaluation]", *(f"{k} = {value(v)}" for k, v in spec["evaluation"].items())]
    for agent in spec["agents"]:
        lines += ["[[agents]]", *(f"{k} = {value(v)}" for k, v in agent.items())]
    return "\n".join(lines) + "\n"


def as_foreground_job() -> None:
    """In the child, before exec: take Ctrl-C as a terminal's foreground job does.

    A job started in the background by a non-interactive shell (``cmd &``, as CI runners may start the
    tests) inherits SIGINT and SIGQUIT ignored, and Python keeps an inherited SIG_IGN, so without this the
    simulated Ctrl-C would be ignored and the test would hang instead of testing the interrupt.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


def start_as_foreground_job(command: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """Start ``command`` in a session of its own (so the test can signal its whole process group)."""
    return subprocess.Popen(
        command,
        env=env,
        start_new_session=True,
        preexec_fn=as_foreground_job,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition: Any, process: subprocess.Popen[str], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"compare exited early ({process.returncode}): {process.communicate()}")
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            raise AssertionError("timed out waiting for the runs")
        time.sleep(0.2)


def group_gone(pgid: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def test_resume_after_ctrl_c_and_kill_9(tmp_path: Path) -> None:
    hanging = {**PPO_AGENT, "label": "Hangs", "algorithm": "test_compare_runs:HangsAfterTraining"}
    dqn = {"label": "DQN", "algorithm": "DQN", "total_timesteps": 500, "kwargs": TINY_DQN}
    spec_file = tmp_path / "resume.toml"
    spec_file.write_text(to_toml(tiny_spec("resume", [dqn, hanging], [0, 1])))
    out = tmp_path / "runs"
    store = out / "resume" / "CartPole-v1"
    command = [RLRELAX, "compare", str(spec_file), "--out", str(out), "--workers", "1"]
    env = {**os.environ, "PYTHONPATH": str(HERE), "RLRELAX_TEST_HANG": "1"}

    marker = store / "Hangs" / "seed-0" / "hanging"

    def hanging(other_than: str = "") -> bool:
        try:
            return marker.read_text() not in ("", other_than)
        except FileNotFoundError:  # not there yet, or being wiped by a new attempt
            return False

    # 1. Ctrl-C (SIGINT to the whole foreground group, as a terminal sends it) while the third run hangs.
    first = start_as_foreground_job(command, env)
    wait_for(hanging, first)
    os.killpg(first.pid, signal.SIGINT)
    _, stderr = first.communicate(timeout=60)
    assert first.returncode == 130, stderr
    assert "interrupted; finished runs are kept" in stderr
    assert group_gone(first.pid), "workers outlived the interrupted command"
    finished = {p.parent.relative_to(store) for p in store.glob("*/*/result.json")}
    assert finished == {Path("DQN/seed-0"), Path("DQN/seed-1")}
    stamps = {run: (store / run / "result.json").stat().st_mtime_ns for run in finished}
    attempts = {run: json.loads((store / run / "result.json").read_text())["attempt"] for run in finished}

    # 2. kill -9 of the whole process tree while the same run hangs again.
    first_worker = marker.read_text()
    second = start_as_foreground_job(command, env)
    wait_for(lambda: hanging(other_than=first_worker), second)
    os.killpg(second.pid, signal.SIGKILL)
    second.communicate(timeout=60)
    assert not (store / "Hangs" / "seed-0" / "result.json").exists()

    # 3. The same command, no longer hanging: only the unfinished runs are done, each exactly once.
    env.pop("RLRELAX_TEST_HANG")
    third = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stderr
    assert "4 runs: 2 already finished, 2 finished now, 0 failed" in third.stdout
    for run in finished:
        assert (store / run / "result.json").stat().st_mtime_ns == stamps[run]
        assert json.loads((store / run / "result.json").read_text())["attempt"] == attempts[run]
    assert sorted(str(p.parent.relative_to(store)) for p in store.glob("*/*/result.json")) == [
        "DQN/seed-0",
        "DQN/seed-1",
        "Hangs/seed-0",
        "Hangs/seed-1",
    ]
    assert not list(out.rglob("*.tmp"))
    with open(out / "resume" / "summary.csv") as file:
        assert {row["agent"]: row["runs"] for row in csv.DictReader(file)} == {"DQN": "2", "Hangs": "2"}


def test_ray_backend_writes_the_same_store(local: tuple[Spec, Path, CompareResult], tmp_path: Path) -> None:
    pytest.importorskip("ray")
    spec = spec_from_dict(tiny_spec("unit", [PPO_AGENT], [0, 1]))
    result = run_experiment(spec, tmp_path, workers=2, backend="ray", progress=False)
    assert result.ok and len(result.finished) == 2
    for seed in (0, 1):
        here, there = (
            tmp_path / f"unit/CartPole-v1/PPO/seed-{seed}",
            local[1] / f"unit/CartPole-v1/PPO/seed-{seed}",
        )
        assert sorted(p.name for p in here.iterdir()) == sorted(p.name for p in there.iterdir())
        assert (
            json.loads((here / "config.json").read_text())["run"]
            == json.loads((there / "config.json").read_text())["run"]
        )
        with np.load(here / "evaluations.npz") as a, np.load(there / "evaluations.npz") as b:
            np.testing.assert_array_equal(
                a["results"], b["results"]
            )  # same seed, same run, on either backend
    again = run_experiment(spec, tmp_path, workers=2, backend="ray", progress=False, report=False)
    assert again.skipped == 2 and not again.finished


def test_two_commands_never_run_the_same_experiment_at_once(tmp_path: Path) -> None:
    spec = spec_from_dict(tiny_spec("locked", [PPO_AGENT], [0]))
    with experiment_lock(tmp_path / "locked"), pytest.raises(ExperimentLockedError, match="another rlrelax"):
        run_experiment(spec, tmp_path, workers=1, progress=False)
    assert not (tmp_path / "locked" / "CartPole-v1").exists()


def test_cli_exit_codes_tell_a_busy_experiment_a_bad_spec_and_a_failure_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(to_toml(tiny_spec("codes", [PPO_AGENT], [0])))
    with experiment_lock(tmp_path / "runs" / "codes"):
        assert main(["compare", str(spec), "--out", str(tmp_path / "runs")]) == EXIT_BUSY
    assert "rlrelax compare: busy: another rlrelax process is running the runs" in capsys.readouterr().err
    # The store's root is a file: the runs cannot be written, which is no fault of the spec.
    (tmp_path / "file").write_text("")
    assert main(["compare", str(spec), "--out", str(tmp_path / "file")]) == EXIT_FAILED
    assert "rlrelax compare: error while running the runs" in capsys.readouterr().err
    # An unknown label for --agents is refused before any run starts.
    assert main(["compare", str(spec), "--agents", "DQN", "--out", str(tmp_path / "labels")]) == EXIT_INVALID
    assert "has no agent labelled 'DQN'; its labels: PPO" in capsys.readouterr().err
    assert not (tmp_path / "labels").exists()
    # So is a --done-in folder of another spec, or one that is not a results folder.
    other = tmp_path / "other"
    other.mkdir()
    (other / "runs.csv").write_text("env_id,agent,seed\nCartPole-v1,PPO,0\n")
    assert (
        main(["compare", str(spec), "--done-in", str(other), "--out", str(tmp_path / "done")]) == EXIT_INVALID
    )
    assert "rlrelax compare: invalid --done-in folder: " in capsys.readouterr().err
    assert not (tmp_path / "done").exists()
    spec.write_text("name = [")
    assert main(["compare", str(spec), "--out", str(tmp_path / "runs")]) == EXIT_INVALID
    assert "rlrelax compare: invalid spec:" in capsys.readouterr().err


def test_cli_compare_done_in_runs_only_what_the_earlier_pieces_lack(
    local: tuple[Spec, Path, CompareResult], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The earlier piece: the committed results of a store (here the module's), whose seed 1 of PPO is the
    # only run kept; the rest of the spec then runs in a new store, which does not redo it.
    _, out, _ = local
    piece = tmp_path / "piece"
    piece.mkdir()
    for name in ("runs.csv", "evaluations.csv"):
        with open(out / "unit" / name, newline="") as file:
            rows = [row for row in csv.DictReader(file) if (row["agent"], row["seed"]) == ("PPO", "1")]
        with open(piece / name, "w", newline="") as file:
            writer = csv.DictWriter(file, list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
    spec = tmp_path / "spec.toml"
    spec.write_text(to_toml(tiny_spec("unit", [PPO_AGENT], [0, 1])))
    store = tmp_path / "runs"
    assert main(["compare", str(spec), "--done-in", str(piece), "--out", str(store), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"1 of the 2 runs are finished in {piece}: not run here" in printed
    assert "1 runs: 0 already finished, 1 finished now, 0 failed" in printed
    assert [p.name for p in sorted((store / "unit" / "CartPole-v1" / "PPO").iterdir())] == ["seed-0"]


@pytest.mark.parametrize(
    "arguments",
    [["train", "PPO", "CartPole-v1", "--steps", "-5"], ["compare", "spec.toml", "--seeds", "0"]],
)
def test_cli_names_the_option_with_a_bad_number(
    arguments: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(arguments)
    assert exit_info.value.code == EXIT_INVALID
    assert f"argument {arguments[-2]}: must be an integer >= 1, got" in capsys.readouterr().err


def test_an_env_without_a_threshold_is_reported_without_one(tmp_path: Path) -> None:
    agent = {"label": "PPO", "algorithm": "PPO", "total_timesteps": 128, "kwargs": TINY_PPO}
    data = {**tiny_spec("pendulum", [agent], [0]), "envs": ["Pendulum-v1"]}
    data["evaluation"] = {"every": 64, "episodes": 1}
    result = run_experiment(spec_from_dict(data), tmp_path, workers=1, progress=False)
    assert result.ok
    (finished,) = finished_runs(tmp_path / "pendulum")
    assert finished.result.threshold is None and finished.result.solved is None
    report = (tmp_path / "pendulum" / "report.md").read_text()
    assert "## Pendulum-v1 (no success threshold)" in report
    (row,) = [line for line in report.splitlines() if line.startswith("| PPO |")]
    assert "| — | — | — |" in row  # solved, steps to reach, steps to stay


def test_importing_the_comparison_loads_no_heavy_module() -> None:
    heavy = "{'torch', 'stable_baselines3', 'matplotlib'}"
    code = f"import sys, rlrelax.compare; print(sorted({heavy} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"backend": "slurm"}, r"backend must be one of \['local', 'ray'\], got 'slurm'"),
        ({"workers": 0}, "workers must be an int >= 1, got 0"),
        ({"ray_address": "auto"}, "ray_address='auto' needs backend='ray'"),
    ],
)
def test_run_experiment_refuses_bad_options(tmp_path: Path, options: dict[str, Any], match: str) -> None:
    spec = spec_from_dict(tiny_spec("opts", [PPO_AGENT], [0]))
    with pytest.raises(ValueError, match=match):
        run_experiment(spec, tmp_path, **options)
    assert not (tmp_path / "opts").exists()


def test_a_namespaced_env_id_runs_and_reads_back(tmp_path: Path) -> None:
    # "rlrelax/..." ids hold a "/" (one folder, percent-encoded) and their envs have no render_mode, which
    # SB3's make_vec_env would set to "rgb_array" if given the id.
    import torch

    torch.set_num_threads(1)
    data = tiny_spec("ns", [{"label": "A2C", "algorithm": "A2C", "total_timesteps": 200}], [0])
    (run,) = spec_from_dict({**data, "envs": ["rlrelax/CartPole-v1"]}).runs()
    outcome = execute_run(run.to_config(), run.folder(tmp_path))
    assert outcome.finished, outcome
    assert run.folder(tmp_path) == tmp_path / "ns" / "rlrelax%2FCartPole-v1" / "A2C" / "seed-0"
    (finished,) = finished_runs(tmp_path / "ns")
    assert finished.env_id == "rlrelax/CartPole-v1" and finished.seed == 0


def test_normalize_saves_the_statistics_and_evaluates_with_the_training_ones(tmp_path: Path) -> None:
    import torch
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize

    torch.set_num_threads(1)
    agent = {**PPO_AGENT, "kwargs": {**TINY_PPO, "gamma": 0.9}, "normalize": True}
    # One evaluation, of the final model: the eval env is fresh, so it can be rebuilt exactly below.
    data = {**tiny_spec("norm", [agent], [0]), "evaluation": {"every": 10_000, "episodes": 2}}
    (run,) = spec_from_dict(data).runs()
    folder = run.folder(tmp_path)
    outcome = execute_run(run.to_config(), folder)
    assert outcome.finished, outcome
    result = json.loads((folder / "result.json").read_text())
    assert "vecnormalize.pkl" in result["files"]  # checked like every other file of the run
    (finished,) = finished_runs(tmp_path / "norm")
    assert finished.config["run"]["normalize"] == {}
    assert finished.timesteps.tolist() == [512]

    seed = finished.config["run"]["evaluation"]["seed"]
    stats = VecNormalize.load(
        str(folder / "vecnormalize.pkl"), make_vec_env("CartPole-v1", n_envs=2, seed=seed)
    )
    assert stats.gamma == 0.9  # the agent's gamma, as RL Zoo sets it
    assert stats.obs_rms.count > 512  # learned from the training env's observations
    stats.training, stats.norm_reward = False, False
    returns, _ = evaluate_policy(
        PPO.load(folder / "model.zip"),
        stats,
        n_eval_episodes=2,
        deterministic=True,
        return_episode_rewards=True,
    )
    # The evaluation during training saw the observations normalised with the training env's final
    # statistics, and recorded the env's own (unnormalised) returns.
    np.testing.assert_array_equal(finished.returns[-1], returns)
    # A result.json that leaves the statistics out is damaged: the run cannot be evaluated again without them.
    del result["files"]["vecnormalize.pkl"]
    (folder / "result.json").write_text(json.dumps(result))
    with pytest.raises(DamagedRunError, match=r"does not list the run's file\(s\) \['vecnormalize.pkl'\]"):
        finished_runs(tmp_path / "norm")
