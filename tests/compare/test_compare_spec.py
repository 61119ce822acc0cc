"""Experiment specs: every mistake is refused before any run starts, naming file, key and reason."""

import inspect
import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecNormalize

from rlrelax.compare import (
    ALGORITHMS,
    DEFAULT_EVALUATION_EVERY,
    Diagnostics,
    SpecError,
    accepted_kwargs,
    check_store,
    env_folder,
    env_id_from_folder,
    load_spec,
    spec_from_dict,
)
from rlrelax.compare.hyperparams import resolve_kwargs
from rlrelax.compare.spec import NORMALIZE_KEYS
from rlrelax.compare.store import RunResult, claim_run_dir
from rlrelax.relax import LinearSchedule

REPO = Path(__file__).resolve().parents[2]


def minimal(**changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "unit",
        "envs": ["CartPole-v1"],
        "seeds": [0, 1],
        "evaluation": {"every": 100, "episodes": 2},
        "agents": [{"label": "ppo", "algorithm": "PPO", "total_timesteps": 200, "kwargs": {"n_steps": 64}}],
    }
    spec.update(changes)
    return spec


def refused(data: dict[str, Any]) -> SpecError:
    with pytest.raises(SpecError) as info:
        spec_from_dict(data, source="spec.toml")
    return info.value


def test_a_valid_spec_resolves_defaults_and_the_grid() -> None:
    spec = spec_from_dict(minimal(seeds=3))
    assert spec.seeds == (0, 1, 2)
    assert spec.evaluation.thresholds == {"CartPole-v1": 475.0}  # CartPole-v1's registered reward_threshold
    assert spec.evaluation.episodes == 2 and spec.evaluation.seed_offset == 1000
    runs = spec.runs()
    assert [(r.env_id, r.agent.label, r.seed) for r in runs] == [("CartPole-v1", "ppo", s) for s in range(3)]
    config = runs[2].to_config()
    assert config["algorithm_path"] == "stable_baselines3:PPO"
    assert config["evaluation"] == {"every": 100, "episodes": 2, "seed": 1002, "threshold": 475.0}
    assert json.loads(json.dumps(config)) == config  # what config.json stores compares equal on resume


def test_the_error_names_the_file_the_key_and_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\nenvs = ["CartPole-v1"]\nseeds = []\n')
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(info.value).startswith(f"{path}: seeds: needs at least one seed")
    assert (info.value.source, info.value.key) == (str(path), "seeds")


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("name = \n")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(path)
    with pytest.raises(SpecError, match="no such file"):
        load_spec(tmp_path / "absent.toml")


def test_unknown_algorithm() -> None:
    agent = {"label": "x", "algorithm": "PPOO", "total_timesteps": 100}
    error = refused(minimal(agents=[agent]))
    assert error.key == "agents[0].algorithm"
    assert "unknown algorithm 'PPOO'" in error.reason and "REINFORCE" in error.reason
    agent["algorithm"] = "stable_baselines3:NoSuchAlgo"
    assert "has no attribute 'NoSuchAlgo'" in refused(minimal(agents=[agent])).reason


def test_unknown_env() -> None:
    error = refused(minimal(envs=["CartPole-v1", "NoSuchEnv-v0"]))
    assert error.key == "envs[1]" and "unknown env 'NoSuchEnv-v0'" in error.reason


def test_continuous_env_for_a_discrete_agent() -> None:
    data = minimal(envs=["MountainCarContinuous-v0"])
    data["agents"] = [{"label": "dqn", "algorithm": "DQN", "total_timesteps": 100}]
    error = refused(data)
    assert error.key == "agents[0]"
    assert (
        "MountainCarContinuous-v0" in error.reason
        and "Box(" in error.reason
        and "does not support" in error.reason
    )


@pytest.mark.parametrize("seeds", [None, [], 0, [1, 1], [-1], ["a"]])
def test_no_or_bad_seeds(seeds: Any) -> None:
    data = minimal()
    if seeds is None:
        del data["seeds"]
    else:
        data["seeds"] = seeds
    assert refused(data).key.startswith("seeds")


