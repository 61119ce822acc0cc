"""GumbelAC(compile_update=True): the compiled gradient step against the eager one, its fallbacks, its limits.

Each distinct setting compiles its own graph (some seconds on a fresh machine, then cached on disk), so these
tests share settings where they can.
"""

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch._inductor.config as inductor_config
from parameter_gaps import flat_parameters, relative_gap
from test_factorised_actions import make_env

import rlrelax.envs  # noqa: F401  (registers rlrelax/Slate-v0)
from rlrelax.agents import GumbelAC
from rlrelax.agents.common.compiled import ProxyExecutorNoticeFilter
from rlrelax.relax import LinearSchedule

ENV_ID = "CartPole-v1"
# Small settings so that a model trains within a few hundred steps: 36 gradient steps in learn(STEPS).
FAST: dict[str, Any] = {"learning_starts": 64, "batch_size": 32, "buffer_size": 2_000}
STEPS = 100
# The CartPole-v1 contenders of the benchmark and the comparisons.
ESTIMATORS = ("gumbel_softmax", "exact", "gumbel_rao", "score_function")


def make(env: Any = ENV_ID, seed: int = 0, **kwargs: Any) -> GumbelAC:
    return GumbelAC("MlpPolicy", env, seed=seed, **{**FAST, **kwargs})


# After STEPS, float rounding has moved the compiled model's parameters by up to 3.4e-6 of the largest one
# (score_function; 2.4e-7 to 6.4e-7 for the others), a critics' gradient clipped at 1 instead of 10 by 8.5e-4.
CLOSE = 1e-4


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_compiled_update_trains_as_the_eager_one(estimator: str) -> None:
    eager = make(estimator=estimator).learn(STEPS)
    compiled = make(estimator=estimator, compile_update=True).learn(STEPS)
    assert relative_gap(compiled, eager) < CLOSE
    # The same random draws, the same replay batches: the logged diagnostics agree as well.
    for key in ("train/critic_loss", "train/actor_loss", "train/entropy"):
        expected = eager.logger.name_to_value[key]
        assert compiled.logger.name_to_value[key] == pytest.approx(expected, rel=1e-3, abs=1e-5)
    assert compiled._n_updates == eager._n_updates > 0


def test_compiled_update_with_layer_normalised_critics() -> None:
    # The setting of GumbelAC's CartPole-v1 entry.
    layer_norm = {"policy_kwargs": {"critic_layer_norm": True}}
    eager = make(estimator="gumbel_softmax", **layer_norm).learn(STEPS)
    compiled = make(estimator="gumbel_softmax", compile_update=True, **layer_norm).learn(STEPS)
    assert relative_gap(compiled, eager) < CLOSE


def test_compiled_update_is_deterministic() -> None:
    first = make(estimator="exact", compile_update=True).learn(STEPS)
    second = make(estimator="exact", compile_update=True).learn(STEPS)
    assert torch.equal(flat_parameters(first), flat_parameters(second))
    different_seed = make(seed=1, estimator="exact", compile_update=True).learn(STEPS)
    assert not torch.equal(flat_parameters(first), flat_parameters(different_seed))


def test_compiled_update_follows_the_learning_rate_schedule() -> None:
    # The learning rate reaches the graph as a tensor: a schedule neither recompiles nor is ignored.
    schedule = {"learning_rate": LinearSchedule(4e-3, 0.0)}
    eager = make(estimator="exact", **schedule).learn(STEPS)
    compiled = make(estimator="exact", compile_update=True, **schedule).learn(STEPS)
    assert relative_gap(compiled, eager) < CLOSE
    constant = make(estimator="exact", compile_update=True).learn(STEPS)
    assert relative_gap(compiled, constant) > 10 * CLOSE


@pytest.mark.parametrize(
    ("estimator", "delayed"),
    [("exact", {"target_update_interval": 2}), ("gumbel_softmax", {"policy_delay": 2})],
    ids=["target_update_interval", "policy_delay"],
)
def test_compiled_update_takes_delayed_steps_where_due(estimator: str, delayed: dict[str, int]) -> None:
    # Two gradient steps a call and the target update, or the actor's step, after every second: only the
    # second step of each call's graph holds it.
    eager = make(estimator=estimator, gradient_steps=2, **delayed).learn(STEPS)
    compiled = make(estimator=estimator, gradient_steps=2, compile_update=True, **delayed).learn(STEPS)
    assert relative_gap(compiled, eager) < CLOSE
    for key in ("train/critic_loss", "train/actor_loss", "train/entropy"):
        expected = eager.logger.name_to_value[key]
        assert compiled.logger.name_to_value[key] == pytest.approx(expected, rel=1e-3, abs=1e-5)
    # Not vacuous: doing it at every step trains another model.
    every_step = make(estimator=estimator, gradient_steps=2).learn(STEPS)
    assert relative_gap(every_step, eager) > 10 * CLOSE


def test_compiled_simultaneous_updates_train_as_the_eager_ones() -> None:
    # The actor's loss reads the critics' values from the critics' loss, passed between the two gradients.
    simultaneous = {"estimator": "gumbel_softmax", "simultaneous_updates": True}
    eager = make(**simultaneous).learn(STEPS)
    compiled = make(compile_update=True, **simultaneous).learn(STEPS)
    assert relative_gap(compiled, eager) < CLOSE
    sequential = make(estimator="gumbel_softmax").learn(STEPS)
    assert relative_gap(sequential, eager) > 10 * CLOSE


