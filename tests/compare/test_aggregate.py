"""Statistics across envs (``rlrelax aggregate``) on synthetic run stores: the normalisation, the stratified
bootstrap, the performance profiles, the probability of improvement, the sample-efficiency curves, the report
files and the errors; and the same statistics from the results folders the report writes of them."""

import csv
import dataclasses
import io
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rlrelax.cli import EXIT_INVALID, main
from rlrelax.compare.aggregate import (
    AggregateResult,
    Outcome,
    aggregate,
    normalized_score,
    read_random_scores,
    read_runs,
    write_aggregate,
)
from rlrelax.compare.report import write_report
from rlrelax.compare.stats import probability_of_improvement
from rlrelax.compare.store import RunResult, claim_run_dir, run_dir

RANDOM = {"CartPole-v1": 20.0, "Acrobot-v1": -500.0}
THRESHOLD = {"CartPole-v1": 475.0, "Acrobot-v1": -100.0}


def write_run(
    root: Path,
    env_id: str,
    label: str,
    seed: int,
    returns: Sequence[float],
    timesteps: Sequence[int] | None = None,
    budget: int = 100,
    with_threshold: bool = True,
    wall_time_s: float = 1.0,
) -> None:
    """A finished run as the store writes it, with one episode per evaluation; the experiment is the env."""
    steps = (
        list(timesteps)
        if timesteps is not None
        else [budget * (i + 1) // len(returns) for i in range(len(returns))]
    )
    threshold = THRESHOLD[env_id] if with_threshold else None
    folder = run_dir(root, env_id.lower(), env_id, label, seed)
    with claim_run_dir(folder, wipe=True) as held:
        held.write_json(
            "config.json",
            {
                "run": {
                    "algorithm": label,
                    "total_timesteps": budget,
                    "evaluation": {"threshold": threshold, "episodes": 1},
                }
            },
        )
        evaluations = io.BytesIO()
        np.savez(
            evaluations,
            timesteps=np.array(steps),
            results=np.array(returns, dtype=np.float64)[:, None],
            ep_lengths=np.ones((len(steps), 1), dtype=np.int64),
        )
        held.write("evaluations.npz", evaluations.getvalue())
        held.write("progress.csv", b"")
        held.write("model.zip", b"")
        solved = None if threshold is None else returns[-1] >= threshold
        held.finish(
            RunResult(
                float(returns[-1]), steps[-1], len(steps), threshold, solved, wall_time_s, "a", "2000-01-01"
            )
        )


def score(env_id: str, value: float) -> float:
    """The return whose normalised score is ``value``."""
    return RANDOM[env_id] + value * (THRESHOLD[env_id] - RANDOM[env_id])


def write_scores(root: Path, finals: dict[str, dict[str, Sequence[float]]]) -> list[Path]:
    """Runs with the given normalised final scores: label -> env -> one score per seed."""
    for label, per_env in finals.items():
        for env_id, values in per_env.items():
            for seed, value in enumerate(values):
                write_run(root, env_id, label, seed, [score(env_id, value)])
    return sorted({root / env_id.lower() for per_env in finals.values() for env_id in per_env})


def test_scores_are_normalised_between_random_and_threshold(tmp_path: Path) -> None:
    write_run(tmp_path, "CartPole-v1", "A", 0, [100.0, 247.5])
    write_run(tmp_path, "Acrobot-v1", "A", 0, [-500.0, -100.0])
    write_run(tmp_path, "Acrobot-v1", "A", 1, [-300.0, 0.0])
    result = aggregate([tmp_path / "cartpole-v1", tmp_path / "acrobot-v1"], RANDOM, reps=10)
    assert result.envs == ("Acrobot-v1", "CartPole-v1")
    np.testing.assert_allclose(result.scores["A"]["CartPole-v1"], [0.5])
    np.testing.assert_allclose(result.scores["A"]["Acrobot-v1"], [1.0, 1.25])
    assert normalized_score(20.0, 20.0, 475.0) == 0.0 and normalized_score(475.0, 20.0, 475.0) == 1.0
    with pytest.raises(ValueError, match=r"the threshold \(1.0\) must be above the random score \(2.0\)"):
        normalized_score(1.0, 2.0, 1.0)


def test_the_bootstrap_resamples_within_each_env(tmp_path: Path) -> None:
    # Every run of one env scores 0, every run of the other 1 (4 seeds and 2): a bootstrap that resampled the
    # pooled runs would mix the envs' shares and spread the IQM; resampled within each env, every replication
    # is the same 4 zeros and 2 ones.
    dirs = write_scores(tmp_path, {"A": {"CartPole-v1": [0.0] * 4, "Acrobot-v1": [1.0] * 2}})
    result = aggregate(dirs, RANDOM, reps=500)
    # The IQM of [0, 0, 0, 0, 1, 1] cuts one score from each end: the mean of [0, 0, 0, 1].
    assert result.final_iqm["A"] == pytest.approx((0.25, 0.25, 0.25))
    assert result.seeds["A"] == {"Acrobot-v1": (0, 1), "CartPole-v1": (0, 1, 2, 3)}


def test_the_interval_is_reproducible_and_brackets_the_estimate(tmp_path: Path) -> None:
    dirs = write_scores(tmp_path, {"A": {"CartPole-v1": [0.1, 0.5, 0.9, 0.3], "Acrobot-v1": [0.2, 1.1]}})
    first = aggregate(dirs, RANDOM, reps=300, seed=3).final_iqm["A"]
    assert aggregate(dirs, RANDOM, reps=300, seed=3).final_iqm["A"] == first
    estimate, low, high = first
    assert low < estimate < high


def test_performance_profile_at_known_points(tmp_path: Path) -> None:
    dirs = write_scores(tmp_path, {"A": {"CartPole-v1": [0.0, 0.25, 0.5, 1.0], "Acrobot-v1": [0.75, 1.2]}})
    taus = np.array([-0.1, 0.0, 0.5, 1.0, 1.5])
    fraction, low, high = aggregate(dirs, RANDOM, taus=taus, reps=200).profiles["A"]
    # Scores 0, 0.25, 0.5, 0.75, 1, 1.2: strictly above each tau (rliable's run_score_distribution).
    np.testing.assert_allclose(fraction, [6 / 6, 5 / 6, 3 / 6, 1 / 6, 0.0])
    assert (low <= fraction + 1e-12).all() and (fraction <= high + 1e-12).all()
    assert low[0] == high[0] == 1.0 and low[-1] == high[-1] == 0.0  # every run is above -0.1, none above 1.5


def test_probability_of_improvement_against_a_hand_computation(tmp_path: Path) -> None:
    dirs = write_scores(
        tmp_path,
        {
            "X": {"CartPole-v1": [0.25, 0.5], "Acrobot-v1": [0.0]},
            "Y": {"CartPole-v1": [0.0, 0.5], "Acrobot-v1": [0.25]},
        },
    )
    result = aggregate(dirs, RANDOM, reps=1000)
    # CartPole: of the pairs (x, y), 0.25 beats 0 and loses to 0.5; 0.5 beats 0 and ties 0.5: 2.5 / 4.
    # Acrobot: 0 loses to 0.25: 0. Averaged over the two envs: 0.3125.
    estimate, low, high = result.improvement[("X", "Y")]
    assert estimate == pytest.approx((2.5 / 4 + 0.0) / 2)
    assert result.improvement[("Y", "X")][0] == pytest.approx(1 - estimate)
    assert low <= estimate <= high
    # Each env's term is stats.py's probability of improvement.
    per_env = [
        probability_of_improvement(result.scores["X"][e], result.scores["Y"][e], reps=10)[0]
        for e in result.envs
    ]
    assert np.mean(per_env) == pytest.approx(estimate)


def test_sample_efficiency_reads_each_run_at_fractions_of_its_budget(tmp_path: Path) -> None:
    # A budget of 100 (evaluated at 50, 100 and, as PPO's last rollout overshoots, finally at 104) and one of
    # 1000 (evaluated every 250): each is read at the same fractions of its own budget.
    write_run(
        tmp_path, "CartPole-v1", "A", 0, [score("CartPole-v1", v) for v in (0.2, 0.6, 0.8)], [50, 100, 104]
    )
    values = [score("Acrobot-v1", v) for v in (0.1, 0.3, 0.5, 0.7)]
    for seed in range(4):
        write_run(tmp_path, "Acrobot-v1", "A", seed, values, [250, 500, 750, 1000], budget=1000)
    dirs = [tmp_path / "cartpole-v1", tmp_path / "acrobot-v1"]
    result = aggregate(dirs, RANDOM, fractions=np.array([0.25, 0.5, 1.0]), reps=50)
    curve, low, high = result.efficiency["A"]
    # At 0.25 the CartPole run has no evaluation yet: undefined, although the IQM of the five runs would cut
    # its NaN away. At 0.5: the IQM of 0.2 and four 0.3; at 1: of the final 0.8 and four 0.7.
    assert np.isnan(curve[0]) and np.isnan(low[0]) and np.isnan(high[0])
    np.testing.assert_allclose(curve[1:], [0.3, 0.7])


def test_labels_missing_from_an_env_are_reported(tmp_path: Path) -> None:
    dirs = write_scores(
        tmp_path, {"A": {"CartPole-v1": [0.5], "Acrobot-v1": [0.5]}, "B": {"CartPole-v1": [0.9]}}
    )
    result = aggregate(dirs, RANDOM, reps=10)
    assert result.labels == ("A",) and result.missing == {"B": ("Acrobot-v1",)}
    written = write_aggregate(dirs, write_csv(tmp_path), tmp_path / "out", reps=10)
    assert "- B: no runs on Acrobot-v1" in written["aggregate.md"].read_text()


def write_csv(tmp_path: Path, scores: dict[str, float] = RANDOM) -> Path:
    path = tmp_path / "random_scores.csv"
    rows = ["env_id,episodes,mean_return,std,seed", *(f"{e},100,{v},1.0,0" for e, v in scores.items())]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_write_aggregate_and_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dirs = write_scores(
        tmp_path,
        {
            "A": {"CartPole-v1": [0.5, 0.7], "Acrobot-v1": [0.5]},
            "B": {"CartPole-v1": [0.9, 1.0], "Acrobot-v1": [1.1]},
        },
    )
    scores = write_csv(tmp_path)
    assert read_random_scores(scores) == RANDOM
    args = [
        "aggregate",
        *map(str, dirs),
        "--scores",
        str(scores),
        "--out",
        str(tmp_path / "out"),
        "--reps",
        "50",
    ]
    assert main(args) == 0
    names = {Path(line).name for line in capsys.readouterr().out.split()}
    assert names == {
        "aggregate.md",
        "aggregate.csv",
        "normalized_scores.csv",
        "aggregate_iqm.png",
        "performance_profiles.png",
        "sample_efficiency.png",
    }
    with open(tmp_path / "out" / "aggregate.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert {row["statistic"] for row in rows} == {"iqm", "profile", "efficiency", "improvement"}
    (improvement,) = [row for row in rows if row["statistic"] == "improvement" and row["label"] == "B"]
    assert improvement["other"] == "A" and float(improvement["estimate"]) == 1.0
    with open(tmp_path / "out" / "normalized_scores.csv", newline="") as file:
        runs = list(csv.DictReader(file))
    assert len(runs) == 6 and float(runs[0]["normalized_score"]) == pytest.approx(0.5)
    before = (tmp_path / "out" / "aggregate.md").read_text()
    assert main(args) == 0 and (tmp_path / "out" / "aggregate.md").read_text() == before  # deterministic


def test_where_the_time_went_sums_each_label_s_runs_per_env(tmp_path: Path) -> None:
    for label, env_id, seed, seconds in [
        ("A", "CartPole-v1", 0, 60.0),
        ("A", "CartPole-v1", 1, 120.0),
        ("A", "Acrobot-v1", 0, 30.0),
        ("B", "CartPole-v1", 0, 600.0),  # no Acrobot-v1 run: left out of the statistics, not of the time
    ]:
        write_run(tmp_path, env_id, label, seed, [score(env_id, 1.0)], wall_time_s=seconds)
    dirs = [tmp_path / "acrobot-v1", tmp_path / "cartpole-v1"]
    result = aggregate(dirs, RANDOM, reps=10)
    assert result.missing == {"B": ("Acrobot-v1",)}
    expected = {"A": {"Acrobot-v1": 30.0, "CartPole-v1": 180.0}, "B": {"CartPole-v1": 600.0}}
    assert result.wall_time_s == expected
    write_aggregate(dirs, write_csv(tmp_path), tmp_path / "out", reps=10)
    report = (tmp_path / "out" / "aggregate.md").read_text()
    table = report.split("## Where the time went")[1]
    assert "| label | Acrobot-v1 | CartPole-v1 | all envs |" in table
    for row in ("| A | 0.5 | 3.0 | 3.5 |", "| B | - | 10.0 | 10.0 |", "| all labels | 0.5 | 13.0 | 13.5 |"):
        assert row in table


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("empty", r"empty: holds no finished run"),
        ("no random score", r"Acrobot-v1 \(in .*\) has no random score"),
        ("no threshold", r"CartPole-v1 \(in .*\) has runs without a success threshold"),
        ("two folders", r"CartPole-v1 / A / seed-0 has runs in both .* and .*other.*: give each run once"),
        ("bad csv", r"line 2: mean_return 'x' is not a number"),
    ],
)
def test_errors_name_the_folder_or_env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, match: str
) -> None:
    dirs = write_scores(tmp_path, {"A": {"CartPole-v1": [0.5], "Acrobot-v1": [0.5]}})
    scores = write_csv(tmp_path)
    if case == "empty":
        (tmp_path / "empty").mkdir()
        dirs.append(tmp_path / "empty")
    elif case == "no random score":
        scores = write_csv(tmp_path, {"CartPole-v1": 20.0})
    elif case == "no threshold":
        write_run(tmp_path, "CartPole-v1", "A", 1, [0.0], with_threshold=False)
    elif case == "two folders":
        write_run(tmp_path, "CartPole-v1", "A", 0, [0.0])
        other = tmp_path / "other"
        write_run(other, "CartPole-v1", "A", 0, [0.0])
        dirs.append(other / "cartpole-v1")
    else:
        scores.write_text("env_id,mean_return\nCartPole-v1,x\n")
    with pytest.raises(ValueError, match=match):
        write_aggregate(dirs, scores, tmp_path / "out", reps=10)
    args = ["aggregate", *map(str, dirs), "--scores", str(scores), "--out", str(tmp_path / "out")]
    assert main(args) == EXIT_INVALID
    assert "rlrelax aggregate: error:" in capsys.readouterr().err


