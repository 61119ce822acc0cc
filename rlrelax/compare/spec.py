"""Experiment specs: a TOML file naming the envs, the seeds, the evaluation protocol and the agents.

A spec is checked completely before any run starts; every problem is a :class:`SpecError` naming the file,
the key and the reason. See :func:`load_spec` for the format.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlrelax._validation import check_int
from rlrelax.compare.envs import make_env
from rlrelax.compare.hyperparams import EnvHyperparameters, check_value, hyperparameter_file, resolve_kwargs
from rlrelax.compare.registry import RESERVED_KWARGS, accepted_kwargs, import_object, resolve_algorithm
from rlrelax.compare.store import run_dir, run_status

__all__ = [
    "NORMALIZE_KEYS",
    "AgentSpec",
    "Diagnostics",
    "Evaluation",
    "RunSpec",
    "Spec",
    "SpecError",
    "check_store",
    "load_spec",
    "spec_from_dict",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_TOP_KEYS = {"name", "envs", "seeds", "evaluation", "logging", "diagnostics", "agents"}
_EVAL_KEYS = {"every", "episodes", "final_episodes", "seed_offset", "threshold"}
_DIAGNOSTICS_KEYS = {"every", "draws", "batch_size"}
_AGENT_KEYS = {
    "label",
    "algorithm",
    "total_timesteps",
    "n_envs",
    "policy",
    "kwargs",
    "normalize",
    "hyperparams",
}

#: Env steps between evaluations when a spec does not say: SB3's ``EvalCallback`` default ``eval_freq``.
DEFAULT_EVALUATION_EVERY = 10_000
#: Draws of the gradient estimate per measurement, and the batch they are drawn on, when a spec's
#: ``[diagnostics]`` does not say.
DEFAULT_DIAGNOSTICS_DRAWS = 16
DEFAULT_DIAGNOSTICS_BATCH_SIZE = 256
#: The fewest draws per measurement: the jackknife standard errors leave one draw out of at least two.
MIN_DIAGNOSTICS_DRAWS = 3
#: The keywords of SB3's ``VecNormalize`` that an agent's ``normalize`` table may set, each with the kind of
#: value it takes. ``venv`` and ``training`` are the runner's: the training env learns its statistics, the
#: eval env only uses them.
NORMALIZE_KEYS = {
    "norm_obs": "bool",
    "norm_reward": "bool",
    "clip_obs": "positive",
    "clip_reward": "positive",
    "gamma": "discount",
    "epsilon": "positive",
    "norm_obs_keys": "names",
}


class SpecError(ValueError):
    """A spec that cannot run, with the file, the key and the reason.

    :param source: the spec file (or ``"<dict>"``)
    :param key: the dotted key at fault, e.g. ``agents[2].kwargs.gamma``
    :param reason: what is wrong and what to do
    """

    def __init__(self, source: str, key: str, reason: str) -> None:
        super().__init__(f"{source}: {key}: {reason}")
        self.source = source
        self.key = key
        self.reason = reason


@dataclass(frozen=True)
class Evaluation:
    """The evaluation protocol shared by every run of a spec.

    :param every: evaluate every this many env steps (summed over a run's parallel envs); by default
        :data:`DEFAULT_EVALUATION_EVERY`
    :param episodes: deterministic episodes per evaluation
    :param seed_offset: the evaluation env of the run with seed ``s`` is seeded with ``s + seed_offset``; the
        episodes run in up to 16 copies side by side, copy ``i`` seeded with ``s + seed_offset + i``
    :param thresholds: the success threshold of each env id (``None`` for an env without one: the report then
        leaves out what needs it)
    :param final_episodes: deterministic episodes of a final evaluation of each run's final model, after
        training, on the periodic evaluations' env, whose mean is then the run's final return; ``None``: the
        last periodic evaluation's mean is. Not part of a run's config: a finished run gets (or replaces) its
        final evaluation without being trained again.
    """

    every: int
    episodes: int
    seed_offset: int
    thresholds: Mapping[str, float | None]
    final_episodes: int | None = None


@dataclass(frozen=True)
class Diagnostics:
    """The gradient diagnostics a spec asks for, measured by :class:`rlrelax.callbacks.GradientStatsCallback`.

    :param every: env steps between measurements: one at the first rollout end at or after each multiple
    :param draws: draws of the actor's gradient estimate per measurement, on one fixed batch
    :param batch_size: the fixed batch: replay observations (GumbelAC, SoftQ) or rollout steps (PPO, A2C);
        REINFORCE resamples the last rollout's episodes instead
    """

    every: int
    draws: int
    batch_size: int

    def to_config(self) -> dict[str, int]:
        """Return the ``"diagnostics"`` part of a run's config.

        :return: a JSON-serialisable dict
        """
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class AgentSpec:
    """One agent of a spec.

    :param label: its unique name in reports and in the store
    :param algorithm: the algorithm as written in the spec (a short name or ``"module:Class"``)
    :param algorithm_path: the import string it resolved to
    :param total_timesteps: the training budget in env steps
    :param n_envs: the number of parallel training envs (a ``DummyVecEnv``), or ``None`` (the default) for the
        hyperparameter file's number for the env, else 1 (:meth:`n_envs_for`)
    :param policy: the policy name or import string passed as the first constructor argument
    :param kwargs: the constructor's keyword arguments as written (see :mod:`rlrelax.compare.hyperparams`)
    :param has_actor_gradient: whether gradient diagnostics can measure it
        (:func:`rlrelax.callbacks.measures_actor_gradient`; the spec check reads it off the algorithm)
    :param normalize: ``VecNormalize``'s keyword arguments when the training env is wrapped in it (RL Zoo's
        ``normalize``; ``{}`` for its defaults), or ``None`` (the default) for no normalisation
    :param hyperparameters: the algorithm's per-env hyperparameter file (:func:`rlrelax.compare.hyperparams.
        hyperparameter_file`): each listed env's keyword arguments, applied beneath ``kwargs``, and number of
        envs, applied where ``n_envs`` is not given; ``{}`` when the spec turns the file off
        (``hyperparams = false``) or the algorithm has none
    """

    label: str
    algorithm: str
    algorithm_path: str
    total_timesteps: int
    n_envs: int | None = None
    policy: str = "MlpPolicy"
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    has_actor_gradient: bool = True
    normalize: Mapping[str, Any] | None = None
    hyperparameters: Mapping[str, EnvHyperparameters] = field(default_factory=dict)

    def kwargs_for(self, env_id: str) -> dict[str, Any]:
        """The keyword arguments of this agent's runs on ``env_id``: the file's for that env, then ``kwargs``.

        :param env_id: the env id
        :return: the merged keyword arguments, as written (unresolved)
        """
        entry = self.hyperparameters.get(env_id)
        return {**(entry.kwargs if entry is not None else {}), **self.kwargs}

    def n_envs_for(self, env_id: str) -> int:
        """The training envs of this agent's runs on ``env_id``: ``n_envs``, else the file's, else 1.

        :param env_id: the env id
        :return: a positive number of envs
        """
        if self.n_envs is not None:
            return self.n_envs
        entry = self.hyperparameters.get(env_id)
        return entry.n_envs if entry is not None and entry.n_envs is not None else 1


@dataclass(frozen=True)
class RunSpec:
    """One run: an env, an agent and a seed, with everything needed to execute it in another process.

    :param experiment: the experiment name
    :param env_id: the env id
    :param agent: the agent
    :param seed: the training seed
    :param evaluation: the evaluation protocol
    :param tensorboard: whether to write TensorBoard events next to ``progress.csv``
    :param diagnostics: the gradient diagnostics to measure, or ``None`` for none
    """

    experiment: str
    env_id: str
    agent: AgentSpec
    seed: int
    evaluation: Evaluation
    tensorboard: bool = False
    diagnostics: Diagnostics | None = None

    def to_config(self) -> dict[str, Any]:
        """Return the run's resolved config: the ``"run"`` part of ``config.json``, compared on resume.

        :return: a JSON-serialisable dict; with diagnostics its ``"diagnostics"`` is their settings, or
            ``None`` for an agent without an actor gradient (without diagnostics the key is left out, so the
            configs of runs that asked for none read as they always did); ``"normalize"`` likewise only for
            an agent that normalises
        """
        config = {
            "experiment": self.experiment,
            "env_id": self.env_id,
            "label": self.agent.label,
            "algorithm": self.agent.algorithm,
            "algorithm_path": self.agent.algorithm_path,
            "policy": self.agent.policy,
            "kwargs": self.agent.kwargs_for(self.env_id),
            "total_timesteps": self.agent.total_timesteps,
            "n_envs": self.agent.n_envs_for(self.env_id),
            "seed": self.seed,
            "evaluation": {
                "every": self.evaluation.every,
                "episodes": self.evaluation.episodes,
                "seed": self.seed + self.evaluation.seed_offset,
                "threshold": self.evaluation.thresholds[self.env_id],
            },
            "tensorboard": self.tensorboard,
        }
        if self.agent.normalize is not None:
            config["normalize"] = dict(self.agent.normalize)
        if self.diagnostics is not None:
            # None rather than the settings for an agent that cannot be measured: the report says why it has
            # no diagnostics, and other settings leave its finished runs valid.
            config["diagnostics"] = self.diagnostics.to_config() if self.agent.has_actor_gradient else None
        return config

    def folder(self, out: Path) -> Path:
        """Return the run's folder in the store rooted at ``out``.

        :param out: the store's root
        :return: ``out/<experiment>/<env folder>/<label>/seed-<seed>``
        """
        return run_dir(out, self.experiment, self.env_id, self.agent.label, self.seed)


@dataclass(frozen=True)
class Spec:
    """A checked experiment spec.

    :param name: the experiment name (the store's folder)
    :param envs: the env ids
    :param seeds: the seeds, each run once per env and agent
    :param evaluation: the evaluation protocol
    :param agents: the agents
    :param tensorboard: whether runs also write TensorBoard events
    :param source: the file it was read from, for messages
    :param diagnostics: the gradient diagnostics every run measures, or ``None`` (the default) for none
    :param done_elsewhere: the runs ``(env id, label, seed)`` of the grid that other folders hold finished,
        left out of :meth:`runs` (:meth:`without_runs_in`)
    """

    name: str
    envs: tuple[str, ...]
    seeds: tuple[int, ...]
    evaluation: Evaluation
    agents: tuple[AgentSpec, ...]
    tensorboard: bool = False
    source: str = "<dict>"
    diagnostics: Diagnostics | None = None
    done_elsewhere: frozenset[tuple[str, str, int]] = frozenset()

    def first_seeds(self, count: int) -> Spec:
        """The same spec with only its first ``count`` seeds: a reduced run whose runs are the full one's.

        :param count: how many seeds to keep, from 1 to ``len(seeds)``
        :return: the reduced spec
        """
        if check_int(count, "count", minimum=1) > len(self.seeds):
            raise SpecError(
                self.source, "seeds", f"has {len(self.seeds)} seeds, fewer than the {count} asked for"
            )
        return dataclasses.replace(self, seeds=self.seeds[:count])

    def only_agents(self, labels: Sequence[str]) -> Spec:
        """The same spec with only the agents of ``labels``, in the spec's order: a part of the run whose
        runs are the full one's, so a full run of the spec keeps them.

        :param labels: labels of the spec's agents, at least one
        :return: the reduced spec
        """
        if isinstance(labels, str):
            raise TypeError(f"labels must be a list of agent labels, not one string, got {labels!r}")
        if not labels:
            raise ValueError(f"labels must be a non-empty list of agent labels, got {labels!r}")
        known = [agent.label for agent in self.agents]
        unknown = [label for label in labels if label not in known]
        if unknown:
            raise SpecError(
                self.source,
                "agents",
                f"has no agent labelled {', '.join(map(repr, unknown))}; its labels: {', '.join(known)}",
            )
        return dataclasses.replace(self, agents=tuple(a for a in self.agents if a.label in labels))

    def without_runs_in(self, folders: Sequence[str | Path]) -> Spec:
        """The same spec without the runs that other folders hold finished: the pieces of one spec made in
        several run stores, such as a store lost with its machine whose committed results folder remains.

        The runs left are the full spec's, so their results pool with the folders' (``rlrelax aggregate``).

        :param folders: committed results folders (``runs.csv`` and ``evaluations.csv``, as ``rlrelax
            report`` writes them) or experiment folders of other run stores, at least one
        :return: the spec without those runs
        :raises SpecError: naming the folder: one that holds no run of this spec (an env id and label it
            has), or a run whose budget differs from its agent's here (a run of another spec)
        """
        from rlrelax.compare.aggregate import read_runs

        if isinstance(folders, str | Path):
            raise TypeError(f"folders must be a list of folders, not one, got {folders!r}")
        if not folders:
            raise ValueError(f"folders must be a non-empty list of folders, got {folders!r}")
        agents = {agent.label: agent for agent in self.agents}
        done = set(self.done_elsewhere)
        for folder in folders:
            ours = [run for run in read_runs(folder) if run.env_id in self.envs and run.label in agents]
            if not ours:
                raise SpecError(
                    self.source,
                    "envs, agents",
                    f"{folder} holds no finished run of an env and agent label of this spec "
                    f"(envs {', '.join(self.envs)}; labels {', '.join(agents)})",
                )
            for run in ours:
                budget = agents[run.label].total_timesteps
                if run.total_timesteps != budget:
                    raise SpecError(
                        self.source,
                        f"agents[{run.label}].total_timesteps",
                        f"is {budget:,}, but {folder} holds {run.env_id} / {run.label} / seed-{run.seed} "
                        f"with a budget of {run.total_timesteps:,}: a run of another spec",
                    )
                done.add((run.env_id, run.label, run.seed))
        return dataclasses.replace(self, done_elsewhere=frozenset(done))

    def runs(self) -> list[RunSpec]:
        """Return the grid of runs, env by env, agent by agent (in spec order), seed by seed, without those
        done elsewhere.

        :return: the runs
        """
        return [
            RunSpec(self.name, env_id, agent, seed, self.evaluation, self.tensorboard, self.diagnostics)
            for env_id in self.envs
            for agent in self.agents
            for seed in self.seeds
            if (env_id, agent.label, seed) not in self.done_elsewhere
        ]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(
    table: Mapping[str, Any], key: str, where: str, source: str, default: int | None = None
) -> int:
    value = table.get(key, default)
    if value is None:
        raise SpecError(source, f"{where}{key}", "is required")
    if not _is_int(value) or value < 1:
        raise SpecError(source, f"{where}{key}", f"must be a positive integer, got {value!r}")
    return int(value)


def _unknown_keys(table: Mapping[str, Any], allowed: set[str], where: str, source: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise SpecError(
            source, f"{where}{unknown[0]}", f"unknown key; the keys here are {', '.join(sorted(allowed))}"
        )


def _seeds(value: object, source: str) -> tuple[int, ...]:
    if value is None:
        raise SpecError(source, "seeds", "is required: a list of integers, or a count n for seeds 0..n-1")
    if _is_int(value):
        if value < 1:  # type: ignore[operator]
            raise SpecError(source, "seeds", f"needs at least one seed, got the count {value!r}")
        return tuple(range(value))  # type: ignore[call-overload]
    if not isinstance(value, list) or not value:
        raise SpecError(
            source, "seeds", f"needs at least one seed: a non-empty list of integers, got {value!r}"
        )
    for index, seed in enumerate(value):
        if not _is_int(seed) or seed < 0:
            raise SpecError(source, f"seeds[{index}]", f"must be a non-negative integer, got {seed!r}")
    if len(set(value)) != len(value):
        raise SpecError(source, "seeds", f"lists a seed twice: {value!r}")
    return tuple(value)


def _check_envs(
    envs: object, threshold: object, source: str
) -> tuple[tuple[str, ...], dict[str, float | None], dict[str, Any]]:
    import gymnasium as gym

    if not isinstance(envs, list) or not envs or not all(isinstance(e, str) for e in envs):
        raise SpecError(source, "envs", f"must be a non-empty list of Gymnasium env ids, got {envs!r}")
    if len(set(envs)) != len(envs):
        raise SpecError(source, "envs", f"lists an env twice: {envs!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float | dict | None):
        raise SpecError(
            source, "evaluation.threshold", f"must be a number or a table env id -> number, got {threshold!r}"
        )
    if isinstance(threshold, dict):
        for env_id in threshold:
            if env_id not in envs:
                raise SpecError(source, f"evaluation.threshold.{env_id}", "is not one of the spec's envs")
    thresholds: dict[str, float | None] = {}
    action_spaces = {}
    for index, env_id in enumerate(envs):
        try:
            env = make_env(env_id)
        except gym.error.Error as error:
            raise SpecError(source, f"envs[{index}]", f"unknown env {env_id!r}: {error}") from None
        action_spaces[env_id] = env.action_space
        registered = env.spec.reward_threshold if env.spec is not None else None
        env.close()
        value = threshold.get(env_id) if isinstance(threshold, dict) else threshold
        if value is None:
            value = registered
        if value is None:  # no registered reward_threshold and none given: the report does without
            thresholds[env_id] = None
            continue
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            raise SpecError(
                source, f"evaluation.threshold.{env_id}", f"must be a finite number, got {value!r}"
            )
        thresholds[env_id] = float(value)
    return tuple(envs), thresholds, action_spaces


def _check_diagnostics(
    raw: object, evaluation_every: int, agents: tuple[AgentSpec, ...], source: str
) -> Diagnostics | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise SpecError(source, "diagnostics", f"must be a table, got {raw!r}")
    _unknown_keys(raw, _DIAGNOSTICS_KEYS, "diagnostics.", source)
    every = _positive_int(raw, "every", "diagnostics.", source, default=evaluation_every)
    draws = raw.get("draws", DEFAULT_DIAGNOSTICS_DRAWS)
    if not _is_int(draws) or draws < MIN_DIAGNOSTICS_DRAWS:
        raise SpecError(
            source,
            "diagnostics.draws",
            f"must be an integer >= {MIN_DIAGNOSTICS_DRAWS} (the standard errors leave one draw out), "
            f"got {draws!r}",
        )
    batch_size = _positive_int(
        raw, "batch_size", "diagnostics.", source, default=DEFAULT_DIAGNOSTICS_BATCH_SIZE
    )
    for index, agent in enumerate(agents):
        if agent.has_actor_gradient and every > agent.total_timesteps:
            raise SpecError(
                source,
                "diagnostics.every",
                f"{every} env steps is more than the budget of agents[{index}] ({agent.label!r}, "
                f"{agent.total_timesteps}): it would never be measured",
            )
    return Diagnostics(every=every, draws=int(draws), batch_size=batch_size)


def _check_normalize(raw: object, where: str, source: str) -> dict[str, Any] | None:
    """The ``VecNormalize`` keywords of an agent's ``normalize`` (``true``: the defaults; ``false``: none)."""
    if raw is None or raw is False:
        return None
    if raw is True:
        return {}
    if not isinstance(raw, dict):
        raise SpecError(
            source,
            f"{where}normalize",
            f"must be true, false or a table of VecNormalize keywords, got {raw!r}",
        )
    _unknown_keys(raw, set(NORMALIZE_KEYS), f"{where}normalize.", source)
    for name, value in raw.items():
        kind = NORMALIZE_KEYS[name]
        number = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        valid = {
            "bool": isinstance(value, bool),
            "positive": number and value > 0,
            "discount": number and 0 <= value <= 1,
            "names": isinstance(value, list) and all(isinstance(item, str) for item in value),
        }[kind]
        if not valid:
            wanted = {
                "bool": "true or false",
                "positive": "a finite number > 0",
                "discount": "a number in [0, 1]",
                "names": "a list of observation keys",
            }[kind]
            raise SpecError(source, f"{where}normalize.{name}", f"must be {wanted}, got {value!r}")
    return dict(raw)


def _check_agent(raw: object, index: int, source: str) -> AgentSpec:
    where = f"agents[{index}]."
    if not isinstance(raw, dict):
        raise SpecError(source, f"agents[{index}]", f"must be a table ([[agents]]), got {raw!r}")
    _unknown_keys(raw, _AGENT_KEYS, where, source)
    label = raw.get("label")
    if not isinstance(label, str) or not _NAME.match(label):
        raise SpecError(
            source,
            f"{where}label",
            f"must be a name of letters, digits and _ . + - (a folder name), got {label!r}",
        )
    algorithm = raw.get("algorithm")
    if not isinstance(algorithm, str):
        raise SpecError(source, f"{where}algorithm", f"must be a string, got {algorithm!r}")
    try:
        path, cls = resolve_algorithm(algorithm)
    except ValueError as error:
        raise SpecError(source, f"{where}algorithm", str(error)) from None
    policy = raw.get("policy", "MlpPolicy")
    if not isinstance(policy, str):
        raise SpecError(source, f"{where}policy", f"must be a string, got {policy!r}")
    kwargs = raw.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise SpecError(source, f"{where}kwargs", f"must be a table of keyword arguments, got {kwargs!r}")
    _check_kwargs(kwargs, cls, algorithm, f"{where}kwargs", source)
    use_file = raw.get("hyperparams", True)
    if not isinstance(use_file, bool):
        raise SpecError(source, f"{where}hyperparams", f"must be true or false, got {use_file!r}")
    hyperparameters: dict[str, EnvHyperparameters] = {}
    if use_file:
        try:
            hyperparameters = hyperparameter_file(path)
        except ValueError as error:
            raise SpecError(source, f"{where}hyperparams", str(error)) from None
        for env_id, entry in hyperparameters.items():
            _check_kwargs(entry.kwargs, cls, algorithm, f"{where}hyperparams[{env_id!r}]", source)
    from rlrelax.callbacks.gradient_stats import measures_actor_gradient

    return AgentSpec(
        label=label,
        algorithm=algorithm,
        algorithm_path=path,
        total_timesteps=_positive_int(raw, "total_timesteps", where, source),
        n_envs=_positive_int(raw, "n_envs", where, source) if raw.get("n_envs") is not None else None,
        policy=policy,
        kwargs=kwargs,
        has_actor_gradient=measures_actor_gradient(cls),
        normalize=_check_normalize(raw.get("normalize"), where, source),
        hyperparameters=hyperparameters,
    )


def _check_kwargs(kwargs: Mapping[str, Any], cls: type, algorithm: str, where: str, source: str) -> None:
    """Refuse keyword arguments the runner sets, the algorithm does not take, or that break the syntax."""
    accepted = accepted_kwargs(cls)
    for name, value in kwargs.items():
        if name in RESERVED_KWARGS:
            raise SpecError(source, f"{where}.{name}", "is set by the runner and cannot be given in a spec")
        if accepted is not None and name not in accepted:
            raise SpecError(
                source,
                f"{where}.{name}",
                f"{algorithm} does not take a keyword {name!r}; "
                f"it takes {', '.join(sorted(accepted - RESERVED_KWARGS))}",
            )
        try:
            check_value(value, f"{where}.{name}")
        except ValueError as error:
            key, _, reason = str(error).partition(": ")  # check_value names the exact (nested) key
            raise SpecError(source, key, reason) from None


def _check_construction(agent: AgentSpec, index: int, env_id: str, action_space: Any, source: str) -> None:
    """Build the agent once on the env, so bad values and unsupported action spaces fail before any run."""
    from gymnasium import spaces
    from stable_baselines3.common.env_util import make_vec_env

    cls = import_object(agent.algorithm_path)
    where = f"agents[{index}]"
    try:
        kwargs = resolve_kwargs(agent.kwargs_for(env_id))
    except (ValueError, TypeError) as error:
        raise SpecError(source, f"{where}.kwargs", str(error)) from None
    env = make_vec_env(lambda: make_env(env_id), n_envs=agent.n_envs_for(env_id))
    if agent.normalize is not None:
        from rlrelax.compare.worker import vec_normalize

        try:
            env = vec_normalize(env, dict(agent.normalize), kwargs, training=True)
        except (ValueError, TypeError, AssertionError) as error:
            env.close()
            raise SpecError(
                source, f"{where}.normalize", f"VecNormalize refused it on env {env_id!r}: {error}"
            ) from None
    try:
        cls(agent.policy, env, **kwargs)
    except (ValueError, TypeError, AssertionError, KeyError) as error:
        if not isinstance(action_space, spaces.Discrete):
            reason = (
                f"env {env_id!r} has the action space {action_space!r}, which {agent.algorithm} does not "
                f"support ({error})"
            )
        else:
            reason = f"{agent.algorithm} refused its arguments on env {env_id!r}: {error}"
        raise SpecError(source, where, reason) from None
    finally:
        env.close()


def spec_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> Spec:
    """Check a spec given as a dict (the parsed TOML) and return it.

    Besides the format, this makes every env once (to read its action space and ``reward_threshold``) and
    builds every agent once on every env (so a keyword value or an action space the algorithm refuses fails
    here, before any run starts).

    :param data: the spec
    :param source: where it came from, for messages
    :return: the checked spec
    :raises SpecError: naming the source, the key and the reason
    """
    _unknown_keys(data, _TOP_KEYS, "", source)
    name = data.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise SpecError(
            source, "name", f"must be a name of letters, digits and _ . + - (a folder name), got {name!r}"
        )
    seeds = _seeds(data.get("seeds"), source)
    evaluation = data.get("evaluation", {})
    if not isinstance(evaluation, dict):
        raise SpecError(source, "evaluation", f"must be a table, got {evaluation!r}")
    _unknown_keys(evaluation, _EVAL_KEYS, "evaluation.", source)
    every = _positive_int(evaluation, "every", "evaluation.", source, default=DEFAULT_EVALUATION_EVERY)
    episodes = _positive_int(evaluation, "episodes", "evaluation.", source, default=10)
    final_episodes = (
        _positive_int(evaluation, "final_episodes", "evaluation.", source, default=1)
        if "final_episodes" in evaluation
        else None
    )
    seed_offset = evaluation.get("seed_offset", 1000)
    if not _is_int(seed_offset) or seed_offset < 0:
        raise SpecError(
            source, "evaluation.seed_offset", f"must be a non-negative integer, got {seed_offset!r}"
        )
    logging = data.get("logging", {})
    if not isinstance(logging, dict):
        raise SpecError(source, "logging", f"must be a table, got {logging!r}")
    _unknown_keys(logging, {"tensorboard"}, "logging.", source)
    tensorboard = logging.get("tensorboard", False)
    if not isinstance(tensorboard, bool):
        raise SpecError(source, "logging.tensorboard", f"must be true or false, got {tensorboard!r}")
    if tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise SpecError(
            source, "logging.tensorboard", "needs the tensorboard package: pip install tensorboard"
        )
    raw_agents = data.get("agents")
    if not isinstance(raw_agents, list) or not raw_agents:
        raise SpecError(source, "agents", "needs at least one agent ([[agents]] tables)")
    agents = tuple(_check_agent(raw, index, source) for index, raw in enumerate(raw_agents))
    labels: dict[str, int] = {}
    for index, agent in enumerate(agents):
        if agent.label in labels:
            raise SpecError(
                source,
                f"agents[{index}].label",
                f"duplicate label {agent.label!r} (also agents[{labels[agent.label]}])",
            )
        labels[agent.label] = index
    diagnostics = _check_diagnostics(data.get("diagnostics"), every, agents, source)
    envs, thresholds, action_spaces = _check_envs(data.get("envs"), evaluation.get("threshold"), source)
    for env_id in envs:
        for index, agent in enumerate(agents):
            _check_construction(agent, index, env_id, action_spaces[env_id], source)
    return Spec(
        name=name,
        envs=envs,
        seeds=seeds,
        evaluation=Evaluation(
            every=every,
            episodes=episodes,
            seed_offset=int(seed_offset),
            thresholds=thresholds,
            final_episodes=final_episodes,
        ),
        agents=agents,
        tensorboard=tensorboard,
        source=source,
        diagnostics=diagnostics,
    )


def load_spec(path: str | Path) -> Spec:
    """Read and check a TOML spec.

    The format (every key is checked; unknown keys are errors)::

        name = "cartpole"                 # the experiment: runs go to <out>/cartpole/
        envs = ["CartPole-v1"]            # Gymnasium ids ("rlrelax/..." ids are registered automatically)
        seeds = 10                        # seeds 0..9, or a list such as [0, 1, 2]

        [evaluation]
        every = 5000                      # env steps between evaluations (default 10000, as EvalCallback)
        episodes = 10                     # deterministic episodes per evaluation (default 10)
        final_episodes = 100              # a final evaluation of each final model, whose mean is the run's
                                          # final return (default: none, the last evaluation's mean is)
        seed_offset = 1000                # the eval env of seed s is seeded with s + 1000 (default)
        threshold = 475.0                 # success threshold (default: each env's reward_threshold, if any)

        [logging]
        tensorboard = false               # also write TensorBoard events (default false)

        [diagnostics]                     # gradient diagnostics (off without this table)
        every = 5000                      # env steps between measurements (default: evaluation.every)
        draws = 16                        # draws of the actor's gradient estimate each (>= 3, default 16)
        batch_size = 256                  # the fixed batch they are drawn on (default 256)

        [[agents]]
        label = "PPO"                     # unique; the store's folder and the reports' name
        algorithm = "PPO"                 # REINFORCE, SoftQ, GumbelAC, PPO, DQN, A2C or "module:Class"
        total_timesteps = 100_000
        n_envs = 8                        # parallel training envs (default: the hyperparameter file's
                                          # number for the env, else 1)
        policy = "MlpPolicy"              # default
        kwargs = { n_steps = 32, learning_rate = "lin_0.001" }
        hyperparams = true                # apply the agent's per-env hyperparameter file beneath kwargs
                                          # and n_envs (default true; rlrelax's agents ship one, SB3's
                                          # have none)
        normalize = true                  # VecNormalize the envs, as RL Zoo's normalize (default false);
                                          # or a table of its keywords, e.g. { norm_reward = false }

    :param path: the spec file
    :return: the checked spec
    :raises SpecError: naming the file, the key and the reason
    """
    source = str(path)
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except FileNotFoundError:
        raise SpecError(source, "<file>", "no such file") from None
    except tomllib.TOMLDecodeError as error:
        raise SpecError(source, "<toml>", f"not valid TOML: {error}") from None
    return spec_from_dict(data, source)


def check_store(spec: Spec, out: Path) -> None:
    """Refuse a spec whose finished runs already in the store were made with a different config.

    :param spec: the checked spec
    :param out: the store's root
    :raises SpecError: naming the first run in conflict
    """
    for run in spec.runs():
        if run_status(run.folder(out), run.to_config()) == "conflict":
            index = spec.agents.index(run.agent)
            raise SpecError(
                spec.source,
                f"agents[{index}]",
                f"the store already holds a finished run {run.folder(out)} made with a different config; "
                "use another --out or name, or delete those runs",
            )