def test_duplicate_labels() -> None:
    agent = {"label": "same", "algorithm": "PPO", "total_timesteps": 100, "kwargs": {"n_steps": 64}}
    error = refused(minimal(agents=[agent, {**agent, "algorithm": "A2C", "kwargs": {}}]))
    assert error.key == "agents[1].label" and "duplicate label 'same'" in error.reason


@pytest.mark.parametrize("label", ["", "a/b", "../up", ".hidden", "with space"])
def test_labels_must_be_folder_names(label: str) -> None:
    agent = {"label": label, "algorithm": "PPO", "total_timesteps": 100}
    assert refused(minimal(agents=[agent])).key == "agents[0].label"


def test_a_keyword_the_algorithm_does_not_take() -> None:
    agent = {"label": "ppo", "algorithm": "PPO", "total_timesteps": 100, "kwargs": {"gama": 0.9}}
    error = refused(minimal(agents=[agent]))
    assert error.key == "agents[0].kwargs.gama"
    assert "does not take a keyword 'gama'" in error.reason and "gamma" in error.reason


@pytest.mark.parametrize("name", ["seed", "env", "policy", "tensorboard_log"])
def test_keywords_the_runner_sets_are_refused(name: str) -> None:
    agent = {"label": "ppo", "algorithm": "PPO", "total_timesteps": 100, "kwargs": {name: 1}}
    assert "set by the runner" in refused(minimal(agents=[agent])).reason


def test_a_value_the_algorithm_refuses_fails_before_any_run() -> None:
    # PPO checks batch_size > 1 in its constructor; the spec check builds every agent once.
    agent = {
        "label": "ppo",
        "algorithm": "PPO",
        "total_timesteps": 100,
        "kwargs": {"n_steps": 64, "batch_size": 1},
    }
    error = refused(minimal(agents=[agent]))
    assert error.key == "agents[0]" and "refused its arguments" in error.reason


@pytest.mark.parametrize(
    ("where", "value", "key"),
    [
        ("top", {"nmae": "x"}, "nmae"),
        ("evaluation", {"every": 0}, "evaluation.every"),
        ("evaluation", {"every": 10, "episdoes": 3}, "evaluation.episdoes"),
        ("evaluation", {"every": 10, "threshold": "high"}, "evaluation.threshold"),
        ("evaluation", {"every": 10, "threshold": {"Acrobot-v1": -100}}, "evaluation.threshold.Acrobot-v1"),
        ("agent", {"total_timesteps": 0}, "agents[0].total_timesteps"),
        ("agent", {"n_envs": 1.5}, "agents[0].n_envs"),
        ("agent", {"kwargs": {"learning_rate": "lin_fast"}}, "agents[0].kwargs.learning_rate"),
        (
            "agent",
            {"kwargs": {"policy_kwargs": {"activation_fn": {"object": 3}}}},
            "agents[0].kwargs.policy_kwargs.activation_fn.object",
        ),
        ("agent", {"hyperparams": {}}, "agents[0].hyperparams"),
    ],
)
def test_malformed_values(where: str, value: dict[str, Any], key: str) -> None:
    data = minimal()
    if where == "top":
        data.update(value)
    elif where == "evaluation":
        data["evaluation"] = value
    else:
        data["agents"][0].update(value)
    assert refused(data).key == key


def test_an_env_without_a_registered_threshold_runs_without_one() -> None:
    data = minimal(envs=["Pendulum-v1"])
    data["agents"] = [{"label": "ppo", "algorithm": "PPO", "total_timesteps": 100, "kwargs": {"n_steps": 64}}]
    assert spec_from_dict(data).evaluation.thresholds == {"Pendulum-v1": None}
    data["evaluation"]["threshold"] = -200.0
    assert spec_from_dict(data).evaluation.thresholds == {"Pendulum-v1": -200.0}


