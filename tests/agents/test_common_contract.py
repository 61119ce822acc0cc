"""SB3's contract, checked the same way on every rlrelax agent.

Each agent must behave like one of SB3's own algorithms: ``save``/``load``, every SB3 callback, the SB3
logger (CSV and TensorBoard), ``progress_bar``, ``evaluate_policy``, any ``VecEnv``, and the same seed
giving the same run.
"""

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import (
    BaseCallback,
    CallbackList,
    CheckpointCallback,
    EvalCallback,
    StopTrainingOnMaxEpisodes,
    StopTrainingOnRewardThreshold,
)
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import SubprocVecEnv

from rlrelax.agents import REINFORCE, GumbelAC, SoftQ
from rlrelax.agents.gumbel_ac import ESTIMATOR_NAMES

ENV_ID = "CartPole-v1"
# Small settings so that every agent trains (not only collects) within a few hundred steps.
FAST: dict[type[BaseAlgorithm], dict[str, Any]] = {
    REINFORCE: {"n_episodes": 2},
    SoftQ: {"learning_starts": 64, "batch_size": 32, "buffer_size": 2_000},
    GumbelAC: {"learning_starts": 64, "batch_size": 32, "buffer_size": 2_000},
}
AGENTS = list(FAST)
# Every agent, and GumbelAC with each estimator: each draws its own random numbers.
CONFIGURATIONS = [
    pytest.param(REINFORCE, {}, id="REINFORCE"),
    pytest.param(SoftQ, {"ent_coef": "auto"}, id="SoftQ-auto"),
    *(pytest.param(GumbelAC, {"estimator": name}, id=f"GumbelAC-{name}") for name in ESTIMATOR_NAMES),
]


def make(agent: type[BaseAlgorithm], env: Any = ENV_ID, seed: int = 0, **kwargs: Any) -> BaseAlgorithm:
    return agent("MlpPolicy", env, seed=seed, **{**FAST[agent], **kwargs})


def parameters(model: BaseAlgorithm) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in model.policy.state_dict().items()}


def fixed_observations(n: int = 32) -> np.ndarray:
    env = gym.make(ENV_ID)
    env.observation_space.seed(0)
    return np.stack([env.observation_space.sample() for _ in range(n)]) * 0.1


class StopAfter(BaseCallback):
    """Ask training to stop by returning False from the ``n_calls``-th ``on_step``."""

    def __init__(self, n_calls: int) -> None:
        super().__init__()
        self.stop_at = n_calls

    def _on_step(self) -> bool:
        return self.n_calls < self.stop_at


@pytest.mark.parametrize("agent", AGENTS)
def test_continuous_action_space_is_refused_with_its_name(agent: type[BaseAlgorithm]) -> None:
    with pytest.raises(ValueError, match=rf"{agent.__name__} needs a Discrete.* action space, got Box"):
        agent("MlpPolicy", "Pendulum-v1")


@pytest.mark.parametrize("agent", AGENTS)
def test_predict_shapes_and_the_obs_info_mistake(agent: type[BaseAlgorithm]) -> None:
    model = make(agent)
    observations = fixed_observations(5)
    action, state = model.predict(observations[0], deterministic=True)
    assert np.shape(action) == () and state is None
    actions, _ = model.predict(observations, deterministic=False)
    assert actions.shape == (5,) and set(actions.tolist()) <= {0, 1}
    env = gym.make(ENV_ID)
    with pytest.raises(ValueError, match="You have passed a tuple to the predict"):
        model.predict(env.reset(seed=0))


@pytest.mark.parametrize(("agent", "kwargs"), CONFIGURATIONS)
def test_same_seed_same_training(agent: type[BaseAlgorithm], kwargs: dict[str, Any]) -> None:
    first, second = (make(agent, seed=3, **kwargs).learn(400) for _ in range(2))
    different = make(agent, seed=4, **kwargs).learn(400)
    for name, value in parameters(first).items():
        torch.testing.assert_close(parameters(second)[name], value, rtol=0, atol=0)
    assert any(
        not torch.equal(parameters(different)[name], value) for name, value in parameters(first).items()
    )


@pytest.mark.parametrize("agent", AGENTS)
def test_save_load_round_trip_and_continue(agent: type[BaseAlgorithm], tmp_path: Path) -> None:
    model = make(agent).learn(400)
    observations = fixed_observations()
    before, _ = model.predict(observations, deterministic=True)
    model.save(tmp_path / "model.zip")
    loaded = agent.load(tmp_path / "model.zip", env=make_vec_env(ENV_ID, seed=1))
    after, _ = loaded.predict(observations, deterministic=True)
    np.testing.assert_array_equal(before, after)
    for name, value in parameters(model).items():
        torch.testing.assert_close(parameters(loaded)[name], value, rtol=0, atol=0)
    for name, optimizer in _optimizers(model).items():
        assert (
            _optimizers(loaded)[name].state_dict()["state"].keys() == optimizer.state_dict()["state"].keys()
        )
    loaded.learn(200, reset_num_timesteps=False)
    assert loaded.num_timesteps >= model.num_timesteps + 200


