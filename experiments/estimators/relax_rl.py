"""Episodes to solve CartPole with and without RELAX's control variate, as Grathwohl et al. (2018) count them.

    rlrelax compare experiments/relax_rl.toml --out runs
    python experiments/estimators/relax_rl.py runs/relax_rl --out experiments/results/relax_rl

Grathwohl, Choi, Wu, Roeder and Duvenaud (2018), "Backpropagation through the Void", table 2, count the
training episodes until the mean return of the last 100 training episodes reaches 195 on CartPole-v0 (whose
episodes end at 200 steps): 1152 ± 90 for their advantage actor-critic, 472 ± 114 with RELAX. The runs
here are on CartPole-v1 (episodes end at 500 steps), so both criteria are read off each run's training log
(SB3's ``rollout/ep_rew_mean`` is that 100-episode mean, ``time/episodes`` the episodes so far): the paper's
195, and 475, CartPole-v1's own threshold; the deterministic evaluations' steps to 475 are in the
comparison's report. Writes ``episodes_to_solve.csv`` (one row per run) and ``episodes_to_solve.md``
(mean ± standard error and median per agent, next to the paper's figures, and the probability that a RELAX
run needs fewer episodes than an actor-critic run, with its bootstrap interval) into ``--out``.
"""

import argparse
import csv
import math
from pathlib import Path

import numpy as np

from rlrelax.compare import finished_runs, probability_of_improvement

#: Table 2 of Grathwohl et al. (2018), CartPole: episodes to solve, by the paper's label for each set-up.
PAPER = {"A2C": "1152 ± 90", "RELAX": "472 ± 114"}
#: Which label of experiments/relax_rl.toml stands for which of the paper's set-ups.
PAPER_LABEL = {"REINFORCE-value": "A2C", "REINFORCE-relax": "RELAX"}
CRITERIA = (195.0, 475.0)


def first_reaching(progress: Path, criterion: float) -> tuple[int | None, int | None]:
    """The training episodes and env steps at the first log row whose 100-episode mean reaches ``criterion``.

    :param progress: a run's ``progress.csv``, written by SB3's logger after every update
    :param criterion: the mean training return to reach
    :return: ``(episodes, env steps)``, or ``(None, None)`` if the run never reached it
    """
    with open(progress, newline="") as file:
        for row in csv.DictReader(file):
            mean_return = row.get("rollout/ep_rew_mean", "")
            if mean_return and float(mean_return) >= criterion:
                return int(float(row["time/episodes"])), int(float(row["time/total_timesteps"]))
    return None, None


def summarise(values: list[int | None]) -> str:
    """``mean ± standard error (median), n/N reached``, over the runs that reached the criterion."""
    reached = np.array([v for v in values if v is not None], dtype=np.float64)
    if reached.size == 0:
        return f"never (0/{len(values)})"
    standard_error = reached.std(ddof=1) / math.sqrt(reached.size) if reached.size > 1 else math.nan
    return (
        f"{reached.mean():,.0f} ± {standard_error:,.0f} (median {np.median(reached):,.0f}), "
        f"{reached.size}/{len(values)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", type=Path, help="the run store's experiment folder, e.g. runs/relax_rl")
    parser.add_argument("--out", type=Path, default=Path("."), help="where the CSV and the table go")
    args = parser.parse_args()
    runs = finished_runs(args.experiment)
    if not runs:
        raise SystemExit(f"no finished run under {args.experiment}")
    rows = []
    for run in runs:
        row: dict[str, object] = {"env_id": run.env_id, "label": run.label, "seed": run.seed}
        for criterion in CRITERIA:
            episodes, steps = first_reaching(args.experiment / run.path / "progress.csv", criterion)
            row[f"episodes_to_{criterion:g}"] = "" if episodes is None else episodes
            row[f"steps_to_{criterion:g}"] = "" if steps is None else steps
        rows.append(row)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "episodes_to_solve.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    lines = [
        "| agent | the paper (CartPole-v0, 195) | episodes to a 100-episode mean of 195 | "
        "of 475 | env steps to 195 | to 475 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label in dict.fromkeys(str(row["label"]) for row in rows):
        mine = [row for row in rows if row["label"] == label]

        def column(name: str, rows_of_label: list[dict[str, object]] = mine) -> list[int | None]:
            return [None if row[name] == "" else int(str(row[name])) for row in rows_of_label]

        paper = PAPER.get(PAPER_LABEL.get(label, ""), "")
        cells = [summarise(column(f"{kind}_to_{c:g}")) for kind in ("episodes", "steps") for c in CRITERIA]
        lines.append(f"| {label} | {PAPER_LABEL.get(label, '')} {paper} | " + " | ".join(cells) + " |")
    relax = [row for row in rows if PAPER_LABEL.get(str(row["label"])) == "RELAX"]
    critic = [row for row in rows if PAPER_LABEL.get(str(row["label"])) == "A2C"]
    if relax and critic:
        lines.append("")
        for criterion in CRITERIA:
            name = f"episodes_to_{criterion:g}"
            # Fewer is better; a run that never reached the criterion counts as needing infinitely many.
            needed = [
                [math.inf if row[name] == "" else float(str(row[name])) for row in group]
                for group in (relax, critic)
            ]
            chance, low, high = probability_of_improvement(-np.array(needed[0]), -np.array(needed[1]))
            lines.append(
                f"P(a RELAX run needs fewer episodes than an actor-critic run to a mean of {criterion:g}): "
                f"{chance:.2f} [{low:.2f}, {high:.2f}] (95% bootstrap interval; 0.5: no difference)"
            )
    table = "\n".join(lines) + "\n"
    (args.out / "episodes_to_solve.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