def test_evaluation_every_defaults_to_eval_callbacks_default() -> None:
    data = minimal()
    del data["evaluation"]["every"]
    assert spec_from_dict(data).evaluation.every == DEFAULT_EVALUATION_EVERY == 10_000


def test_diagnostics_are_off_unless_asked_and_in_the_run_config_when_asked() -> None:
    assert spec_from_dict(minimal()).diagnostics is None
    assert "diagnostics" not in spec_from_dict(minimal()).runs()[0].to_config()
    # An empty table asks for them with the defaults, measured as often as the evaluations.
    assert spec_from_dict(minimal(diagnostics={})).diagnostics == Diagnostics(
        every=100, draws=16, batch_size=256
    )
    data = minimal(diagnostics={"every": 50, "draws": 3, "batch_size": 32})
    data["agents"].append({"label": "dqn", "algorithm": "DQN", "total_timesteps": 200})
    configs = {run.agent.label: run.to_config() for run in spec_from_dict(data).runs()}
    assert configs["ppo"]["diagnostics"] == {"every": 50, "draws": 3, "batch_size": 32}
    assert configs["dqn"]["diagnostics"] is None  # no actor gradient: the report says so
    assert json.loads(json.dumps(configs["ppo"])) == configs["ppo"]


@pytest.mark.parametrize(
    ("value", "key", "reason"),
    [
        ("often", "diagnostics", "must be a table, got 'often'"),
        ({"evry": 10}, "diagnostics.evry", "unknown key; the keys here are batch_size, draws, every"),
        ({"every": 0}, "diagnostics.every", "must be a positive integer, got 0"),
        (
            {"draws": 2},
            "diagnostics.draws",
            "must be an integer >= 3 (the standard errors leave one draw out), got 2",
        ),
        ({"draws": 16.0}, "diagnostics.draws", "must be an integer >= 3"),
        ({"batch_size": True}, "diagnostics.batch_size", "must be a positive integer, got True"),
        (
            {"every": 500},
            "diagnostics.every",
            "500 env steps is more than the budget of agents[0] ('ppo', 200): it would never be measured",
        ),
    ],
)
def test_bad_diagnostics_are_refused(value: Any, key: str, reason: str) -> None:
    error = refused(minimal(diagnostics=value))
    assert error.key == key and error.reason.startswith(reason), error


def test_an_agent_without_an_actor_gradient_does_not_bound_the_diagnostics() -> None:
    data = minimal(diagnostics={"every": 150})
    data["agents"].append({"label": "dqn", "algorithm": "DQN", "total_timesteps": 100})
    assert spec_from_dict(data).diagnostics == Diagnostics(every=150, draws=16, batch_size=256)


def with_normalize(value: Any) -> dict[str, Any]:
    data = minimal()
    data["agents"][0]["normalize"] = value
    return data


def test_normalize_is_in_the_run_config_only_when_set() -> None:
    assert "normalize" not in spec_from_dict(minimal()).runs()[0].to_config()
    assert "normalize" not in spec_from_dict(with_normalize(False)).runs()[0].to_config()
    assert spec_from_dict(with_normalize(True)).runs()[0].to_config()["normalize"] == {}
    table = {"norm_reward": False, "clip_obs": 5.0, "gamma": 0.9}
    config = spec_from_dict(with_normalize(table)).runs()[0].to_config()
    assert config["normalize"] == table and json.loads(json.dumps(config)) == config


def test_normalize_keys_are_vecnormalizes_less_the_runners() -> None:
    parameters = set(inspect.signature(VecNormalize.__init__).parameters)
    assert set(NORMALIZE_KEYS) == parameters - {"self", "venv", "training"}


