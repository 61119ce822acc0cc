"""How much a finished run's final evaluation could have varied: its final model on many more episodes.

    python experiments/tuning/evaluation_spread.py runs/suite-acrobot/Acrobot-v1/*/seed-*
    python experiments/tuning/evaluation_spread.py RUN_FOLDER... --episodes 500 --csv spread.csv
    python experiments/tuning/evaluation_spread.py RUN_FOLDER... --sampled   # the policy's own actions

A comparison's final return is the mean of one evaluation of a few deterministic episodes (10 in the suite),
so a model whose mean return is above the threshold can end below it, and one below it can end above. For
each run folder of a run store, the script loads the final model (``model.zip``, with the run's
``vecnormalize.pkl`` statistics when it has them) and plays ``--episodes`` deterministic episodes through
SB3's ``evaluate_policy`` on the run's env, seeded with ``--seed``. It prints their mean, the share of
episodes below the run's threshold, and how many consecutive blocks of as many episodes as the run's own
evaluations average below it: the chance that one evaluation of the same model misses. ``--sampled`` plays
the policy's sampled actions instead of its most likely ones (torch seeded with ``--seed``), to tell a bad
policy from a bad greedy one. Used for the diagnoses in ``experiments/tuning/reinforce.md``, "Acrobot-v1"
and "LunarLander-v3".
"""

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import torch

from rlrelax.compare.store import CONFIG_FILE, MODEL_FILE
from rlrelax.compare.worker import final_model_returns

COLUMNS = ("env_id", "agent", "seed", "episodes", "mean", "std", "share_below", "blocks", "blocks_below")


def spread(folder: Path, episodes: int, seed: int, *, sampled: bool = False) -> dict[str, object]:
    """Evaluate a run's final model on ``episodes`` episodes, one at a time.

    :param folder: a finished run's folder
    :param episodes: the number of episodes
    :param seed: the evaluation env's seed
    :param sampled: sample the policy's actions rather than take its most likely ones
    :return: the row of :data:`COLUMNS`
    """
    run = json.loads((folder / CONFIG_FILE).read_text())["run"]
    threshold, block = run["evaluation"]["threshold"], run["evaluation"]["episodes"]
    values, _ = final_model_returns(folder, episodes, seed=seed, n_envs=1, deterministic=not sampled)
    blocks = values[: len(values) // block * block].reshape(-1, block).mean(axis=1)
    return {
        "env_id": run["env_id"],
        "agent": run["label"],
        "seed": run["seed"],
        "episodes": len(values),
        "mean": round(float(values.mean()), 2),
        "std": round(float(values.std()), 2),
        "share_below": round(float(np.mean(values < threshold)), 4),
        "blocks": len(blocks),
        "blocks_below": int(np.sum(blocks < threshold)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", type=Path, help="finished run folders of a run store")
    parser.add_argument("--episodes", type=int, default=500, help="episodes per model (default: 500)")
    parser.add_argument("--seed", type=int, default=5, help="the evaluation env's seed (default: 5)")
    parser.add_argument("--csv", type=Path, help="also write the rows to this CSV file")
    parser.add_argument("--sampled", action="store_true", help="sample the policy's actions (torch seeded)")
    args = parser.parse_args()
    if args.episodes < 1:
        parser.error(f"--episodes must be at least 1, got {args.episodes}")
    unfinished = [str(folder) for folder in args.runs if not (folder / MODEL_FILE).exists()]
    if unfinished:
        parser.error(f"not finished run folders (no {MODEL_FILE}): {', '.join(unfinished)}")
    rows = []
    torch.manual_seed(args.seed)
    for folder in args.runs:
        row = spread(folder, args.episodes, args.seed, sampled=args.sampled)
        rows.append(row)
        print(", ".join(f"{key} {row[key]}" for key in COLUMNS), flush=True)
    if args.csv is not None:
        with open(args.csv, "w", newline="") as file:
            writer = csv.DictWriter(file, COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
