"""Where the training time of the off-policy agents goes, on CartPole-v1: per env step and per gradient step.

Each agent trains with its defaults for ``--steps`` env steps after ``--warmup`` untimed ones (so that
learning has started and the policy plays long episodes). During the timed part, the methods that SB3's
``OffPolicyAlgorithm.learn`` calls are wrapped with a stopwatch, so the numbers come from a real training
run, not from isolated micro-benchmarks:

- per env step (``collect_rollouts``): acting (``_sample_action``: the policy's forward pass and the
  sampling, through SB3's ``predict``), the env's ``step``, the replay buffer's ``add``, the agent's
  ``_on_step`` (SoftQ's per-env-step target update), and SB3's rollout bookkeeping (the rest: callbacks,
  episode statistics, ``_store_transition``'s copies);
- per gradient step (``train``): the replay buffer's ``sample``, the critic target, the actor loss's
  forward pass (GumbelAC), every ``backward``, every optimiser ``step`` (gradient clipping included in the
  rest), the target network update, and the rest (the critic's forward pass and loss, logging);
- per evaluation: one ``evaluate_policy`` of 10 deterministic episodes on 10 envs, as the comparison runs it;
- last, the matrix products' share of a gradient step (``torch.profiler``, over 500 more gradient steps): the
  arithmetic that no cut in per-call overhead removes, so a floor under the time to solve.

Timings are wall time on one thread with subnormal floats flushed (``configure_torch_for_one_run``, as the
comparison's workers run); the stopwatch itself costs about a microsecond per wrapped call. Run it on a quiet
machine::

    python benchmarks/profile_agents.py
"""

import argparse
import contextlib
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import torch
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

import rlrelax.agents.gumbel_ac.gumbel_ac as gumbel_ac_module
import rlrelax.agents.softq.softq as softq_module
from rlrelax._platform import configure_torch_for_one_run, cpu_model
from rlrelax.agents import GumbelAC, SoftQ

ENV_ID = "CartPole-v1"
EVALUATION_EPISODES = 10
MATRIX_PRODUCTS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"}