@pytest.mark.parametrize(
    ("value", "key", "reason"),
    [
        ("yes", "agents[0].normalize", "must be true, false or a table of VecNormalize keywords, got 'yes'"),
        ({"training": False}, "agents[0].normalize.training", "unknown key; the keys here are clip_obs,"),
        ({"clip_obs": -1.0}, "agents[0].normalize.clip_obs", "must be a finite number > 0, got -1.0"),
        ({"gamma": 1.5}, "agents[0].normalize.gamma", "must be a number in [0, 1], got 1.5"),
        ({"norm_obs": 1}, "agents[0].normalize.norm_obs", "must be true or false, got 1"),
        ({"norm_obs_keys": "x"}, "agents[0].normalize.norm_obs_keys", "must be a list of observation keys"),
        # Well formed, but CartPole's observations are not a Dict: VecNormalize itself refuses it.
        ({"norm_obs_keys": ["x"]}, "agents[0].normalize", "VecNormalize refused it on env 'CartPole-v1'"),
    ],
)
def test_bad_normalize_is_refused(value: Any, key: str, reason: str) -> None:
    error = refused(with_normalize(value))
    assert error.key == key and error.reason.startswith(reason), error


def test_first_seeds_keeps_the_full_runs_configs() -> None:
    spec = spec_from_dict(minimal(seeds=[3, 1, 2]))
    reduced = spec.first_seeds(2)
    assert reduced.seeds == (3, 1)
    assert [run.to_config() for run in reduced.runs()] == [
        run.to_config() for run in spec.runs() if run.seed in (3, 1)
    ]
    with pytest.raises(SpecError, match="has 3 seeds, fewer than the 4 asked for"):
        spec.first_seeds(4)
    with pytest.raises(ValueError, match="count must be an int >= 1, got 0"):
        spec.first_seeds(0)


def test_only_agents_keeps_the_full_runs_configs() -> None:
    dqn = {"label": "dqn", "algorithm": "DQN", "total_timesteps": 200}
    a2c = {"label": "a2c", "algorithm": "A2C", "total_timesteps": 200}
    spec = spec_from_dict(minimal(agents=[*minimal()["agents"], dqn, a2c]))
    part = spec.only_agents(["a2c", "ppo"])
    assert [agent.label for agent in part.agents] == ["ppo", "a2c"]  # the spec's order
    assert [run.to_config() for run in part.runs()] == [
        run.to_config() for run in spec.runs() if run.agent.label in ("ppo", "a2c")
    ]
    with pytest.raises(SpecError, match="has no agent labelled 'PPO', 'sac'; its labels: ppo, dqn, a2c"):
        spec.only_agents(["PPO", "dqn", "sac"])
    with pytest.raises(TypeError, match="labels must be a list of agent labels, not one string, got 'ppo'"):
        spec.only_agents("ppo")
    with pytest.raises(ValueError, match=r"got \[\]"):
        spec.only_agents([])


