"""SoftQ(compile_update=True): the compiled gradient step against the eager one, its fallbacks, its limits.

Each distinct setting compiles its own graph (some seconds on a fresh machine, then cached on disk), so these
tests share settings where they can.
"""

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch._inductor.config as inductor_config
from parameter_gaps import flat_parameters, relative_gap
from test_factorised_actions import make_env

from rlrelax.agents import SoftQ
from rlrelax.relax import LinearSchedule

ENV_ID = "CartPole-v1"
# Small settings so that a model trains within a few hundred steps: 36 gradient steps in learn(STEPS).
FAST: dict[str, Any] = {"learning_starts": 64, "batch_size": 32, "train_freq": 1, "buffer_size": 2_000}
STEPS = 100


def make(env: Any = ENV_ID, seed: int = 0, **kwargs: Any) -> SoftQ:
    return SoftQ("MlpPolicy", env, seed=seed, **{**FAST, **kwargs})


# After STEPS, float rounding has moved the compiled model's parameters by up to 1.3e-5 of the largest one
# (the learning-rate schedule; 6.1e-8 to 1.1e-7 for the others); a gradient clipped at 1 instead of 10 moves
# them by 1.3e-3.
CLOSE = 1e-4


@pytest.mark.parametrize("munchausen_coef", [0.9, 0.0], ids=["munchausen", "plain"])
def test_compiled_update_trains_as_the_eager_one(munchausen_coef: float) -> None:
    eager = make(munchausen_coef=munchausen_coef).learn(STEPS)
    compiled = make(munchausen_coef=munchausen_coef, compile_update=True).learn(STEPS)
    assert relative_gap(compiled, eager) < CLOSE
    # The same replay batches: the logged diagnostics agree as well.
    for key in ("train/critic_loss", "train/q_values", "train/entropy"):
        expected = eager.logger.name_to_value[key]
        assert compiled.logger.name_to_value[key] == pytest.approx(expected, rel=1e-3, abs=1e-5)
    assert compiled._n_updates == eager._n_updates > 0


def test_compiled_update_is_deterministic() -> None:
    first = make(compile_update=True).learn(STEPS)
    second = make(compile_update=True).learn(STEPS)
    assert torch.equal(flat_parameters(first), flat_parameters(second))
    different_seed = make(seed=1, compile_update=True).learn(STEPS)
    assert not torch.equal(flat_parameters(first), flat_parameters(different_seed))


def test_compiled_update_follows_the_learning_rate_schedule() -> None:
    # The learning rate reaches the graph as a tensor: a schedule neither recompiles nor is ignored.
    schedule = {"learning_rate": LinearSchedule(4e-3, 0.0)}
    eager = make(**schedule).learn(STEPS)
    compiled = make(compile_update=True, **schedule).learn(STEPS)
    assert relative_gap(compiled, eager) < CLOSE
    constant = make(compile_update=True).learn(STEPS)
    assert relative_gap(compiled, constant) > 10 * CLOSE


@pytest.mark.parametrize("space", ["MultiDiscrete", "MultiBinary"])
def test_compiled_update_on_several_choices(space: str) -> None:
    eager = make(make_env(space)).learn(STEPS)
    compiled = make(make_env(space), compile_update=True).learn(STEPS)
    assert relative_gap(compiled, eager) < CLOSE


def test_saved_compiled_model_loads_and_trains_on(tmp_path: Path) -> None:
    model = make(compile_update=True).learn(STEPS)
    model.save(tmp_path / "model.zip")
    loaded = SoftQ.load(tmp_path / "model.zip", env=model.get_env())
    assert loaded.compile_update is True and loaded._compiled_update is not None
    assert torch.equal(flat_parameters(loaded), flat_parameters(model))
    loaded.learn(100, reset_num_timesteps=False)
    assert all(torch.isfinite(param).all() for param in loaded.policy.parameters())
    assert not torch.equal(flat_parameters(loaded), flat_parameters(model))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_compiled_update_on_cuda_trains_as_the_eager_one(tmp_path: Path) -> None:
    eager = make(device="cuda").learn(STEPS)
    compiled = make(device="cuda", compile_update=True).learn(STEPS)
    assert all(param.device.type == "cuda" for param in compiled.policy.parameters())
    assert relative_gap(compiled, eager) < CLOSE
    compiled.save(tmp_path / "model.zip")
    SoftQ.load(tmp_path / "model.zip", env=compiled.get_env(), device="cuda").learn(100)


def test_compiled_update_runs_eagerly_without_a_compiler() -> None:
    # A setting no other test compiles (the network's width), so that nothing cached stands in for compiling.
    settings: dict[str, Any] = {"policy_kwargs": {"net_arch": [24]}}
    eager = make(**settings).learn(STEPS)
    with (
        inductor_config.patch({"cpp.cxx": ("/nonexistent/c++",), "fx_graph_cache": False}),
        pytest.warns(UserWarning, match=r"SoftQ\(compile_update=True\) could not compile its update"),
    ):
        compiled = make(compile_update=True, **settings).learn(STEPS)
    assert relative_gap(compiled, eager) < CLOSE


def test_compiled_update_runs_eagerly_when_dynamo_is_disabled() -> None:
    eager = make().learn(STEPS)
    with torch._dynamo.config.patch(disable=True):
        compiled = make(compile_update=True).learn(STEPS)
    assert relative_gap(compiled, eager) < CLOSE


def test_diverged_compiled_training_raises() -> None:
    model = make(compile_update=True).learn(100)
    assert model.replay_buffer is not None
    # The graph cannot check values, so train() checks what it logs.
    model.replay_buffer.rewards[:] = np.nan
    with pytest.raises(ValueError, match="SoftQ's training diverged: train/critic_loss is nan"):
        model.train(gradient_steps=1, batch_size=FAST["batch_size"])


@pytest.mark.parametrize("value", [1, "yes", None])
def test_compile_update_must_be_a_bool(value: Any) -> None:
    with pytest.raises(TypeError, match="compile_update must be a bool"):
        make(compile_update=value)


@pytest.mark.parametrize("ent_coef", ["auto", "auto_0.1"])
def test_compile_update_needs_a_fixed_ent_coef(ent_coef: str) -> None:
    with pytest.raises(ValueError, match=f"needs a fixed ent_coef, got ent_coef='{ent_coef}'"):
        make(compile_update=True, ent_coef=ent_coef)


def test_compile_update_needs_torchs_adam() -> None:
    sgd = r"the Q-network's optimiser must be torch\.optim\.Adam without amsgrad, with one parameter group"
    with pytest.raises(ValueError, match=sgd):
        make(compile_update=True, policy_kwargs={"optimizer_class": torch.optim.SGD})
    with pytest.raises(ValueError, match="without amsgrad"):
        make(compile_update=True, policy_kwargs={"optimizer_kwargs": {"amsgrad": True}})


def test_relative_gap_sees_a_small_change_of_the_update() -> None:
    # The closeness tests above would pass vacuously if a change of the update left the models this close.
    first = make().learn(STEPS)
    clipped_harder = make(max_grad_norm=1.0).learn(STEPS)
    assert 5 * CLOSE < relative_gap(clipped_harder, first) < math.inf