# Runs of three labels on two envs, with returns of at most three decimals (which the report's CSVs keep
# exactly): label -> seed -> (returns, their timesteps), on a budget of 100 for CartPole (the last rollout of
# seed 1 overshooting it) and 1000 for Acrobot. C has no Acrobot run, so it is left out.
STORES: dict[str, tuple[int, dict[str, dict[int, tuple[list[float], list[int]]]]]] = {
    "CartPole-v1": (
        100,
        {
            "A": {
                0: ([100.0, 250.5], [50, 100]),
                1: ([60.0, 300.0, 338.5], [50, 100, 104]),
                2: ([30.0, 475.0], [50, 100]),
            },
            "B": {
                0: ([200.0, 400.0], [50, 100]),
                1: ([150.5, 420.0], [50, 100]),
                2: ([90.0, 129.5], [50, 100]),
            },
            "C": {0: ([100.0, 120.0], [50, 100])},
        },
    ),
    "Acrobot-v1": (
        1000,
        {
            "A": {
                0: ([-500.0, -400.0, -300.0, -150.5], [250, 500, 750, 1000]),
                1: ([-480.0, -250.0, -120.0, -80.0], [250, 500, 750, 1000]),
            },
            "B": {
                0: ([-450.0, -350.0, -200.0, -99.5], [250, 500, 750, 1000]),
                1: ([-500.0, -500.0, -450.0, -400.0], [250, 500, 750, 1000]),
            },
        },
    ),
}