def results_folder(folder: Path, runs: list[tuple[str, str, int, int]]) -> Path:
    """A committed results folder as ``rlrelax report`` writes it, of runs (env id, label, seed, budget)."""
    folder.mkdir(parents=True)
    lines = ["env_id,agent,seed,final_return,wall_time_s,threshold,total_timesteps"]
    lines += [f"{env},{label},{seed},500.0,1.0,475.0,{budget}" for env, label, seed, budget in runs]
    (folder / "runs.csv").write_text("\n".join(lines) + "\n")
    rows = ["env_id,agent,seed,timestep,mean_return"]
    rows += [f"{env},{label},{seed},{budget},500.0" for env, label, seed, budget in runs]
    (folder / "evaluations.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_without_runs_in_leaves_out_the_runs_other_folders_hold(tmp_path: Path) -> None:
    dqn = {"label": "dqn", "algorithm": "DQN", "total_timesteps": 300}
    spec = spec_from_dict(minimal(seeds=3, agents=[*minimal()["agents"], dqn]))
    # A lost store's committed results (ppo's seed 0) and another piece (dqn's seed 2, and a run of an env
    # and a seed this spec does not have, which changes nothing).
    first = results_folder(tmp_path / "first", [("CartPole-v1", "ppo", 0, 200)])
    second = results_folder(
        tmp_path / "second",
        [("CartPole-v1", "dqn", 2, 300), ("CartPole-v1", "dqn", 7, 300), ("Acrobot-v1", "ppo", 0, 9)],
    )
    rest = spec.without_runs_in([first, second])
    assert [(r.agent.label, r.seed) for r in rest.runs()] == [("ppo", 1), ("ppo", 2), ("dqn", 0), ("dqn", 1)]
    assert [run.to_config() for run in rest.runs()] == [
        run.to_config() for run in spec.runs() if (run.agent.label, run.seed) not in (("ppo", 0), ("dqn", 2))
    ]
    # It composes with the other selections, in any order.
    assert [r.seed for r in rest.only_agents(["dqn"]).first_seeds(2).runs()] == [0, 1]
    assert [r.seed for r in spec.only_agents(["ppo"]).without_runs_in([first]).runs()] == [1, 2]


def test_without_runs_in_refuses_folders_of_another_spec(tmp_path: Path) -> None:
    spec = spec_from_dict(minimal(), source="spec.toml")
    longer = results_folder(tmp_path / "longer", [("CartPole-v1", "ppo", 1, 400)])
    with pytest.raises(
        SpecError,
        match=r"spec.toml: agents\[ppo\].total_timesteps: is 200, but .*longer holds CartPole-v1 / ppo / "
        r"seed-1 with a budget of 400: a run of another spec",
    ):
        spec.without_runs_in([longer])
    other = results_folder(tmp_path / "other", [("CartPole-v1", "dqn", 0, 200)])
    with pytest.raises(
        SpecError, match=r".*other holds no finished run of an env and agent label of this spec"
    ):
        spec.without_runs_in([other])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpecError, match="empty holds no finished run"):
        spec.without_runs_in([tmp_path / "empty"])
    with pytest.raises(TypeError, match="folders must be a list of folders, not one"):
        spec.without_runs_in(other)
    with pytest.raises(ValueError, match=r"got \[\]"):
        spec.without_runs_in([])


def finish_without_training(folder: Path, run_config: dict[str, Any]) -> None:
    """Write a finished run's folder as the store does, with empty files where training writes its own."""
    with claim_run_dir(folder, wipe=True) as held:
        held.write_json("config.json", {"run": run_config})
        for name in ("evaluations.npz", "progress.csv", "model.zip"):
            held.write(name, b"")
        held.finish(RunResult(0.0, 0, 0, None, None, 0.0, attempt="a", finished_at="2000-01-01T00:00:00"))


def test_finished_runs_with_a_different_config_are_refused(tmp_path: Path) -> None:
    spec = spec_from_dict(minimal())
    run = spec.runs()[1]
    folder = run.folder(tmp_path)
    folder.mkdir(parents=True)
    other = {**run.to_config(), "total_timesteps": 999}
    (folder / "config.json").write_text(json.dumps({"run": other}))
    check_store(spec, tmp_path)  # an unfinished run is debris, redone whatever its config
    finish_without_training(folder, other)
    with pytest.raises(SpecError) as info:
        check_store(spec, tmp_path)
    assert info.value.key == "agents[0]" and "different config" in info.value.reason
    finish_without_training(folder, run.to_config())
    check_store(spec, tmp_path)  # the same config: the run is simply kept


def test_asking_for_diagnostics_changes_the_runs_config(tmp_path: Path) -> None:
    plain = spec_from_dict(minimal())
    run = plain.runs()[0]
    finish_without_training(run.folder(tmp_path), run.to_config())
    check_store(plain, tmp_path)
    with pytest.raises(SpecError, match="made with a different config"):
        check_store(spec_from_dict(minimal(diagnostics={"every": 50})), tmp_path)


class KwargsForwarder(PPO):
    """An SB3-style subclass that adds one keyword and forwards the rest to PPO."""

    def __init__(self, *args: Any, extra: int = 1, **kwargs: Any) -> None:
        self.extra = extra
        super().__init__(*args, **kwargs)


def test_accepted_keywords_follow_kwargs_up_the_mro() -> None:
    accepted = accepted_kwargs(KwargsForwarder)
    assert accepted is not None
    assert {"extra", "gamma", "n_steps", "learning_rate"} <= accepted and "gama" not in accepted


