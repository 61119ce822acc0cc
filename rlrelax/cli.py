"""The ``rlrelax`` command line: ``compare``, ``report``, ``aggregate`` and ``train``."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from rlrelax import __version__

if TYPE_CHECKING:
    from rlrelax.compare.worker import RunOutcome

#: Exit status when runs failed, or an error stopped the command while it was running them.
EXIT_FAILED = 1
#: Exit status of a spec or argument refused before any run started.
EXIT_INVALID = 2
#: Exit status when another ``rlrelax compare`` is running the same experiment (its lock is held).
EXIT_BUSY = 3
#: Exit status of a command stopped by Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130


def _count(minimum: int) -> Any:
    """An argparse type: an int of at least ``minimum``, so a bad value is refused under its option's name."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {value}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of the ``rlrelax`` command and its subcommands.

    :return: the parser
    """
    parser = argparse.ArgumentParser(
        prog="rlrelax", description="Learning through discrete choices in reinforcement learning."
    )
    parser.add_argument("--version", action="version", version=f"rlrelax {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    compare = commands.add_parser(
        "compare",
        help="run an experiment spec (env x agent x seed), resumably, and write its report",
        description="Run every run of a TOML experiment spec that the store does not hold finished yet, then "
        "write the report. Rerun the same command after an interruption to resume.",
    )
    compare.add_argument("spec", type=Path, help="the experiment spec (TOML)")
    compare.add_argument(
        "--out", type=Path, default=Path("runs"), help="the run store's root (default: runs)"
    )
    compare.add_argument(
        "--workers", type=_count(1), default=None, help="runs at once (default: usable CPU cores)"
    )
    compare.add_argument(
        "--seeds",
        type=_count(1),
        default=None,
        metavar="N",
        help="run only the spec's first N seeds: a reduced run whose runs a later full run keeps",
    )
    compare.add_argument(
        "--agents",
        nargs="+",
        default=None,
        metavar="LABEL",
        help="run only these agents of the spec (by label): a part whose runs a later full run keeps",
    )
    compare.add_argument(
        "--done-in",
        nargs="+",
        type=Path,
        default=None,
        metavar="FOLDER",
        help="do not run the runs that these folders hold finished: committed results folders (runs.csv, "
        "evaluations.csv) or other stores' experiment folders, the earlier pieces of this spec",
    )
    compare.add_argument("--backend", choices=("local", "ray"), default="local", help="where runs execute")
    compare.add_argument(
        "--ray-address", default=None, help="Ray cluster to join (default: start a local Ray)"
    )
    compare.add_argument("--no-progress", action="store_true", help="no progress bar or per-run lines")

    report = commands.add_parser(
        "report",
        help="write report.md, summary.csv, runs.csv and the plots of an experiment folder",
        description="Write the report of the finished runs in an experiment folder (<out>/<experiment>).",
    )
    report.add_argument("directory", type=Path, help="the experiment folder, e.g. runs/cartpole")

    aggregate = commands.add_parser(
        "aggregate",
        help="write the statistics across envs of several experiments, on scores normalised per env",
        description="Normalise the finished runs of several folders (one per env, or an env's runs in "
        "pieces) so that 0 is a uniformly random policy's mean return and 1 the env's threshold, and write "
        "aggregate.md, aggregate.csv, normalized_scores.csv and the figures: the aggregate IQM, performance "
        "profiles, the probability of improvement and sample-efficiency curves (Agarwal et al., 2021). Each "
        "folder is an experiment folder of a run store (<out>/<experiment>) or a committed results folder "
        "holding the runs.csv and evaluations.csv that `rlrelax report` wrote.",
    )
    aggregate.add_argument(
        "directories",
        type=Path,
        nargs="+",
        help="experiment folders (e.g. runs/suite-*) or results folders with runs.csv and evaluations.csv "
        "(e.g. experiments/results/suite/*); an env's runs may be spread over several, each run in one",
    )
    aggregate.add_argument(
        "--scores",
        type=Path,
        required=True,
        help="random scores CSV (env_id, mean_return), e.g. experiments/suite/random_scores.csv",
    )
    aggregate.add_argument("--out", type=Path, required=True, help="the folder to write into")
    aggregate.add_argument(
        "--reps", type=_count(1), default=2_000, help="bootstrap replications (default: 2000)"
    )

    train = commands.add_parser(
        "train",
        help="train and save one agent",
        description="Train one agent on one env (its defaults, overridden by its per-env hyperparameter "
        "file's values for this env, overridden by --kwargs and --n-envs), evaluate the final model, and "
        "save the run folder (config.json, progress.csv, evaluations.npz, model.zip, result.json).",
    )
    train.add_argument("algorithm", help="REINFORCE, SoftQ, GumbelAC, PPO, DQN, A2C or module:Class")
    train.add_argument("env", help="a Gymnasium env id, e.g. CartPole-v1")
    train.add_argument(
        "--steps", type=_count(1), default=100_000, help="training env steps (default: 100000)"
    )
    train.add_argument("--seed", type=_count(0), default=0, help="the training seed (default: 0)")
    train.add_argument(
        "--out", type=Path, default=None, help="the run folder (default: runs/train/ENV/ALGO/seed-N)"
    )
    train.add_argument(
        "--n-envs",
        type=_count(1),
        default=None,
        help="parallel training envs (default: the agent's hyperparameter file's number for the env, else 1)",
    )
    train.add_argument(
        "--kwargs", default="{}", help='constructor keywords as JSON, e.g. \'{"learning_rate": "lin_0.001"}\''
    )
    train.add_argument(
        "--no-hyperparams",
        action="store_true",
        help="ignore the agent's per-env hyperparameter file (its defaults, and --kwargs, only)",
    )
    train.add_argument(
        "--eval-every",
        type=_count(1),
        default=None,
        help="evaluate every N env steps (default: --steps); the final model is always evaluated",
    )
    train.add_argument(
        "--eval-episodes", type=_count(1), default=10, help="deterministic episodes per evaluation"
    )
    return parser


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _compare(args: argparse.Namespace) -> int:
    from rlrelax.compare import DamagedRunError, ExperimentLockedError, SpecError, load_spec, run_experiment

    def fail(kind: str, error: BaseException, status: int) -> int:
        print(f"rlrelax compare: {kind}: {error}", file=sys.stderr)
        return status

    try:
        spec = load_spec(args.spec)
        if args.seeds is not None:
            spec = spec.first_seeds(args.seeds)
        if args.agents is not None:
            spec = spec.only_agents(args.agents)
        if args.done_in is not None:
            whole = len(spec.runs())
            spec = spec.without_runs_in(args.done_in)
            held = ", ".join(map(str, args.done_in))
            print(f"{whole - len(spec.runs())} of the {whole} runs are finished in {held}: not run here")
    except SpecError as error:
        return fail("invalid spec", error, EXIT_INVALID)
    except ValueError as error:  # a folder of --done-in that cannot be read, a damaged run included
        return fail("invalid --done-in folder", error, EXIT_INVALID)
    # SIGTERM (a scheduler's stop) takes the same clean path as Ctrl-C.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        result = run_experiment(
            spec,
            args.out,
            workers=args.workers,
            backend=args.backend,
            ray_address=args.ray_address,
            progress=not args.no_progress,
        )
    except SpecError as error:  # the store holds finished runs of another config
        return fail("invalid spec", error, EXIT_INVALID)
    except DamagedRunError as error:  # found before any run started
        return fail("damaged run store", error, EXIT_INVALID)
    except ExperimentLockedError as error:
        return fail("busy", error, EXIT_BUSY)
    except ImportError as error:  # the Ray backend without Ray
        return fail("missing package", error, EXIT_INVALID)
    except KeyboardInterrupt:
        print(
            "\nrlrelax compare: interrupted; finished runs are kept, rerun the same command to resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except (OSError, RuntimeError, ValueError, ConnectionError) as error:
        return fail("error while running the runs (finished runs are kept)", error, EXIT_FAILED)
    print(
        f"{result.total} runs: {result.skipped} already finished, {len(result.finished)} finished now, "
        f"{len(result.failed)} failed"
    )
    if result.evaluated:
        print(f"{len(result.evaluated)} final evaluations done now")
    report = result.experiment_dir / "report.md"
    if report.exists():
        print(f"report: {report}")
    _print_failures(
        "failed final evaluations (the runs are kept; rerun the command to retry them, or delete a damaged "
        "run's folder to redo the run)",
        result.failed_evaluations,
    )
    _print_failures(
        "failed runs (rerun the command to retry them; a traceback, where one was written, is in the run "
        "folder's error.txt)",
        result.failed,
    )
    return 0 if result.ok else EXIT_FAILED


def _print_failures(heading: str, outcomes: list[RunOutcome]) -> None:
    """Print a heading and each failed outcome's folder and error to stderr, if there are any."""
    if not outcomes:
        return
    print(f"{heading}:", file=sys.stderr)
    for outcome in outcomes:
        print(f"  {outcome.folder}: {outcome.error}", file=sys.stderr)


