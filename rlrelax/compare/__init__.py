"""Comparisons: experiment specs, resumable parallel runs, statistics over seeds, and reports.

The pipeline, usable from Python as from the ``rlrelax`` command::

    from rlrelax.compare import load_spec, run_experiment, write_report

    spec = load_spec("experiments/cartpole.toml")    # checked before anything runs
    result = run_experiment(spec, out="runs", workers=2)
    write_report(result.experiment_dir)               # also done at the end of run_experiment
    write_aggregate(["runs/suite-cartpole", "runs/suite-acrobot"], "experiments/suite/random_scores.csv",
                    "runs/suite")                      # statistics across envs, on normalised scores

Importing this package loads no heavy module: SB3 and torch are imported where a spec is checked or a run
is executed, matplotlib where a report draws its plots, Ray where its backend starts.
"""

from rlrelax.compare.aggregate import AggregateResult, aggregate, read_random_scores, write_aggregate
from rlrelax.compare.envs import make_env
from rlrelax.compare.registry import ALGORITHMS, accepted_kwargs, resolve_algorithm
from rlrelax.compare.report import write_report
from rlrelax.compare.runner import CompareResult, default_workers, run_experiment
from rlrelax.compare.spec import (
    DEFAULT_EVALUATION_EVERY,
    AgentSpec,
    Diagnostics,
    Evaluation,
    RunSpec,
    Spec,
    SpecError,
    check_store,
    load_spec,
    spec_from_dict,
)
from rlrelax.compare.stats import (
    bootstrap_interval,
    iqm,
    iqm_curve,
    median_steps,
    probability_of_improvement,
    steps_to_threshold,
)
from rlrelax.compare.store import (
    DamagedRunError,
    ExperimentLockedError,
    FinishedRun,
    RunResult,
    env_folder,
    env_id_from_folder,
    finished_runs,
)
from rlrelax.compare.summary import AgentSummary, GradientCurves, gradient_curves, summarize
from rlrelax.compare.worker import RunOutcome, execute_run

__all__ = [
    "ALGORITHMS",
    "DEFAULT_EVALUATION_EVERY",
    "AgentSpec",
    "AgentSummary",
    "AggregateResult",
    "CompareResult",
    "DamagedRunError",
    "Diagnostics",
    "Evaluation",
    "ExperimentLockedError",
    "FinishedRun",
    "GradientCurves",
    "RunOutcome",
    "RunResult",
    "RunSpec",
    "Spec",
    "SpecError",
    "accepted_kwargs",
    "aggregate",
    "bootstrap_interval",
    "check_store",
    "default_workers",
    "env_folder",
    "env_id_from_folder",
    "execute_run",
    "finished_runs",
    "gradient_curves",
    "iqm",
    "iqm_curve",
    "load_spec",
    "make_env",
    "median_steps",
    "probability_of_improvement",
    "read_random_scores",
    "resolve_algorithm",
    "run_experiment",
    "spec_from_dict",
    "steps_to_threshold",
    "summarize",
    "write_aggregate",
    "write_report",
]