@pytest.fixture(scope="module")
def committed(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], list[Path]]:
    """The run stores of :data:`STORES` (one experiment folder per env) and, for each, a results folder
    holding the ``runs.csv`` and ``evaluations.csv`` that the report wrote of it, as a commit keeps them."""
    root = tmp_path_factory.mktemp("committed")
    for env_id, (budget, labels) in STORES.items():
        for label, seeds in labels.items():
            for seed, (returns, timesteps) in seeds.items():
                write_run(root / "runs", env_id, label, seed, returns, timesteps, budget=budget)
    stores = sorted((root / "runs").iterdir())
    results = []
    for store in stores:
        write_report(store, reps=20)
        folder = root / "results" / store.name
        folder.mkdir(parents=True)
        for name in ("runs.csv", "evaluations.csv"):
            shutil.copyfile(store / name, folder / name)
        results.append(folder)
    return stores, results


def assert_same(store: Any, results: Any, where: str = "") -> None:
    """Exactly equal, through dicts, tuples and arrays (NaN equal to NaN)."""
    if isinstance(store, dict):
        assert store.keys() == results.keys(), where
        for key in store:
            assert_same(store[key], results[key], f"{where}[{key!r}]")
    elif isinstance(store, np.ndarray):
        np.testing.assert_array_equal(store, results, err_msg=where, strict=True)
    elif isinstance(store, tuple | list):
        assert len(store) == len(results), where
        for index, (a, b) in enumerate(zip(store, results, strict=True)):
            assert_same(a, b, f"{where}[{index}]")
    else:
        assert store == results, where