def _optimizers(model: BaseAlgorithm) -> dict[str, torch.optim.Optimizer]:
    found = {name: value for name, value in vars(model).items() if isinstance(value, torch.optim.Optimizer)}
    found.update(
        {
            f"policy.{name}": value
            for name, value in vars(model.policy).items()
            if isinstance(value, torch.optim.Optimizer)
        }
    )
    return found


@pytest.mark.parametrize("agent", AGENTS)
def test_corrupt_model_file_is_a_clear_error(agent: type[BaseAlgorithm], tmp_path: Path) -> None:
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"this is not a zip archive")
    with pytest.raises(ValueError, match=r"broken\.zip"):
        agent.load(broken)


@pytest.mark.parametrize("agent", AGENTS)
def test_sb3_callbacks_chained(agent: type[BaseAlgorithm], tmp_path: Path) -> None:
    eval_callback = EvalCallback(
        make_vec_env(ENV_ID, seed=100), eval_freq=100, n_eval_episodes=2, log_path=str(tmp_path / "eval")
    )
    checkpoint = CheckpointCallback(save_freq=150, save_path=str(tmp_path / "checkpoints"))
    model = make(agent)
    model.learn(600, callback=CallbackList([eval_callback, checkpoint]), progress_bar=True)
    evaluations = np.load(tmp_path / "eval" / "evaluations.npz")
    assert list(evaluations["timesteps"]) == list(range(100, 601, 100))[: len(evaluations["timesteps"])]
    assert len(evaluations["timesteps"]) >= 5
    assert len(list((tmp_path / "checkpoints").glob("rl_model_*_steps.zip"))) >= 3


@pytest.mark.parametrize("agent", AGENTS)
def test_callbacks_that_stop_training(agent: type[BaseAlgorithm]) -> None:
    model = make(agent).learn(5_000, callback=StopAfter(n_calls=20))
    assert model.num_timesteps == 20

    model = make(agent).learn(5_000, callback=StopTrainingOnMaxEpisodes(max_episodes=3))
    assert 0 < model.num_timesteps < 5_000

    # Any evaluation reaches a return of at least 0 on CartPole, so the first one stops training.
    stop_on_threshold = StopTrainingOnRewardThreshold(reward_threshold=0.0)
    eval_callback = EvalCallback(
        make_vec_env(ENV_ID, seed=100),
        eval_freq=100,
        n_eval_episodes=1,
        callback_on_new_best=stop_on_threshold,
    )
    model = make(agent).learn(5_000, callback=eval_callback)
    assert model.num_timesteps == 100


@pytest.mark.parametrize("agent", AGENTS)
def test_logs_to_csv_and_tensorboard(agent: type[BaseAlgorithm], tmp_path: Path) -> None:
    model = make(agent)
    model.set_logger(configure(str(tmp_path), ["csv", "tensorboard"]))
    model.learn(600)
    header = (tmp_path / "progress.csv").read_text().splitlines()[0].split(",")
    assert "time/total_timesteps" in header
    assert any(key.startswith("train/") for key in header), header
    assert list(tmp_path.glob("events.out.tfevents.*"))


@pytest.mark.parametrize("agent", AGENTS)
def test_any_vec_env_and_evaluate_policy(agent: type[BaseAlgorithm]) -> None:
    env = make_vec_env(ENV_ID, n_envs=2, seed=0, vec_env_cls=SubprocVecEnv)
    try:
        model = make(agent, env=env).learn(300)
    finally:
        env.close()
    assert model.num_timesteps >= 300
    returns, _ = evaluate_policy(
        model, make_vec_env(ENV_ID, seed=7), n_eval_episodes=2, return_episode_rewards=True
    )
    # The same two episodes by hand: the first reset seeded as make_vec_env seeds it, the second not.
    by_hand, single = [], gym.make(ENV_ID)
    for seed in (7, None):
        observation, _ = single.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(observation, deterministic=True)
            observation, reward, terminated, truncated, _ = single.step(int(action))
            total, done = total + float(reward), terminated or truncated
        by_hand.append(total)
    assert returns == by_hand


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(("agent", "kwargs"), CONFIGURATIONS)
def test_trains_saves_and_loads_on_cuda(
    agent: type[BaseAlgorithm], kwargs: dict[str, Any], tmp_path: Path
) -> None:
    model = make(agent, device="cuda", **kwargs).learn(400)
    assert all(value.device.type == "cuda" for value in parameters(model).values())
    model.save(tmp_path / "model.zip")
    on_cpu = agent.load(tmp_path / "model.zip", device="cpu")
    for name, value in parameters(model).items():
        torch.testing.assert_close(parameters(on_cpu)[name], value.cpu(), rtol=0, atol=0)
    back = agent.load(tmp_path / "model.zip", env=make_vec_env(ENV_ID, seed=1), device="cuda")
    back.learn(200, reset_num_timesteps=False)
    assert all(value.device.type == "cuda" for value in parameters(back).values())