def test_only_the_foreach_norm_proxy_executor_notice_is_silenced() -> None:
    make(compile_update=True)
    inductor_ir_log = logging.getLogger("torch._inductor.ir")
    filters = [f for f in inductor_ir_log.filters if isinstance(f, ProxyExecutorNoticeFilter)]
    assert len(filters) == 1  # once, however many models are built

    def record(message: str, *args: str) -> logging.LogRecord:
        return inductor_ir_log.makeRecord("torch._inductor.ir", logging.WARNING, "", 1, message, args, None)

    notice = "%s is missing a c-shim implementation, using proxy executor as fallback"
    assert not filters[0].filter(record(notice, "aten._foreach_norm.Scalar"))
    assert filters[0].filter(record(notice, "aten._some_other_op.default"))
    assert filters[0].filter(record("another warning"))


def test_compiled_update_on_several_choices() -> None:
    eager = make(make_env("MultiDiscrete"), estimator="gumbel_softmax").learn(STEPS)
    compiled = make(make_env("MultiDiscrete"), estimator="gumbel_softmax", compile_update=True).learn(STEPS)
    assert relative_gap(compiled, eager) < CLOSE


def test_saved_compiled_model_loads_and_trains_on(tmp_path: Path) -> None:
    model = make(estimator="exact", compile_update=True).learn(STEPS)
    model.save(tmp_path / "model.zip")
    loaded = GumbelAC.load(tmp_path / "model.zip", env=model.get_env())
    assert loaded.compile_update is True and loaded._compiled_update is not None
    assert torch.equal(flat_parameters(loaded), flat_parameters(model))
    loaded.learn(100, reset_num_timesteps=False)
    assert all(torch.isfinite(param).all() for param in loaded.policy.parameters())
    assert not torch.equal(flat_parameters(loaded), flat_parameters(model))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_compiled_update_on_cuda_trains_as_the_eager_one(tmp_path: Path) -> None:
    eager = make(estimator="gumbel_softmax", device="cuda").learn(STEPS)
    compiled = make(estimator="gumbel_softmax", device="cuda", compile_update=True).learn(STEPS)
    assert all(param.device.type == "cuda" for param in compiled.policy.parameters())
    assert relative_gap(compiled, eager) < CLOSE
    compiled.save(tmp_path / "model.zip")
    GumbelAC.load(tmp_path / "model.zip", env=compiled.get_env(), device="cuda").learn(100)


def test_compiled_update_runs_eagerly_without_a_compiler() -> None:
    # A setting no other test compiles (the critics' width), so that nothing cached stands in for compiling.
    settings: dict[str, Any] = {"estimator": "exact", "policy_kwargs": {"net_arch": {"pi": [16], "qf": [24]}}}
    eager = make(**settings).learn(STEPS)
    with (
        inductor_config.patch({"cpp.cxx": ("/nonexistent/c++",), "fx_graph_cache": False}),
        pytest.warns(UserWarning, match="could not compile its update"),
    ):
        compiled = make(compile_update=True, **settings).learn(STEPS)
    assert relative_gap(compiled, eager) < CLOSE


def test_compiled_update_runs_eagerly_when_dynamo_is_disabled() -> None:
    eager = make(estimator="exact").learn(STEPS)
    with torch._dynamo.config.patch(disable=True):
        compiled = make(estimator="exact", compile_update=True).learn(STEPS)
    assert relative_gap(compiled, eager) < CLOSE


def test_diverged_compiled_training_raises() -> None:
    model = make(estimator="exact", compile_update=True).learn(100)
    assert model.replay_buffer is not None
    # The graph skips the relaxations' checks of values, so train() checks what it logs.
    model.replay_buffer.rewards[:] = np.nan
    with pytest.raises(ValueError, match="diverged: train/critic_loss is nan"):
        model.train(gradient_steps=1, batch_size=FAST["batch_size"])


@pytest.mark.parametrize("value", [1, "yes", None])
def test_compile_update_must_be_a_bool(value: Any) -> None:
    with pytest.raises(TypeError, match="compile_update must be a bool"):
        make(compile_update=value)


@pytest.mark.parametrize(
    "setting",
    [{"ent_coef": "auto"}, {"temperature": LinearSchedule(2.0, 0.5)}],
    ids=["learnt ent_coef", "temperature schedule"],
)
def test_compile_update_needs_constants_of_the_graph(setting: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="needs a fixed ent_coef and a constant temperature"):
        make(compile_update=True, **setting)


def test_compile_update_needs_torchs_adam() -> None:
    sgd = r"must be torch\.optim\.Adam without amsgrad, with one parameter group, got SGD"
    with pytest.raises(ValueError, match=sgd):
        make(compile_update=True, policy_kwargs={"optimizer_class": torch.optim.SGD})
    with pytest.raises(ValueError, match="without amsgrad"):
        make(compile_update=True, policy_kwargs={"optimizer_kwargs": {"amsgrad": True}})


def test_compile_update_refuses_the_relaxed_top_k_of_slates() -> None:
    with pytest.raises(ValueError, match="cannot compile estimator='gumbel_softmax' on slates"):
        GumbelAC("TopKPolicy", "rlrelax/Slate-v0", compile_update=True, **FAST)


def test_relative_gap_sees_a_small_change_of_the_update() -> None:
    # The closeness tests above would pass vacuously if a change of the update left the models this close.
    first = make(estimator="exact").learn(STEPS)
    clipped_harder = make(estimator="exact", max_grad_norm=1.0).learn(STEPS)
    assert 5 * CLOSE < relative_gap(clipped_harder, first) < math.inf