def test_import_string_algorithm_with_its_own_keyword() -> None:
    agent = {
        "label": "fwd",
        "algorithm": f"{__name__}:KwargsForwarder",
        "total_timesteps": 100,
        "kwargs": {"extra": 3, "n_steps": 64},
    }
    spec = spec_from_dict(minimal(agents=[agent]))
    assert spec.agents[0].algorithm_path == f"{__name__}:KwargsForwarder"
    agent["kwargs"] = {"extr": 3}
    assert refused(minimal(agents=[agent])).key == "agents[0].kwargs.extr"


def test_hyperparameter_syntax() -> None:
    import torch

    resolved = resolve_kwargs(
        {
            "learning_rate": "lin_0.001",
            "policy_kwargs": {"net_arch": [64, 64], "activation_fn": {"object": "torch.nn:ReLU"}},
            "temperature": {"call": "rlrelax.relax:LinearSchedule", "start": 1.0, "end": 0.5},
            "name": "lin",
        }
    )
    assert resolved["learning_rate"] == LinearSchedule(0.001, 0.0)
    assert resolved["learning_rate"](1.0) == 0.001 and resolved["learning_rate"](0.5) == pytest.approx(0.0005)
    assert resolved["policy_kwargs"] == {"net_arch": [64, 64], "activation_fn": torch.nn.ReLU}
    assert resolved["temperature"] == LinearSchedule(1.0, 0.5)
    assert resolved["name"] == "lin"


def test_env_folders_are_single_reversible_path_components() -> None:
    for env_id in ["CartPole-v1", "rlrelax/CartPole-v1", "my_pkg.envs:Maze-v0", "ALE/Pong-v5"]:
        folder = env_folder(env_id)
        assert "/" not in folder and ":" not in folder
        assert env_id_from_folder(folder) == env_id
    assert env_folder("rlrelax/CartPole-v1") == "rlrelax%2FCartPole-v1"


def test_registry_maps_every_documented_name_to_an_import_string() -> None:
    assert ALGORITHMS == {
        "REINFORCE": "rlrelax.agents:REINFORCE",
        "SoftQ": "rlrelax.agents:SoftQ",
        "GumbelAC": "rlrelax.agents:GumbelAC",
        "PPO": "stable_baselines3:PPO",
        "DQN": "stable_baselines3:DQN",
        "A2C": "stable_baselines3:A2C",
    }


def test_cartpole_spec_matches_rl_zoo() -> None:
    full = tomllib.loads((REPO / "experiments" / "cartpole.toml").read_text())
    assert full["seeds"] == 10
    agents = {a["label"]: a for a in full["agents"]}
    assert [a["algorithm"] for a in full["agents"]] == [
        "REINFORCE",
        "SoftQ",
        "GumbelAC",
        "GumbelAC",
        "PPO",
        "DQN",
    ]
    assert {a["kwargs"]["estimator"] for a in full["agents"] if a["algorithm"] == "GumbelAC"} == {
        "gumbel_softmax",
        "exact",
    }
    budgets = {label: a["total_timesteps"] for label, a in agents.items()}
    assert budgets["REINFORCE"] == 100_000 and budgets["SoftQ"] == 50_000 and budgets["PPO"] == 100_000
    assert agents["PPO"]["n_envs"] == 8
    assert agents["PPO"]["kwargs"] == {
        "n_steps": 32,
        "batch_size": 256,
        "gae_lambda": 0.8,
        "gamma": 0.98,
        "n_epochs": 20,
        "ent_coef": 0.0,
        "learning_rate": "lin_0.001",
        "clip_range": "lin_0.2",
    }
    assert agents["DQN"]["total_timesteps"] == 50_000
    assert agents["DQN"]["kwargs"] == {
        "learning_rate": 2.3e-3,
        "batch_size": 64,
        "buffer_size": 100_000,
        "learning_starts": 1_000,
        "gamma": 0.99,
        "target_update_interval": 10,
        "train_freq": 256,
        "gradient_steps": 128,
        "exploration_fraction": 0.16,
        "exploration_final_eps": 0.04,
        "policy_kwargs": {"net_arch": [256, 256]},
    }


