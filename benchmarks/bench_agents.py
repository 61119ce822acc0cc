"""Wall time to solve CartPole-v1: rlrelax's agents against SB3's PPO and DQN, in one process.

Every algorithm trains with the same evaluation schedule (every ``eval_every`` env steps, 10
deterministic episodes on a separately seeded CartPole-v1) and stops when an evaluation first reaches
the threshold, or at its step budget. Printed per algorithm: env steps per second of training, the
median training wall time (evaluation time excluded) until the first evaluation >= threshold, the
number of seeds that got there, and the ratios to SB3 PPO and SB3 DQN (> 1 means rlrelax is faster), the
ratio to PPO with a 95% bootstrap interval over seeds (``scipy.stats.bootstrap``, each algorithm's seeds
resampled on their own; a seed that never solved counts as infinitely slow). ``--csv`` also writes each
seed's outcome, one algorithm at a time as it finishes.

The contenders are the agents of ``experiments/cartpole.toml`` (SB3's PPO and DQN with RL Zoo's tuned
CartPole-v1 hyperparameters, rlrelax's agents with their defaults and their hyperparameter files'
CartPole-v1 entries) plus GumbelAC's other estimators
(``straight_through`` trains exactly as ``gumbel_softmax`` under the default mixture critic, so it is not
repeated). Time to solve varies a lot from seed to seed, hence five seeds by default and medians. The
machine and the thread count are printed with the table: the ratios are only comparable on one machine.

Usage::

    python benchmarks/bench_agents.py                 # seeds 0-4
    python benchmarks/bench_agents.py --only SoftQ    # one rlrelax agent (and the SB3 baselines)
    python benchmarks/bench_agents.py --only GumbelAC-exact --set train_freq=8 --no-baselines  # a variant
    python benchmarks/bench_agents.py --only SoftQ --set compile_update=true --baselines PPO  # without DQN
    python benchmarks/bench_agents.py --only SoftQ --n-envs 8 --set train_freq=1 --set gradient_steps=2
    python benchmarks/bench_agents.py --seeds $(seq 0 19) --csv bench.csv   # and every seed's outcome
"""

import argparse
import csv
import os
import statistics
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import bootstrap
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback, StopTrainingOnRewardThreshold
from stable_baselines3.common.env_util import make_vec_env

from rlrelax._platform import configure_torch_for_one_run, cpu_model
from rlrelax.cli import _count
from rlrelax.compare import load_spec
from rlrelax.compare.hyperparams import resolve_kwargs
from rlrelax.compare.registry import resolve_algorithm

ENV_ID = "CartPole-v1"
BASELINES = ("PPO", "DQN")  # labels in experiments/cartpole.toml; run for the ratios unless left out


SPEC = Path(__file__).resolve().parents[1] / "experiments" / "cartpole.toml"
# Added to the comparison's agents: the estimators of experiments/gumbel_ac_estimators.toml.
EXTRA = list(load_spec(SPEC.with_name("gumbel_ac_estimators.toml")).agents)


@dataclass(frozen=True)
class Contender:
    """One algorithm configuration in the benchmark, as the CartPole comparison spec defines it."""

    label: str
    algorithm: type[BaseAlgorithm]
    budget: int
    """Env steps after which a run that never reached the threshold is stopped."""
    n_envs: int = 1
    kwargs: dict[str, Any] = field(default_factory=dict)


def contenders() -> list[Contender]:
    """The agents of experiments/cartpole.toml (SB3's with RL Zoo's hyperparameters) and EXTRA."""
    return [
        Contender(
            agent.label,
            resolve_algorithm(agent.algorithm)[1],
            agent.total_timesteps,
            agent.n_envs_for(ENV_ID),
            resolve_kwargs(agent.kwargs_for(ENV_ID)),
        )
        for agent in [*load_spec(SPEC).agents, *EXTRA]
    ]


