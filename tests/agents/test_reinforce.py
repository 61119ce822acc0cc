"""Tests of the REINFORCE agent: options, bad input, SB3 callbacks, determinism, save/load, logging."""

import csv
import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.callbacks import (
    BaseCallback,
    CallbackList,
    CheckpointCallback,
    EvalCallback,
    StopTrainingOnMaxEpisodes,
    StopTrainingOnRewardThreshold,
)
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from rlrelax.agents.reinforce import REINFORCE
from rlrelax.agents.reinforce.reinforce import BASELINES, EpisodeBatch, discounted_returns
from rlrelax.relax import LinearSchedule

SMALL = {"policy_kwargs": {"net_arch": [16]}, "n_episodes": 2}


class CountdownEnv(gym.Env[np.ndarray, np.int64]):
    """Observes the step index; every episode lasts exactly ``length`` steps with reward 1 per step.

    :param length: the episode length
    """

    def __init__(self, length: int) -> None:
        self.length = length
        self.observation_space = spaces.Box(0.0, 100.0, shape=(1,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        self._t = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._t = 0
        return np.array([0.0], dtype=np.float32), {}

    def step(self, action: np.int64) -> tuple[np.ndarray, float, bool, bool, dict]:
        self._t += 1
        return np.array([self._t], dtype=np.float32), 1.0, self._t >= self.length, False, {}


class CoinLengthEnv(gym.Env[np.ndarray, np.int64]):
    """Episodes last 2 or 20 steps with probability 1/2 each, whatever the actions."""

    def __init__(self) -> None:
        self.observation_space = spaces.Box(0.0, 100.0, shape=(1,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        self._t = self._length = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._t, self._length = 0, 2 if self.np_random.random() < 0.5 else 20
        return np.array([0.0], dtype=np.float32), {}

    def step(self, action: np.int64) -> tuple[np.ndarray, float, bool, bool, dict]:
        self._t += 1
        return np.array([self._t], dtype=np.float32), 1.0, self._t >= self._length, False, {}


def make_countdown_vec_env(lengths: list[int]) -> DummyVecEnv:
    return DummyVecEnv([lambda length=length: Monitor(CountdownEnv(length)) for length in lengths])


def parameters(model: REINFORCE) -> list[th.Tensor]:
    return [p.detach().clone() for p in model.policy.parameters()]


@pytest.mark.parametrize("baseline", BASELINES)
@pytest.mark.parametrize("n_envs", [1, 4])
def test_smoke(baseline: str, n_envs: int) -> None:
    env = make_vec_env("CartPole-v1", n_envs=n_envs, seed=0)
    model = REINFORCE("MlpPolicy", env, baseline=baseline, seed=0, **SMALL)
    before = parameters(model)
    model.learn(400)
    assert model.num_timesteps >= 400
    assert model._n_updates > 0
    assert any(not th.equal(a, b) for a, b in zip(before, parameters(model), strict=True))


def test_learn_stops_at_the_budget() -> None:
    model = REINFORCE("MlpPolicy", "CartPole-v1", seed=0, n_episodes=50)
    model.learn(333)
    # A rollout is cut at total_timesteps; the partial last episode is dropped.
    assert model.num_timesteps == 333
    assert sum(len(e.actions) for e in model.episode_buffer.episodes) < 333


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"baseline": "critic"},
            r"baseline must be one of \['none', 'mean', 'value', 'leave_one_out', 'relax'\], got 'critic'",
        ),
        ({"baseline": "leave_one_out", "n_episodes": 1}, "n_episodes"),
        ({"n_episodes": 0}, "n_episodes"),
        ({"gamma": 1.5}, "gamma"),
        ({"ent_coef": -0.1}, "ent_coef"),
        ({"ent_coef": float("nan")}, "ent_coef"),
        ({"ent_coef": LinearSchedule(0.05, -0.01)}, r"ent_coef \(schedule .* at progress 0.0\)"),
        ({"vf_coef": 0.0}, "vf_coef"),
        ({"max_grad_norm": -1.0}, "max_grad_norm"),
        ({"learning_rate": 0.0}, "learning_rate"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        REINFORCE("MlpPolicy", "CartPole-v1", **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_episodes": 2.5}, "n_episodes .* must be an int, got 2.5"),
        ({"baseline": None}, "baseline must be one of"),
        ({"gamma": "0.9"}, "gamma must be a real number"),
        ({"ent_coef": "0.05"}, "ent_coef must be a float >= 0 or a schedule, got '0.05'"),
    ],
)
def test_arguments_of_the_wrong_type(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(TypeError, match=message):
        REINFORCE("MlpPolicy", "CartPole-v1", **kwargs)


def test_discounted_returns() -> None:
    rewards = np.array([[1.0, 2.0, 3.0], [1.0, 0.0, 0.0]], dtype=np.float32)
    expected = np.array([[1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3], [1, 0, 0]], dtype=np.float32)
    np.testing.assert_allclose(discounted_returns(rewards, 0.5), expected)


def make_batch(model: REINFORCE) -> EpisodeBatch:
    """Three episodes of lengths 3, 1 and 2 with hand-picked rewards, gamma = 1."""
    returns = th.tensor([[6.0, 5.0, 3.0], [4.0, 0.0, 0.0], [2.0, 1.0, 0.0]])
    mask = th.tensor([[True, True, True], [True, False, False], [True, True, False]])
    observations = th.linspace(-0.1, 0.1, 6 * 4).reshape(6, 4)
    return EpisodeBatch(observations, th.tensor([0, 1, 1, 0, 1, 0]), returns, mask)


@pytest.mark.parametrize(
    ("baseline", "expected_baseline"),
    [
        ("none", [0, 0, 0, 0, 0, 0]),
        # Per time step over the episodes, an ended episode counting 0.
        ("mean", [4, 2, 1, 4, 4, 2]),
        ("leave_one_out", [3, 0.5, 0, 4, 5, 2.5]),
    ],
)
def test_actor_loss_matches_the_formula(baseline: str, expected_baseline: list[float]) -> None:
    model = REINFORCE("MlpPolicy", "CartPole-v1", baseline=baseline, normalize_advantage=False, seed=0)
    batch = make_batch(model)
    loss, info = model._actor_loss(batch)
    log_probs = model.policy.get_distribution(batch.observations).log_prob(batch.actions)
    advantages = th.tensor([6.0, 5, 3, 4, 2, 1]) - th.tensor(expected_baseline)
    th.testing.assert_close(info["policy_loss"], -(log_probs * advantages).mean())
    th.testing.assert_close(loss, info["policy_loss"])
    assert "value_loss" not in info


def test_value_baseline_uses_the_value_head() -> None:
    # A uniform policy (log pi = log 1/2 for every action) and a value head that outputs 0.5 everywhere make
    # every number below a closed form. The returns 6, 5, 3, 4, 2, 1 have mean 3.5 and standard deviation
    # sqrt(17.5 / 5) = sqrt(3.5).
    model = REINFORCE("MlpPolicy", "CartPole-v1", normalize_advantage=False, ent_coef=0.1, seed=0)
    with th.no_grad():
        for layer, bias in ((model.policy.action_net, 0.0), (model.policy.value_net, 0.5)):
            layer.weight.zero_()
            layer.bias.fill_(bias)
    loss, info = model._actor_loss(make_batch(model))
    # The value head regresses on (G - 3.5) / sqrt(3.5), whose mean is 0 and mean square 17.5 / 21 = 5/6:
    # the squared error of 0.5 is 0.25 + 5/6.
    th.testing.assert_close(info["value_loss"], th.tensor(13 / 12))
    # The baseline maps 0.5 back to 3.5 + 0.5·sqrt(3.5); the mean advantage is -0.5·sqrt(3.5).
    policy_loss = -0.5 * math.log(2) * math.sqrt(3.5)
    th.testing.assert_close(info["policy_loss"], th.tensor(policy_loss))
    th.testing.assert_close(info["entropy"], th.tensor(math.log(2)))
    th.testing.assert_close(loss, th.tensor(policy_loss - 0.1 * math.log(2)))
    info["value_loss"].backward()
    assert model.policy.value_net.weight.grad is not None


@pytest.mark.parametrize("n_envs", [1, 4, 8])
def test_batches_hold_short_and_long_episodes_in_their_true_proportion(n_envs: int) -> None:
    # Before each env had a quota, a rollout stopped at the first n_episodes to end anywhere: with 4 envs
    # 73% of the trained-on episodes were the short ones, with 8 envs about 92%.
    env = DummyVecEnv([CoinLengthEnv for _ in range(n_envs)])
    env.seed(0)
    model = REINFORCE("MlpPolicy", env, n_episodes=8, seed=0, policy_kwargs=SMALL["policy_kwargs"])
    lengths: list[int] = []
    train = model.train

    def record_then_train() -> None:
        lengths.extend(len(episode.actions) for episode in model.episode_buffer.episodes)
        train()

    model.train = record_then_train  # type: ignore[method-assign]
    model.learn(40_000)
    share = np.mean(np.asarray(lengths) == 2)
    # 4 standard errors of a fair coin's share: a failure rate of about 6e-5 for a correct rollout.
    assert len(lengths) > 800
    assert abs(share - 0.5) < 4 * np.sqrt(0.25 / len(lengths)), (share, len(lengths))


def test_only_complete_fresh_episodes_are_trained_on() -> None:
    # Envs with episodes of 3, 5 and 7 steps: the batch fills while the longer ones are mid-episode.
    env = make_countdown_vec_env([3, 5, 7])
    model = REINFORCE("MlpPolicy", env, n_episodes=4, seed=0, **{"policy_kwargs": SMALL["policy_kwargs"]})
    model.learn(60)
    for _ in range(5):
        _, callback = model._setup_learn(60, None, reset_num_timesteps=False)
        assert model.env is not None
        assert model.collect_rollouts(model.env, callback, model.episode_buffer)
        # n_episodes=4 over 3 envs: each env contributes its first 2 episodes, long or short.
        assert sorted(len(episode.actions) for episode in model.episode_buffer.episodes) == [3, 3, 5, 5, 7, 7]
        for episode in model.episode_buffer.episodes:
            length = len(episode.actions)
            assert length in (3, 5, 7)
            np.testing.assert_array_equal(episode.observations[:, 0], np.arange(length))
            np.testing.assert_array_equal(episode.rewards, np.ones(length))


class RecordingCallback(BaseCallback):
    """Records the hooks SB3 calls, and the local names visible at each step."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []
        self.step_locals: set[str] = set()

    def _on_training_start(self) -> None:
        self.events.append("training_start")

    def _on_rollout_start(self) -> None:
        self.events.append("rollout_start")

    def _on_step(self) -> bool:
        self.events.append("step")
        self.step_locals.update(self.locals)
        return True

    def _on_rollout_end(self) -> None:
        self.events.append("rollout_end")

    def _on_training_end(self) -> None:
        self.events.append("training_end")


def test_callback_hooks_order_and_locals() -> None:
    recorder = RecordingCallback()
    model = REINFORCE("MlpPolicy", "CartPole-v1", seed=0, **SMALL).learn(200, callback=recorder)
    events = recorder.events
    assert events[0] == "training_start" and events[-1] == "training_end"
    assert events[1] == "rollout_start" and events[-2] == "rollout_end"
    assert events.count("step") == model.num_timesteps == 200
    assert events.count("rollout_start") == events.count("rollout_end") > 1
    assert {
        "self",
        "new_obs",
        "rewards",
        "dones",
        "infos",
        "actions",
        "callback",
        "env",
    } <= recorder.step_locals
    assert recorder.n_calls == 200


class StopAfter(BaseCallback):
    def __init__(self, n_calls: int) -> None:
        super().__init__()
        self.stop_at = n_calls

    def _on_step(self) -> bool:
        return self.n_calls < self.stop_at


@pytest.mark.parametrize("n_envs", [1, 2])
def test_callback_returning_false_stops_training(n_envs: int) -> None:
    env = make_vec_env("CartPole-v1", n_envs=n_envs, seed=0)
    model = REINFORCE("MlpPolicy", env, seed=0, **SMALL).learn(10_000, callback=StopAfter(7))
    assert model.num_timesteps == 7 * n_envs


def test_stop_training_on_max_episodes() -> None:
    model = REINFORCE("MlpPolicy", "CartPole-v1", seed=0, **SMALL)
    stop = StopTrainingOnMaxEpisodes(max_episodes=5)
    model.learn(10_000, callback=stop)
    assert stop.n_episodes == 5
    # As in SB3's own loop, training stops before the 5th episode's info is recorded.
    assert model.ep_info_buffer is not None
    assert len(model.ep_info_buffer) == 4
    assert model.num_timesteps > sum(info["l"] for info in model.ep_info_buffer)
    assert model.num_timesteps < 500 * 5


def test_eval_checkpoint_and_reward_threshold_chained(tmp_path: Path) -> None:
    eval_env = Monitor(gym.make("CartPole-v1"))
    stop = StopTrainingOnRewardThreshold(reward_threshold=0.0)
    evaluation = EvalCallback(
        eval_env, eval_freq=150, n_eval_episodes=2, log_path=str(tmp_path), callback_on_new_best=stop
    )
    checkpoint = CheckpointCallback(save_freq=100, save_path=str(tmp_path), name_prefix="rl")
    model = REINFORCE("MlpPolicy", "CartPole-v1", seed=0, **SMALL)
    model.learn(5_000, callback=CallbackList([checkpoint, evaluation]))
    # The first evaluation is a new best above the threshold 0, so training stops at step 150.
    assert model.num_timesteps == 150
    assert (tmp_path / "rl_100_steps.zip").exists()
    evaluations = np.load(tmp_path / "evaluations.npz")
    np.testing.assert_array_equal(evaluations["timesteps"], [150])
    REINFORCE.load(tmp_path / "rl_100_steps.zip")


def test_eval_callback_runs_repeatedly(tmp_path: Path) -> None:
    evaluation = EvalCallback(
        Monitor(gym.make("CartPole-v1")), eval_freq=100, n_eval_episodes=1, log_path=str(tmp_path)
    )
    REINFORCE("MlpPolicy", "CartPole-v1", seed=0, **SMALL).learn(450, callback=evaluation)
    np.testing.assert_array_equal(np.load(tmp_path / "evaluations.npz")["timesteps"], [100, 200, 300, 400])


def test_save_load_round_trip(tmp_path: Path) -> None:
    model = REINFORCE("MlpPolicy", "CartPole-v1", seed=0, baseline="leave_one_out", ent_coef=0.01, **SMALL)
    model.learn(500)
    observations = np.stack([model.observation_space.sample() for _ in range(20)])
    actions, _ = model.predict(observations, deterministic=True)
    model.save(tmp_path / "model.zip")

    loaded = REINFORCE.load(tmp_path / "model.zip", env=make_vec_env("CartPole-v1", n_envs=1, seed=1))
    assert (loaded.baseline, loaded.n_episodes, loaded.ent_coef) == ("leave_one_out", 2, 0.01)
    loaded_actions, _ = loaded.predict(observations, deterministic=True)
    np.testing.assert_array_equal(actions, loaded_actions)
    for a, b in zip(parameters(model), parameters(loaded), strict=True):
        assert th.equal(a, b)
    saved_state = model.policy.optimizer.state_dict()["state"]
    loaded_state = loaded.policy.optimizer.state_dict()["state"]
    assert saved_state.keys() == loaded_state.keys() and len(saved_state) > 0
    for index, state in saved_state.items():
        assert th.equal(state["exp_avg_sq"], loaded_state[index]["exp_avg_sq"])

    updates = loaded._n_updates
    loaded.learn(300, reset_num_timesteps=False)
    assert loaded.num_timesteps == 800
    assert loaded._n_updates > updates


def test_logged_keys_in_csv(tmp_path: Path) -> None:
    for baseline in ("value", "none"):
        folder = tmp_path / baseline
        model = REINFORCE("MlpPolicy", "CartPole-v1", seed=0, baseline=baseline, **SMALL)
        model.set_logger(configure(str(folder), ["csv"]))
        model.learn(600)
        with open(folder / "progress.csv") as file:
            keys = set(next(csv.reader(file)))
        expected = {
            "train/policy_loss",
            "train/entropy",
            "train/n_episodes",
            "rollout/ep_rew_mean",
            "time/fps",
            "time/episodes",
        }
        assert expected <= keys
        assert ("train/value_loss" in keys) == (baseline == "value")


def test_a_scheduled_entropy_bonus_fades_with_the_progress_remaining(tmp_path: Path) -> None:
    model = REINFORCE("MlpPolicy", "CartPole-v1", seed=0, ent_coef=LinearSchedule(0.05, 0.0), **SMALL)
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(2_000)
    with open(tmp_path / "progress.csv") as file:
        logged = [float(row["train/ent_coef"]) for row in csv.DictReader(file) if row["train/ent_coef"]]
    assert logged == sorted(logged, reverse=True) and 0.05 >= logged[0] > 0.04 and logged[-1] < 0.01
    # The loss takes the value at the progress remaining when it is computed.
    model._current_progress_remaining = 0.4
    loss, info = model._actor_loss(make_batch(model))
    th.testing.assert_close(loss, info["policy_loss"] - 0.02 * info["entropy"])


def test_progress_bar_and_tensorboard(tmp_path: Path) -> None:
    model = REINFORCE("MlpPolicy", "CartPole-v1", seed=0, tensorboard_log=str(tmp_path), **SMALL)
    model.learn(300, progress_bar=True)
    assert model.num_timesteps == 300
    assert list(tmp_path.glob("REINFORCE_1/events.out.tfevents.*"))


def test_sampled_actions_follow_the_policy() -> None:
    model = REINFORCE("MlpPolicy", "CartPole-v1", seed=0)
    observation = th.tensor([[0.1, 1.0, -0.2, -1.5]]).repeat(20_000, 1)
    with th.no_grad():
        # Skew the policy so that a uniform sampler would fail.
        model.policy.action_net.bias.copy_(th.tensor([1.5, -1.0]))
        probs = model.policy.get_distribution(observation[:1]).distribution.probs[0]
        actions, _ = model._sample_actions(observation)
    frequencies = th.bincount(actions, minlength=2).double() / len(actions)
    # 5 standard errors of a frequency estimated from 20,000 draws.
    th.testing.assert_close(frequencies, probs.double(), atol=5 * 0.5 / 20_000**0.5, rtol=0)