@pytest.mark.parametrize(("name", "runs"), [("cartpole.toml", 6 * 10), ("gumbel_ac_estimators.toml", 2 * 10)])
def test_committed_specs_pass_every_check(name: str, runs: int) -> None:
    assert len(load_spec(REPO / "experiments" / name).runs()) == runs


EVERY_SPEC = sorted(
    path.relative_to(REPO / "experiments").as_posix()
    for path in (REPO / "experiments").rglob("*.toml")
    if "results" not in path.relative_to(REPO / "experiments").parts
)


@pytest.mark.parametrize("name", EVERY_SPEC)
def test_every_committed_spec_loads(name: str) -> None:
    # A tuning spec is the command that reproduces a note's evidence: one that no longer parses (a key written
    # twice) or names a keyword the agent lost would fail only when someone reruns it.
    if "lunarlander" in name:
        pytest.importorskip("Box2D", reason="LunarLander-v3 needs Box2D: pip install 'rlrelax[box2d]'")
    assert load_spec(REPO / "experiments" / name).runs()


def test_the_suites_cartpole_spec_is_the_cartpole_comparison_plus_score_function() -> None:
    comparison = tomllib.loads((REPO / "experiments" / "cartpole.toml").read_text())
    suite = tomllib.loads((REPO / "experiments" / "suite" / "cartpole.toml").read_text())
    added = {"label": "GumbelAC-score_function", "algorithm": "GumbelAC", "total_timesteps": 30_000}
    added["kwargs"] = {"estimator": "score_function"}
    agents = comparison.pop("agents")
    assert suite.pop("agents") == [*agents[:4], added, *agents[4:]]
    assert suite.pop("name") == "suite-cartpole" and comparison.pop("name") == "cartpole"
    # The suite's final return is a final evaluation of 100 episodes; CI's comparison keeps its committed
    # references' ten.
    assert suite["evaluation"].pop("final_episodes") == 100
    assert suite == comparison  # envs, seeds, evaluation and diagnostics


SUITE = {
    "cartpole": (10, 475.0),
    "acrobot": (10, -100.0),
    "lunarlander": (5, 200.0),
    "mountaincar": (5, -110.0),
}


@pytest.mark.parametrize("name", sorted(SUITE))
def test_suite_specs_pass_every_check(name: str) -> None:
    if name == "lunarlander":
        pytest.importorskip("Box2D", reason="LunarLander-v3 needs Box2D: pip install 'rlrelax[box2d]'")
    spec = load_spec(REPO / "experiments" / "suite" / f"{name}.toml")
    seeds, threshold = SUITE[name]
    (env_id,) = spec.envs
    assert len(spec.seeds) == seeds and spec.evaluation.thresholds == {env_id: threshold}
    assert spec.evaluation.final_episodes == 100
    assert [a.label for a in spec.agents] == [
        "REINFORCE",
        "SoftQ",
        "GumbelAC-gumbel_softmax",
        "GumbelAC-exact",
        "GumbelAC-score_function",
        "PPO",
        "DQN",
    ]
    # Zoo's PPO normalises on exactly these two envs.
    assert (spec.agents[5].normalize is not None) == (name in ("acrobot", "mountaincar"))


# ---------------------------------------------------------------- per-env hyperparameter files


def reinforce(**agent: Any) -> dict[str, Any]:
    entry = {"label": "r", "algorithm": "REINFORCE", "total_timesteps": 200, **agent}
    return minimal(envs=["CartPole-v1", "Acrobot-v1"], agents=[entry])