class EvaluationClock(BaseCallback):
    """Record the time spent evaluating, and the training time when the threshold is first reached."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        super().__init__()
        self.clock = clock
        self.evaluation_seconds = 0.0
        self.started = 0.0
        self.solved_after: float | None = None

    def _on_training_start(self) -> None:
        self.started = self.clock()

    def _on_step(self) -> bool:
        return True

    def training_seconds(self) -> float:
        return self.clock() - self.started - self.evaluation_seconds


class TimedEvalCallback(EvalCallback):
    """SB3's ``EvalCallback``, with its own run time kept out of the training time."""

    def __init__(self, clock: EvaluationClock, threshold: float, **kwargs: Any) -> None:
        super().__init__(callback_on_new_best=StopTrainingOnRewardThreshold(threshold), **kwargs)
        self.clock = clock

    def _on_step(self) -> bool:
        begun = self.clock.clock()
        continue_training = super()._on_step()
        if self.n_calls % self.eval_freq == 0:
            self.clock.evaluation_seconds += self.clock.clock() - begun
            if not continue_training:
                self.clock.solved_after = self.clock.training_seconds()
        return continue_training


@dataclass
class Outcome:
    steps_per_second: float
    seconds_to_solve: float | None
    steps_to_solve: int | None


def seconds_or_inf(outcome: Outcome) -> float:
    """The seconds to solve, infinite for a seed that never solved, so that medians stay honest."""
    return outcome.seconds_to_solve if outcome.seconds_to_solve is not None else float("inf")


def speed_ratio_interval(baseline: list[Outcome], outcomes: list[Outcome]) -> tuple[float, float]:
    """A 95% percentile bootstrap interval of ``median(baseline seconds) / median(seconds)`` over seeds.

    :param baseline: the baseline's outcome on each seed
    :param outcomes: the algorithm's outcome on each seed
    :return: the interval's low and high ends
    """

    def ratio(base: np.ndarray, other: np.ndarray, axis: int) -> np.ndarray:
        with np.errstate(invalid="ignore"):  # inf / inf, where both medians never solved: nan
            return np.median(base, axis=axis) / np.median(other, axis=axis)

    samples = ([seconds_or_inf(o) for o in baseline], [seconds_or_inf(o) for o in outcomes])
    interval = bootstrap(
        samples, ratio, n_resamples=10_000, method="percentile", random_state=0
    ).confidence_interval
    return float(interval.low), float(interval.high)


def append_outcomes(path: Path, label: str, seeds: list[int], outcomes: list[Outcome]) -> None:
    """Append one algorithm's outcomes, a row per seed, to the CSV at ``path`` (a header first if new)."""
    is_new = not path.exists()
    with open(path, "a", newline="") as file:
        writer = csv.writer(file)
        if is_new:
            writer.writerow(["algorithm", "seed", "steps_per_second", "steps_to_solve", "seconds_to_solve"])
        for seed, outcome in zip(seeds, outcomes, strict=True):
            writer.writerow(
                [
                    label,
                    seed,
                    f"{outcome.steps_per_second:.1f}",
                    "" if outcome.steps_to_solve is None else outcome.steps_to_solve,
                    "" if outcome.seconds_to_solve is None else f"{outcome.seconds_to_solve:.3f}",
                ]
            )