def _report(args: argparse.Namespace) -> int:
    from rlrelax.compare import write_report

    try:
        written = write_report(args.directory)
    except (ValueError, FileNotFoundError) as error:
        print(f"rlrelax report: error: {error}", file=sys.stderr)
        return EXIT_INVALID
    for path in written.values():
        print(path)
    return 0


def _aggregate(args: argparse.Namespace) -> int:
    from rlrelax.compare.aggregate import write_aggregate

    try:
        written = write_aggregate(args.directories, args.scores, args.out, reps=args.reps)
    except (ValueError, FileNotFoundError) as error:
        print(f"rlrelax aggregate: error: {error}", file=sys.stderr)
        return EXIT_INVALID
    for path in written.values():
        print(path)
    return 0


def _train(args: argparse.Namespace) -> int:
    from rlrelax.compare import SpecError, spec_from_dict
    from rlrelax.compare.worker import execute_run, git_commit, init_worker

    try:
        kwargs = json.loads(args.kwargs)
    except json.JSONDecodeError as error:
        print(f"rlrelax train: error: --kwargs is not JSON: {error}", file=sys.stderr)
        return EXIT_INVALID
    label = args.algorithm.rpartition(":")[2] or args.algorithm
    try:
        spec = spec_from_dict(
            {
                "name": "train",
                "envs": [args.env],
                "seeds": [args.seed],
                "evaluation": {"every": args.eval_every or args.steps, "episodes": args.eval_episodes},
                "agents": [
                    {
                        "label": label,
                        "algorithm": args.algorithm,
                        "total_timesteps": args.steps,
                        "n_envs": args.n_envs,
                        "kwargs": kwargs,
                        "hyperparams": not args.no_hyperparams,
                    }
                ],
            },
            source="rlrelax train",
        )
    except SpecError as error:
        print(f"rlrelax train: error: {error}", file=sys.stderr)
        return EXIT_INVALID
    (run,) = spec.runs()
    from_file = run.agent.hyperparameters.get(args.env)
    if from_file is not None:
        print(
            f"{args.algorithm} on {args.env}: from its hyperparameter file, {json.dumps(from_file.kwargs)}"
            + (f" and n_envs = {from_file.n_envs}" if from_file.n_envs is not None else "")
        )
    folder = args.out if args.out is not None else run.folder(Path("runs"))
    # The run folder is wiped before training: only ever wipe an unfinished run, never a finished one or
    # a folder that holds something else.
    finished = (folder / "result.json").exists()
    if folder.exists() and any(folder.iterdir()) and (finished or not (folder / "config.json").exists()):
        kind = "a finished run" if finished else "files that are not a run"
        print(f"rlrelax train: error: {folder} already holds {kind}; choose another --out", file=sys.stderr)
        return EXIT_INVALID
    init_worker()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # init_worker ignores Ctrl-C for pool workers
    outcome = execute_run(run.to_config(), folder, git_commit())
    if outcome.result is None:
        print(
            f"rlrelax train: the run failed: {outcome.error} (traceback in {folder}/error.txt)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    result = outcome.result
    print(
        f"{args.algorithm} on {args.env}, seed {args.seed}: final return {result.final_return:.1f} after "
        f"{result.final_timestep} steps ({result.wall_time_s:.1f}s); saved to {folder}/model.zip"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rlrelax`` command.

    :param argv: the arguments after the program name; ``sys.argv[1:]`` when ``None``
    :return: the process exit status
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "compare":
        return _compare(args)
    if args.command == "report":
        return _report(args)
    if args.command == "aggregate":
        return _aggregate(args)
    if args.command == "train":
        return _train(args)
    parser.print_help()
    return 0