class Stopwatch:
    """Inclusive wall time and call count of the callables it wraps, by name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        """
        :param name: the row the calls' time is added to
        :param function: the callable to time
        :return: a callable that behaves as ``function`` and records its time
        """

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - start
                self.calls[name] += 1

        return timed


@contextlib.contextmanager
def patched(owner: object, attribute: str, replacement: Any) -> Iterator[None]:
    """Replace ``owner.attribute`` for the duration of the block."""
    original = getattr(owner, attribute)
    setattr(owner, attribute, replacement)
    try:
        yield
    finally:
        setattr(owner, attribute, original)


def profile(model: OffPolicyAlgorithm, steps: int) -> Stopwatch:
    """Train ``model`` for ``steps`` more env steps with the stopwatch on its parts.

    :param model: an off-policy agent that has already trained past ``learning_starts``
    :param steps: env steps to time
    :return: the stopwatch
    """
    watch = Stopwatch()
    assert model.env is not None and model.replay_buffer is not None
    optimizers = (
        [model.policy.optimizer]
        if isinstance(model, SoftQ)
        else [model.actor.optimizer, model.critic.optimizer]
    )
    with contextlib.ExitStack() as stack:
        for name, owner, attribute in [
            ("collect_rollouts", model, "collect_rollouts"),
            ("acting", model, "_sample_action"),
            ("env step", model.env, "step"),
            ("replay buffer add", model.replay_buffer, "add"),
            ("_on_step", model, "_on_step"),
            ("train", model, "train"),
            ("replay buffer sample", model.replay_buffer, "sample"),
            *[("optimiser step", optimizer, "step") for optimizer in optimizers],
        ]:
            stack.enter_context(patched(owner, attribute, watch.wrap(name, getattr(owner, attribute))))
        # Module-level functions, patched where the agents look them up.
        stack.enter_context(
            patched(
                softq_module,
                "soft_bellman_target",
                watch.wrap("critic target", softq_module.soft_bellman_target),
            )
        )
        stack.enter_context(
            patched(
                gumbel_ac_module,
                "soft_bellman_target",
                watch.wrap("critic target", gumbel_ac_module.soft_bellman_target),
            )
        )
        if isinstance(model, GumbelAC):
            for name, attribute in [
                ("target update", "_update_target_critic"),
                ("actor loss forward", "_actor_loss"),
            ]:
                stack.enter_context(patched(model, attribute, watch.wrap(name, getattr(model, attribute))))
        stack.enter_context(patched(torch.Tensor, "backward", watch.wrap("backward", torch.Tensor.backward)))
        model.learn(steps, reset_num_timesteps=False)
    return watch


def matrix_product_seconds(model: OffPolicyAlgorithm, gradient_steps: int) -> float:
    """The CPU time of the matrix products in one gradient step: the arithmetic no overhead cut removes.

    Measured with ``torch.profiler`` (the self time of the matrix-product operators, whose kernels run at
    about the core's peak rate at these sizes) over ``gradient_steps`` more gradient steps.

    :param model: an off-policy agent that has already trained past ``learning_starts``
    :param gradient_steps: gradient steps to profile
    :return: seconds per gradient step
    """
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        model.train(gradient_steps, model.batch_size)
    micros = sum(
        event.self_cpu_time_total for event in profiler.key_averages() if event.key in MATRIX_PRODUCTS
    )
    return micros * 1e-6 / gradient_steps


def report(
    label: str,
    model: OffPolicyAlgorithm,
    watch: Stopwatch,
    steps: int,
    evaluation_seconds: float,
    matrix_seconds: float,
) -> None:
    """Print the breakdown: microseconds per env step and per gradient step, and shares of the total."""
    seconds, calls = watch.seconds, watch.calls
    total = seconds["collect_rollouts"] + seconds["train"]
    gradient_steps = calls["replay buffer sample"]
    per_step = ["acting", "env step", "replay buffer add", "_on_step"]
    per_gradient_step = [
        "replay buffer sample",
        "critic target",
        "actor loss forward",
        "backward",
        "optimiser step",
        "target update",
    ]
    rows = [(name, seconds[name], steps) for name in per_step]
    rows.append(
        ("rollout bookkeeping (rest)", seconds["collect_rollouts"] - sum(seconds[n] for n in per_step), steps)
    )
    rows += [(name, seconds[name], gradient_steps) for name in per_gradient_step if calls[name]]
    rows.append(
        (
            "critic forward, loss, clipping, logging (rest)",
            seconds["train"] - sum(seconds[n] for n in per_gradient_step),
            gradient_steps,
        )
    )
    print(
        f"\n{label}: {steps / total:,.0f} env steps/s of training, "
        f"{gradient_steps / steps:.2f} gradient steps per env step"
    )
    print(f"{'part':<50}{'per call (µs)':>16}{'per env step (µs)':>20}{'share':>8}")
    for name, spent, count in rows:
        print(
            f"{name:<50}{spent / max(count, 1) * 1e6:>16.1f}{spent / steps * 1e6:>20.1f}{spent / total:>8.1%}"
        )
    print(f"{'evaluation (10 episodes, 10 envs)':<50}{evaluation_seconds * 1e6:>16.0f}")
    gradient_step_seconds = seconds["train"] / max(gradient_steps, 1)
    print(
        f"matrix products: {matrix_seconds * 1e6:.0f} µs of a gradient step's "
        f"{gradient_step_seconds * 1e6:.0f} ({matrix_seconds / gradient_step_seconds:.0%})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=10_000, help="timed env steps")
    parser.add_argument("--warmup", type=int, default=10_000, help="untimed env steps first")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    configure_torch_for_one_run()
    threads = torch.get_num_threads()
    print(f"{cpu_model()}, torch {torch.__version__}, {threads} thread, subnormal floats flushed")

    agents: list[tuple[str, type[OffPolicyAlgorithm], dict[str, Any]]] = [
        ("SoftQ", SoftQ, {}),
        ("GumbelAC-gumbel_softmax", GumbelAC, {"estimator": "gumbel_softmax"}),
        ("GumbelAC-exact", GumbelAC, {"estimator": "exact"}),
        ("GumbelAC-gumbel_rao", GumbelAC, {"estimator": "gumbel_rao"}),
        ("GumbelAC-score_function", GumbelAC, {"estimator": "score_function"}),
    ]
    for label, algorithm, kwargs in agents:
        model = algorithm("MlpPolicy", make_vec_env(ENV_ID, seed=args.seed), seed=args.seed, **kwargs)
        model.learn(args.warmup)
        watch = profile(model, args.steps)
        eval_env = make_vec_env(ENV_ID, n_envs=EVALUATION_EPISODES, seed=args.seed + 1000)
        start = time.perf_counter()
        evaluate_policy(model, eval_env, n_eval_episodes=EVALUATION_EPISODES, deterministic=True)
        evaluation_seconds = time.perf_counter() - start
        report(label, model, watch, args.steps, evaluation_seconds, matrix_product_seconds(model, 500))


if __name__ == "__main__":
    main()