def test_runs_csv_has_the_threshold_and_the_budget(committed: tuple[list[Path], list[Path]]) -> None:
    _, results = committed
    with open(results[1] / "runs.csv", newline="") as file:
        reader = csv.DictReader(file)
        rows = list(reader)
    assert reader.fieldnames is not None and reader.fieldnames[-3:] == [
        "threshold",
        "total_timesteps",
        "path",
    ]
    assert {(row["threshold"], row["total_timesteps"]) for row in rows} == {("475.0", "100")}


def test_results_folders_give_the_statistics_of_the_stores(
    committed: tuple[list[Path], list[Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stores, results = committed
    for store, folder in zip(stores, results, strict=True):
        assert [(r.env_id, r.label, r.seed) for r in read_runs(store)] == [
            (r.env_id, r.label, r.seed) for r in read_runs(folder)
        ]
    expected = aggregate(stores, RANDOM, reps=300, seed=1)
    assert expected.missing == {"C": ("Acrobot-v1",)} and np.isnan(expected.efficiency["A"][0][0])
    # Results folders alone, and mixed with a store: every number the same, only the sources differ.
    for dirs in (results, [stores[0], results[1]]):
        got = aggregate(dirs, RANDOM, reps=300, seed=1)
        assert got.sources == {e: (str(d),) for e, d in zip(got.envs, dirs, strict=True)}
        for field in dataclasses.fields(AggregateResult):
            if field.name != "sources":
                assert_same(getattr(expected, field.name), getattr(got, field.name), field.name)
    # Through the command, the tables of the results folders are those of the stores, byte for byte.
    scores = write_csv(tmp_path)
    write_aggregate(stores, scores, tmp_path / "from-stores", reps=50)
    args = ["aggregate", *map(str, results), "--scores", str(scores), "--out", str(tmp_path / "from-results")]
    assert main([*args, "--reps", "50"]) == 0
    capsys.readouterr()
    for name in ("aggregate.csv", "normalized_scores.csv"):
        assert (tmp_path / "from-results" / name).read_bytes() == (
            tmp_path / "from-stores" / name
        ).read_bytes()


def test_an_env_s_runs_in_pieces_give_the_statistics_of_one_folder(
    committed: tuple[list[Path], list[Path]], tmp_path: Path
) -> None:
    # CartPole's runs split over two results folders, as the pieces of one spec made in two run stores
    # (the first store lost, its committed results kept): seed 0 of every label in one, the rest in the other.
    _, results = committed
    acrobot, cartpole = results
    pieces = [shutil.copytree(cartpole, tmp_path / name) for name in ("seed-0", "the-rest")]
    for piece, keep in zip(pieces, (lambda r: r["seed"] == "0", lambda r: r["seed"] != "0"), strict=True):
        for name in ("runs.csv", "evaluations.csv"):
            rewrite(piece / name, lambda rows, keep=keep: [row for row in rows if keep(row)])
    expected = aggregate(results, RANDOM, reps=300, seed=1)
    got = aggregate([acrobot, *pieces], RANDOM, reps=300, seed=1)
    assert got.sources == {"Acrobot-v1": (str(acrobot),), "CartPole-v1": tuple(map(str, pieces))}
    for field in dataclasses.fields(AggregateResult):
        if field.name != "sources":
            assert_same(getattr(expected, field.name), getattr(got, field.name), field.name)
    report = (write_aggregate([acrobot, *pieces], write_csv(tmp_path), tmp_path / "out", reps=10))[
        "aggregate.md"
    ]
    assert f"| CartPole-v1 | {pieces[0]}, {pieces[1]} | 20.00 | 475 |" in report.read_text()


def test_per_env_outcomes_count_solved_reached_and_kept(tmp_path: Path) -> None:
    # Seed 0 reaches 475 at step 50 and collapses; seed 1 reaches it at 100 and keeps it; seed 2 never does.
    for seed, returns in enumerate(([480.0, 100.0], [100.0, 490.0], [100.0, 200.0])):
        write_run(tmp_path, "CartPole-v1", "A", seed, returns)
    write_run(tmp_path, "CartPole-v1", "B", 0, [475.0, 475.0])
    result = aggregate([tmp_path / "cartpole-v1"], RANDOM, reps=10)
    assert result.outcomes == {
        "A": {"CartPole-v1": Outcome(runs=3, solved=1, reached=2, kept=1, median_reach=100.0)},
        "B": {"CartPole-v1": Outcome(runs=1, solved=1, reached=1, kept=1, median_reach=50.0)},
    }
    write_aggregate([tmp_path / "cartpole-v1"], write_csv(tmp_path), tmp_path / "out", reps=10)
    section = (tmp_path / "out" / "aggregate.md").read_text().split("## Per env")[1].split("##")[0]
    assert "| CartPole-v1 | A | 3 | 1/3 | 2/3 | 1/2 | 100 |" in section
    assert "| CartPole-v1 | B | 1 | 1/1 | 1/1 | 1/1 | 50 |" in section


def rewrite(path: Path, change: Callable[[list[dict[str, str]]], list[dict[str, str]]]) -> None:
    """Rewrite a CSV with its rows changed; the columns are those of the first row left (or the file's)."""
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        rows = change(list(reader))
        columns = list(rows[0]) if rows else list(reader.fieldnames or [])
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def run_is(env_id: str, label: str, seed: int) -> Callable[[dict[str, str]], bool]:
    return lambda row: (row["env_id"], row["agent"], row["seed"]) == (env_id, label, str(seed))


@pytest.mark.parametrize(
    ("case", "match"),
    [
        (
            "older report",
            r"{acrobot}: its runs.csv lacks the columns threshold, total_timesteps \(an older report's\): "
            r"rerun `rlrelax report` on the run store",
        ),
        (
            "run without evaluations",
            r"{acrobot}: the run Acrobot-v1 / A / seed-1 \(runs.csv, line 3\) has no row in evaluations.csv",
        ),
        (
            "no evaluations.csv",
            r"{acrobot}: a results folder holds runs.csv and evaluations.csv, this one has no ",
        ),
        (
            "unlisted evaluations",
            r"{acrobot}: evaluations.csv has rows of runs that runs.csv does not list: ",
        ),
        ("bad cell", r"{acrobot}/runs.csv, line 2: total_timesteps 'x' is not an integer"),
        ("no runs", r"{acrobot}: holds no finished run"),
        ("no threshold", r"CartPole-v1 \(in {cartpole}\) has runs without a success threshold"),
        (
            "two folders",
            r"CartPole-v1 / A / seed-0 has runs in both {cartpole} and {store}: give each run once",
        ),
        (
            "two budgets",
            r"CartPole-v1 / A: its runs have different budgets, 100 \(seed 0, {cartpole}\), "
            r"200 \(seed 1, {cartpole}\): pieces of different specs cannot be pooled",
        ),
    ],
)
def test_results_folder_errors_name_the_folder(
    committed: tuple[list[Path], list[Path]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
    match: str,
) -> None:
    stores, results = committed
    acrobot, cartpole = (shutil.copytree(folder, tmp_path / folder.name) for folder in results)
    dirs = [acrobot, cartpole]
    if case == "older report":
        rewrite(
            acrobot / "runs.csv",
            lambda rows: [
                {k: v for k, v in row.items() if k not in ("threshold", "total_timesteps")} for row in rows
            ],
        )
    elif case == "run without evaluations":
        rewrite(
            acrobot / "evaluations.csv", lambda rows: [r for r in rows if not run_is("Acrobot-v1", "A", 1)(r)]
        )
    elif case == "no evaluations.csv":
        (acrobot / "evaluations.csv").unlink()
    elif case == "unlisted evaluations":
        rewrite(acrobot / "runs.csv", lambda rows: [r for r in rows if not run_is("Acrobot-v1", "B", 1)(r)])
        match += "Acrobot-v1 / B / seed-1$"
    elif case == "bad cell":
        rewrite(acrobot / "runs.csv", lambda rows: [{**row, "total_timesteps": "x"} for row in rows])
    elif case == "no runs":
        for name in ("runs.csv", "evaluations.csv"):
            rewrite(acrobot / name, lambda rows: [])
    elif case == "no threshold":
        rewrite(cartpole / "runs.csv", lambda rows: [{**row, "threshold": ""} for row in rows])
    elif case == "two budgets":
        rewrite(
            cartpole / "runs.csv",
            lambda rows: [
                {**r, "total_timesteps": "200"} if run_is("CartPole-v1", "A", 1)(r) else r for r in rows
            ],
        )
    else:
        dirs.append(stores[1])
    paths = {"acrobot": acrobot, "cartpole": cartpole, "store": stores[1]}
    pattern = match.format(**{name: re.escape(str(path)) for name, path in paths.items()})
    with pytest.raises(ValueError, match=pattern):
        aggregate(dirs, RANDOM, reps=10)
    args = [
        "aggregate",
        *map(str, dirs),
        "--scores",
        str(write_csv(tmp_path)),
        "--out",
        str(tmp_path / "out"),
    ]
    assert main(args) == EXIT_INVALID
    assert "rlrelax aggregate: error:" in capsys.readouterr().err