def run(contender: Contender, seed: int, eval_every: int, threshold: float) -> Outcome:
    env = make_vec_env(ENV_ID, n_envs=contender.n_envs, seed=seed)
    model = contender.algorithm("MlpPolicy", env, seed=seed, **contender.kwargs)
    clock = EvaluationClock()
    evaluation = TimedEvalCallback(
        clock,
        threshold,
        eval_env=make_vec_env(ENV_ID, seed=10_000 + seed),
        eval_freq=max(eval_every // contender.n_envs, 1),
        n_eval_episodes=10,
        deterministic=True,
        verbose=0,
    )
    model.learn(contender.budget, callback=[clock, evaluation])
    solved = clock.solved_after is not None
    return Outcome(
        model.num_timesteps / clock.training_seconds(),
        clock.solved_after,
        model.num_timesteps if solved else None,
    )


def parse_overrides(assignments: list[str]) -> dict[str, Any]:
    """Parse ``--set KEY=VALUE`` arguments, each VALUE a TOML value in a spec's syntax (``"lin_0.004"`` is a
    linear schedule: :mod:`rlrelax.compare.hyperparams`).

    :param assignments: the ``KEY=VALUE`` strings
    :return: the keyword arguments
    """
    overrides = {}
    for assignment in assignments:
        key, equals, value = assignment.partition("=")
        if not equals or not key.isidentifier():
            raise SystemExit(f"--set takes KEY=VALUE, got {assignment!r}")
        try:
            overrides[key] = tomllib.loads(f"value = {value}")["value"]
        except tomllib.TOMLDecodeError as error:
            raise SystemExit(f"--set {assignment!r}: {value!r} is not a TOML value ({error})") from None
    try:
        return resolve_kwargs(overrides)
    except (TypeError, ValueError) as error:
        raise SystemExit(f"--set: {error}") from None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--eval-every", type=int, default=2_000, help="env steps between evaluations")
    parser.add_argument("--threshold", type=float, default=475.0)
    parser.add_argument("--only", nargs="*", default=None, help="labels to run (and the SB3 baselines)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a keyword argument of the rlrelax agents run (VALUE in TOML, in a spec's syntax: "
        "8, 0.99, 'auto', '\"lin_0.004\"')",
    )
    parser.add_argument(
        "--n-envs",
        type=_count(1),
        default=None,
        help="training envs of the rlrelax agents run (with --set train_freq, gradient_steps to keep the "
        "gradient steps per env step)",
    )
    parser.add_argument(
        "--baselines",
        nargs="*",
        choices=BASELINES,
        default=list(BASELINES),
        help="SB3 baselines to run (default: both; a ratio to one left out prints as nan)",
    )
    parser.add_argument(
        "--no-baselines", action="store_true", help="skip SB3's PPO and DQN (--baselines with none)"
    )
    parser.add_argument("--csv", type=Path, default=None, help="also write each seed's outcome to this CSV")
    args = parser.parse_args()
    if args.csv is not None and args.csv.exists():
        raise SystemExit(f"--csv {str(args.csv)!r} exists: name a new file")
    baselines = [] if args.no_baselines else args.baselines
    overrides = parse_overrides(args.set)
    configure_torch_for_one_run()  # as the comparison's runs: one thread, subnormals flushed

    results: dict[str, list[Outcome]] = {}
    for contender in contenders():
        is_baseline = contender.label in BASELINES
        if (is_baseline and contender.label not in baselines) or (
            not is_baseline and args.only and contender.label not in args.only
        ):
            continue
        if overrides and not is_baseline:
            contender = replace(contender, kwargs={**contender.kwargs, **overrides})
        if args.n_envs is not None and not is_baseline:
            contender = replace(contender, n_envs=args.n_envs)
        results[contender.label] = [
            run(contender, seed, args.eval_every, args.threshold) for seed in args.seeds
        ]
        if args.csv is not None:
            append_outcomes(args.csv, contender.label, args.seeds, results[contender.label])
        print(f"finished {contender.label}", flush=True)

    def median_solve(label: str) -> float:
        return statistics.median(seconds_or_inf(outcome) for outcome in results[label])

    ppo, dqn = (median_solve(label) if label in baselines else float("nan") for label in BASELINES)
    print(
        f"\nCartPole-v1, seeds {args.seeds}, evaluation every {args.eval_every} steps, "
        f"threshold {args.threshold}"
        + (f", rlrelax agents with {overrides}" if overrides else "")
        + (f", {args.n_envs} training envs" if args.n_envs is not None else "")
    )
    print(
        f"{cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread, subnormal floats flushed to zero"
    )
    print(
        f"{'algorithm':<28}{'steps/s':>9}{'solved':>8}{'median steps':>14}{'median s':>10}"
        f"{'vs PPO':>8}{'vs DQN':>8}{'vs PPO, 95% CI':>18}"
    )
    for label, outcomes in results.items():
        speed = statistics.median(outcome.steps_per_second for outcome in outcomes)
        solved = sum(outcome.seconds_to_solve is not None for outcome in outcomes)
        seconds = median_solve(label)
        steps = statistics.median(
            outcome.steps_to_solve if outcome.steps_to_solve is not None else float("inf")
            for outcome in outcomes
        )
        interval = (
            ""
            if "PPO" not in baselines or len(args.seeds) < 2
            else "{:.2f}-{:.2f}".format(*speed_ratio_interval(results["PPO"], outcomes))
        )
        print(
            f"{label:<28}{speed:>9.0f}{f'{solved}/{len(outcomes)}':>8}{steps:>14,.0f}{seconds:>10.1f}"
            f"{ppo / seconds:>8.2f}{dqn / seconds:>8.2f}{interval:>18}"
        )


if __name__ == "__main__":
    main()
