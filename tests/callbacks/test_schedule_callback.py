"""ScheduleCallback on SB3's own algorithms (the rlrelax agents are covered in test_with_agents.py)."""

from pathlib import Path

import pytest
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, CheckpointCallback, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure

from rlrelax.callbacks import ScheduleCallback
from rlrelax.relax import LinearSchedule


class Recorder(BaseCallback):
    """Remember the value an attribute had at every step, after the schedule set it."""

    def __init__(self, attribute: str) -> None:
        super().__init__()
        self.attribute = attribute
        self.values: dict[int, float] = {}

    def _on_step(self) -> bool:
        self.values[self.num_timesteps] = getattr(self.model, self.attribute)
        return True


def test_linear_schedule_reaches_the_expected_values_at_the_expected_steps() -> None:
    model = PPO("MlpPolicy", "CartPole-v1", n_steps=100, batch_size=50, n_epochs=1, seed=0)
    recorder = Recorder("ent_coef")
    model.learn(1_000, callback=[ScheduleCallback("ent_coef", LinearSchedule(1.0, 0.1)), recorder])
    assert recorder.values[1] == pytest.approx(1.0 - 0.9 * 1 / 1_000)
    assert recorder.values[500] == pytest.approx(0.55)
    assert recorder.values[1_000] == pytest.approx(0.1)
    assert model.ent_coef == pytest.approx(0.1)


def test_logged_in_csv_and_tensorboard_next_to_eval_callback(tmp_path: Path) -> None:
    model = A2C("MlpPolicy", "CartPole-v1", seed=0)
    model.set_logger(configure(str(tmp_path), ["csv", "tensorboard"]))
    evaluation = EvalCallback(make_vec_env("CartPole-v1", seed=5), eval_freq=100, n_eval_episodes=1)
    model.learn(
        500, callback=CallbackList([ScheduleCallback("ent_coef", LinearSchedule(0.1, 0.0)), evaluation])
    )
    header = (tmp_path / "progress.csv").read_text().splitlines()[0].split(",")
    assert "schedule/ent_coef" in header and "eval/mean_reward" in header
    assert list(tmp_path.glob("events.out.tfevents.*"))


def test_continues_where_it_was_after_save_and_load(tmp_path: Path) -> None:
    model = PPO("MlpPolicy", "CartPole-v1", n_steps=100, batch_size=50, n_epochs=1, seed=0)
    checkpoint = CheckpointCallback(save_freq=400, save_path=str(tmp_path), name_prefix="ppo")
    model.learn(1_000, callback=[ScheduleCallback("ent_coef", LinearSchedule(1.0, 0.0)), checkpoint])

    resumed = PPO.load(tmp_path / "ppo_400_steps", env=make_vec_env("CartPole-v1", seed=0))
    assert resumed.ent_coef == pytest.approx(0.6)
    recorder = Recorder("ent_coef")
    schedule = ScheduleCallback("ent_coef", LinearSchedule(1.0, 0.0))
    resumed.learn(600, reset_num_timesteps=False, callback=[schedule, recorder])
    assert min(recorder.values) == 401
    assert recorder.values[401] == pytest.approx(1.0 - 401 / 1_000)
    assert resumed.ent_coef == pytest.approx(0.0)


def test_missing_attribute_is_an_error_when_training_starts() -> None:
    model = PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=64, seed=0)
    with pytest.raises(AttributeError, match="temperature"):
        model.learn(64, callback=ScheduleCallback("temperature", LinearSchedule(1.0, 0.1)))
    assert model.num_timesteps == 0


def test_attribute_that_is_not_a_number_is_refused() -> None:
    model = PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=64, seed=0)
    with pytest.raises(TypeError, match="clip_range"):
        model.learn(64, callback=ScheduleCallback("clip_range", LinearSchedule(0.2, 0.1)))


@pytest.mark.parametrize(
    ("algorithm", "attribute", "hint"),
    [(PPO, "learning_rate", "learning_rate="), (DQN, "exploration_rate", "exploration_fraction")],
)
def test_values_sb3_recomputes_are_refused_with_the_argument_to_use(
    algorithm: type, attribute: str, hint: str
) -> None:
    model = algorithm("MlpPolicy", "CartPole-v1", seed=0)
    with pytest.raises(ValueError, match=hint):
        model.learn(64, callback=ScheduleCallback(attribute, LinearSchedule(1.0, 0.1)))


def test_dqn_target_update_style_attribute_is_scheduled() -> None:
    model = DQN("MlpPolicy", "CartPole-v1", learning_starts=10, seed=0)
    recorder = Recorder("gamma")
    model.learn(200, callback=[ScheduleCallback("gamma", LinearSchedule(0.9, 0.99)), recorder])
    assert recorder.values[100] == pytest.approx(0.9 + 0.09 * 0.5)


def test_a_second_writer_is_detected() -> None:
    class Meddler(BaseCallback):
        def _on_step(self) -> bool:
            self.model.ent_coef = 0.5
            return True

    model = PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=64, seed=0)
    with pytest.raises(RuntimeError, match="something other than ScheduleCallback"):
        model.learn(128, callback=[ScheduleCallback("ent_coef", LinearSchedule(0.1, 0.0)), Meddler()])


@pytest.mark.parametrize("attribute", ["", "ent coef", "1abc"])
def test_bad_attribute_names_are_refused_at_construction(attribute: str) -> None:
    with pytest.raises(ValueError, match="attribute"):
        ScheduleCallback(attribute, LinearSchedule(1.0, 0.1))
