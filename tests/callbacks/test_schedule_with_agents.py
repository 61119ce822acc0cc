"""ScheduleCallback on the rlrelax agents: the scheduled value is the one they act and train with."""

import csv
from pathlib import Path
from typing import Any

import pytest
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure

from rlrelax.agents import REINFORCE, GumbelAC, SoftQ
from rlrelax.callbacks import ScheduleCallback
from rlrelax.relax import LinearSchedule


class Probe(BaseCallback):
    """Record ``read(model)`` after the schedule has set the attribute at each step."""

    def __init__(self, read: str) -> None:
        super().__init__()
        self.read = read
        self.values: dict[int, float] = {}

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        owner_path, _, name = self.read.rpartition(".")
        owner = self.model
        for part in filter(None, owner_path.split(".")):
            owner = getattr(owner, part)
        value = getattr(owner, name)
        self.values[self.num_timesteps] = float(value() if callable(value) else value)


def test_gumbel_ac_temperature_is_annealed() -> None:
    model = GumbelAC("MlpPolicy", "CartPole-v1", learning_starts=50, batch_size=32, seed=0)
    probe = Probe("_current_temperature")
    schedule = ScheduleCallback("temperature", LinearSchedule(1.0, 0.1))
    evaluation = EvalCallback(make_vec_env("CartPole-v1", seed=3), eval_freq=200, n_eval_episodes=1)
    model.learn(1_000, callback=CallbackList([schedule, probe, evaluation]))
    assert probe.values[500] == pytest.approx(0.55)
    assert model.temperature == pytest.approx(0.1)


def test_gumbel_ac_temperature_given_as_a_schedule_is_refused() -> None:
    model = GumbelAC("MlpPolicy", "CartPole-v1", temperature=LinearSchedule(1.0, 0.5), seed=0)
    with pytest.raises(TypeError, match="constructor"):
        model.learn(10, callback=ScheduleCallback("temperature", LinearSchedule(1.0, 0.1)))


def test_softq_acts_and_trains_with_the_scheduled_ent_coef() -> None:
    model = SoftQ("MlpPolicy", "CartPole-v1", learning_starts=50, batch_size=32, seed=0)
    probe = Probe("policy.ent_coef")
    model.learn(400, callback=[ScheduleCallback("ent_coef", LinearSchedule(0.1, 0.01)), probe])
    assert probe.values[200] == pytest.approx(0.1 - 0.09 * 200 / 400, rel=1e-6)
    assert model.policy.ent_coef == pytest.approx(0.01, rel=1e-6)


def test_softq_auto_ent_coef_is_not_a_number_to_schedule() -> None:
    model = SoftQ("MlpPolicy", "CartPole-v1", ent_coef="auto", seed=0)
    with pytest.raises(TypeError, match="ent_coef"):
        model.learn(10, callback=ScheduleCallback("ent_coef", LinearSchedule(0.1, 0.01)))


def test_reinforce_entropy_bonus_is_annealed() -> None:
    model = REINFORCE("MlpPolicy", "CartPole-v1", n_episodes=2, seed=0)
    probe = Probe("ent_coef")
    model.learn(600, callback=[ScheduleCallback("ent_coef", LinearSchedule(0.05, 0.0)), probe])
    for step, value in probe.values.items():
        assert value == pytest.approx(0.05 * (1 - step / 600))


@pytest.mark.parametrize(
    ("algorithm", "attribute", "kwargs"),
    [
        (REINFORCE, "ent_coef", {"n_episodes": 2}),
        (SoftQ, "ent_coef", {"learning_starts": 50, "batch_size": 32}),
        (GumbelAC, "temperature", {"learning_starts": 50, "batch_size": 32}),
        (PPO, "ent_coef", {"n_steps": 128, "batch_size": 64}),
        (DQN, "gamma", {"learning_starts": 50}),
    ],
)
def test_logged_in_csv_and_tensorboard_chained_with_eval_callback(
    algorithm: type[BaseAlgorithm], attribute: str, kwargs: dict[str, Any], tmp_path: Path
) -> None:
    model = algorithm("MlpPolicy", "CartPole-v1", seed=0, **kwargs)
    model.set_logger(configure(str(tmp_path), ["csv", "tensorboard"]))
    evaluation = EvalCallback(make_vec_env("CartPole-v1", seed=3), eval_freq=250, n_eval_episodes=1)
    model.learn(
        1_000, callback=CallbackList([ScheduleCallback(attribute, LinearSchedule(0.9, 0.5)), evaluation])
    )
    with open(tmp_path / "progress.csv") as file:
        rows = list(csv.DictReader(file))
    logged = [float(row[f"schedule/{attribute}"]) for row in rows if row.get(f"schedule/{attribute}")]
    assert logged and all(0.5 <= value <= 0.9 for value in logged)
    assert any(row.get("eval/mean_reward") for row in rows)
    assert list(tmp_path.glob("events.out.tfevents.*"))
    assert getattr(model, attribute) == pytest.approx(0.5)