def test_an_envs_hyperparameters_apply_beneath_the_specs_kwargs(
    reinforce_hyperparameters: Callable[[str], None],
) -> None:
    reinforce_hyperparameters('["Acrobot-v1"]\ngamma = 0.9\nn_episodes = 2\n')
    runs = spec_from_dict(reinforce(kwargs={"n_episodes": 6})).runs()
    kwargs = {run.env_id: run.to_config()["kwargs"] for run in runs}
    assert kwargs["Acrobot-v1"] == {"gamma": 0.9, "n_episodes": 6}  # the spec's own kwargs win
    assert kwargs["CartPole-v1"] == {"n_episodes": 6}  # not listed: the defaults
    off = spec_from_dict(reinforce(kwargs={"n_episodes": 6}, hyperparams=False)).runs()
    assert all(run.to_config()["kwargs"] == {"n_episodes": 6} for run in off)


def test_an_envs_number_of_envs_applies_where_the_spec_gives_none(
    reinforce_hyperparameters: Callable[[str], None],
) -> None:
    reinforce_hyperparameters('["Acrobot-v1"]\nn_envs = 4\ngamma = 0.9\n')

    def n_envs(**agent: Any) -> dict[str, int]:
        return {run.env_id: run.to_config()["n_envs"] for run in spec_from_dict(reinforce(**agent)).runs()}

    assert n_envs() == {"Acrobot-v1": 4, "CartPole-v1": 1}  # not listed: one env
    assert n_envs(n_envs=2) == {"Acrobot-v1": 2, "CartPole-v1": 2}  # the spec's own number wins
    assert n_envs(hyperparams=False) == {"Acrobot-v1": 1, "CartPole-v1": 1}
    acrobot = [
        run.to_config()["kwargs"] for run in spec_from_dict(reinforce()).runs() if run.env_id == "Acrobot-v1"
    ]
    assert acrobot and all(
        kwargs == {"gamma": 0.9} for kwargs in acrobot
    )  # n_envs is a run setting, not a keyword


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ('["Acrobot-v1"]\ngama = 0.9\n', "agents[0].hyperparams['Acrobot-v1'].gama", "does not take"),
        ('["Acrobot-v1"]\nseed = 1\n', "agents[0].hyperparams['Acrobot-v1'].seed", "set by the runner"),
        ('["Acrobot-v1"]\nlearning_rate = "lin_x"\n', "agents[0].hyperparams", "lin_x"),
        ("gamma = 0.9\n", "agents[0].hyperparams", "must be a table of keyword arguments"),
        ("[Acrobot\n", "agents[0].hyperparams", "not valid TOML"),
        ('["Acrobot-v1"]\nn_envs = 0\n', "agents[0].hyperparams", "n_envs must be an int >= 1, got 0"),
        ('["Acrobot-v1"]\nn_envs = true\n', "agents[0].hyperparams", "n_envs must be an int, got True"),
        ('["Acrobot-v1"]\nn_envs = 2.0\n', "agents[0].hyperparams", "n_envs must be an int, got 2.0"),
    ],
)
def test_a_bad_hyperparameter_file_is_refused_naming_it(
    reinforce_hyperparameters: Callable[[str], None], text: str, key: str, reason: str
) -> None:
    reinforce_hyperparameters(text)
    error = refused(reinforce())
    assert error.key.startswith(key) and reason in str(error), error


def test_a_value_the_agent_refuses_on_its_env_fails_the_spec(
    reinforce_hyperparameters: Callable[[str], None],
) -> None:
    reinforce_hyperparameters('["Acrobot-v1"]\ngamma = 1.5\n')
    error = refused(reinforce())
    assert "Acrobot-v1" in str(error) and "gamma" in str(error)


@pytest.mark.parametrize("algorithm", ["REINFORCE", "SoftQ", "GumbelAC"])
def test_the_shipped_hyperparameter_files_pass_the_checks(algorithm: str) -> None:
    # Each listed env's table must be keywords the agent takes, in the spec syntax; spec_from_dict checks
    # them whatever the spec's envs.
    spec = spec_from_dict(minimal(agents=[{"label": "a", "algorithm": algorithm, "total_timesteps": 200}]))
    assert spec.agents[0].hyperparameters, f"{algorithm}'s file lists no env"
