"""Stable-Baselines3 ``VecEnv`` adapter for the batched torch CartPole."""

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

from rlrelax.envs.cartpole import MAX_EPISODE_STEPS, TorchCartPoleVectorEnv


class CartPoleVecEnv(VecEnv):
    """CartPole-v1 for Stable-Baselines3: a :class:`TorchCartPoleVectorEnv` behind SB3's ``VecEnv`` API.

    The torch env runs in ``AutoresetMode.SAME_STEP``, which is SB3's convention: a sub-env that ends is
    reset in the same step, ``dones[i]`` is True, ``infos[i]["terminal_observation"]`` holds its final
    observation and ``infos[i]["TimeLimit.truncated"]`` says whether it was cut by the time limit rather
    than terminated. Observations, rewards and dones are numpy arrays, as SB3 expects. Wrap it in
    ``VecMonitor`` for episode statistics (``ep_rew_mean`` in SB3's logs).

    The sub-envs share one ``np_random``: ``seed(s)`` (SB3's ``set_random_seed`` calls it) seeds it with
    ``s`` at the next ``reset()``. As the sub-envs are one batched object, ``get_attr`` returns the batched
    env's attribute for each index, and ``set_attr`` and ``env_method`` act on it once and only for all
    indices.

    >>> from stable_baselines3 import PPO
    >>> model = PPO("MlpPolicy", CartPoleVecEnv(8), seed=0).learn(10_000)

    :param num_envs: number of CartPoles
    :param max_episode_steps: truncation length (500 as in CartPole-v1)
    :param sutton_barto_reward: 0 per step and -1 on termination instead of +1 per step
    :param device: torch device of the state
    :param dtype: torch dtype of the state (float64 follows Gymnasium's trajectories to rounding)
    :param compile: fuse the step with ``torch.compile``
    """

    def __init__(
        self,
        num_envs: int = 1,
        *,
        max_episode_steps: int = MAX_EPISODE_STEPS,
        sutton_barto_reward: bool = False,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float64,
        compile: bool = False,
    ) -> None:
        self.env = TorchCartPoleVectorEnv(
            num_envs,
            max_episode_steps=max_episode_steps,
            sutton_barto_reward=sutton_barto_reward,
            autoreset_mode=AutoresetMode.SAME_STEP,
            device=device,
            dtype=dtype,
            compile=compile,
        )
        self._actions: np.ndarray | None = None
        super().__init__(num_envs, self.env.single_observation_space, self.env.single_action_space)

    def reset(self) -> VecEnvObs:
        """Reset every sub-env, seeding with the seed given to :meth:`seed` if any.

        :return: observations ``(num_envs, 4)`` float32
        """
        options = self._options[0] or None
        obs, _ = self.env.reset(seed=self._seeds[0], options=options)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return obs.cpu().numpy()

    def step_async(self, actions: np.ndarray) -> None:
        """Store the actions for :meth:`step_wait`.

        :param actions: ``(num_envs,)`` integer actions in ``{0, 1}``
        """
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        """Step every sub-env with the stored actions, resetting the ones that end.

        :return: observations, rewards, dones and one info dict per sub-env
        """
        actions, self._actions = self._actions, None
        if actions is None:
            raise RuntimeError("Call step_async before step_wait.")
        obs, reward, terminated, truncated, info = self.env.step(actions)
        dones = (terminated | truncated).cpu().numpy()
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if "final_obs" in info:
            final_obs = info["final_obs"].cpu().numpy()
            time_limited = (truncated & ~terminated).cpu().numpy()
            for i in np.flatnonzero(dones):
                infos[i]["terminal_observation"] = final_obs[i]
                infos[i]["TimeLimit.truncated"] = bool(time_limited[i])
        return obs.cpu().numpy(), reward.cpu().numpy(), dones, infos

    def close(self) -> None:
        """Close the torch env."""
        self.env.close()

    def _all_indices(self, indices: VecEnvIndices, what: str) -> None:
        if sorted(self._get_indices(indices)) != list(range(self.num_envs)):
            raise ValueError(
                f"{what} acts on all {self.num_envs} batched sub-envs at once, got indices={indices!r}"
            )

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """Return the batched env's attribute once per index.

        :param attr_name: attribute of :class:`TorchCartPoleVectorEnv`
        :param indices: sub-env indices
        :return: the attribute's value for each index
        """
        value = getattr(self.env, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute of the batched env (only for all indices).

        :param attr_name: attribute of :class:`TorchCartPoleVectorEnv`
        :param value: new value
        :param indices: must cover every sub-env
        """
        self._all_indices(indices, "set_attr")
        setattr(self.env, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        """Call a method of the batched env once (only for all indices).

        :param method_name: method of :class:`TorchCartPoleVectorEnv`
        :param method_args: positional arguments
        :param indices: must cover every sub-env
        :param method_kwargs: keyword arguments
        :return: the result, repeated for each sub-env
        """
        self._all_indices(indices, "env_method")
        result = getattr(self.env, method_name)(*method_args, **method_kwargs)
        return [result for _ in range(self.num_envs)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """No Gymnasium wrapper sits inside the batched env.

        :param wrapper_class: the wrapper asked about
        :param indices: sub-env indices
        :return: False for each index
        """
        return [False for _ in self._get_indices(indices)]
