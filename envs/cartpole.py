"""CartPole-v1 in torch: Gymnasium's physics for one env, for N envs at once, and as a differentiable step.

The constants, the Euler integrator, the termination thresholds, the reward and the 500-step limit are
Gymnasium's ``gymnasium/envs/classic_control/cartpole.py`` (CartPole-v1), written with the same operations
in the same order so that float64 trajectories agree with Gymnasium's to rounding.
"""

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.envs.classic_control import utils
from gymnasium.envs.classic_control.cartpole import CartPoleEnv as GymnasiumCartPoleEnv
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

# Gymnasium CartPole-v1's constants, computed with the same expressions so that they round the same way.
GRAVITY = 9.8
MASSCART = 1.0
MASSPOLE = 0.1
TOTAL_MASS = MASSPOLE + MASSCART
LENGTH = 0.5  # half the pole's length
POLEMASS_LENGTH = MASSPOLE * LENGTH
FORCE_MAG = 10.0
TAU = 0.02  # seconds between state updates
THETA_THRESHOLD_RADIANS = 12 * 2 * math.pi / 360
X_THRESHOLD = 2.4
MAX_EPISODE_STEPS = 500

# Angle limit at twice the termination threshold so that the failing observation is still within bounds.
# Velocities are bounded by the largest float32 rather than Gymnasium's inf: the observations are finite
# float32, so the bound is exact, and Gymnasium's env checker warns about infinite bounds.
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_OBS_HIGH = np.array(
    [X_THRESHOLD * 2, _FLOAT32_MAX, THETA_THRESHOLD_RADIANS * 2, _FLOAT32_MAX], dtype=np.float32
)
_RESET_LOW, _RESET_HIGH = -0.05, 0.05


def _euler_step(
    x: torch.Tensor, x_dot: torch.Tensor, theta: torch.Tensor, theta_dot: torch.Tensor, force: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    # Gymnasium's expressions term by term (https://coneural.org/florian/papers/05_cart_pole.pdf); any
    # reordering changes the rounding and, through the chaotic dynamics, the trajectory.
    costheta = torch.cos(theta)
    sintheta = torch.sin(theta)
    temp = (force + POLEMASS_LENGTH * torch.square(theta_dot) * sintheta) / TOTAL_MASS
    thetaacc = (GRAVITY * sintheta - costheta * temp) / (
        LENGTH * (4.0 / 3.0 - MASSPOLE * torch.square(costheta) / TOTAL_MASS)
    )
    xacc = temp - POLEMASS_LENGTH * thetaacc * costheta / TOTAL_MASS
    return x + TAU * x_dot, x_dot + TAU * xacc, theta + TAU * theta_dot, theta_dot + TAU * thetaacc


def _terminated(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    return (
        (x < -X_THRESHOLD)
        | (x > X_THRESHOLD)
        | (theta < -THETA_THRESHOLD_RADIANS)
        | (theta > THETA_THRESHOLD_RADIANS)
    )


def cartpole_step(state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One differentiable CartPole-v1 step for relaxed (or hard) actions.

    The force on the cart is ``FORCE_MAG * (p_right - p_left)``: a one-hot action gives Gymnasium's
    ``±10`` exactly (so this equals the environments' step), and relaxed probabilities, e.g. from
    Gumbel-softmax, give a force in between, so that a loss on the returned state can be backpropagated
    to the actions and to the incoming state over a horizon. Termination is returned as a mask; it has no
    gradient. The values of ``action`` are not checked, so any real weights are accepted.

    >>> state = torch.zeros(8, 4)
    >>> probs = torch.nn.functional.gumbel_softmax(torch.zeros(8, 2, requires_grad=True), tau=0.5)
    >>> next_state, terminated = cartpole_step(state, probs)

    :param state: ``(..., 4)`` floating tensor of ``(x, x_dot, theta, theta_dot)``
    :param action: ``(..., 2)`` tensor of ``(p_left, p_right)`` in the dtype and batch shape of ``state``
    :return: the next state ``(..., 4)`` and the boolean termination mask ``(...)``
    """
    if not isinstance(state, torch.Tensor) or not isinstance(action, torch.Tensor):
        raise TypeError(f"state and action must be tensors, got {type(state)} and {type(action)}")
    if not state.is_floating_point() or state.shape[-1:] != (4,):
        raise ValueError(
            f"state must be a floating tensor of shape (..., 4), got {state.dtype} {tuple(state.shape)}"
        )
    if action.dtype != state.dtype or action.shape != (*state.shape[:-1], 2):
        raise ValueError(
            f"action must be a {state.dtype} tensor of shape {(*state.shape[:-1], 2)} (p_left, p_right), "
            f"got {action.dtype} {tuple(action.shape)}"
        )
    x, x_dot, theta, theta_dot = state.unbind(-1)
    force = FORCE_MAG * (action[..., 1] - action[..., 0])
    next_state = torch.stack(_euler_step(x, x_dot, theta, theta_dot, force), dim=-1)
    return next_state, _terminated(next_state[..., 0], next_state[..., 2])


def _vector_step(
    state: torch.Tensor,
    fresh: torch.Tensor,
    action: torch.Tensor,
    steps: torch.Tensor,
    prev_done: torch.Tensor,
    max_episode_steps: int,
    sutton_barto_reward: bool,
) -> tuple[
    torch.Tensor,
    torch.Tensor,
    torch.Tensor,
    torch.Tensor,
    torch.Tensor,
    torch.Tensor,
    torch.Tensor,
    torch.Tensor,
]:
    # One function for the whole step, resets included, so that torch.compile fuses it into a single loop.
    # As in Gymnasium's CartPoleVectorEnv, the sub-envs in `prev_done` take their start state from `fresh`
    # instead of stepping, with zero reward, termination and truncation.
    x, x_dot, theta, theta_dot = state.unbind(0)
    force = (action.to(state.dtype) * 2.0 - 1.0) * FORCE_MAG
    x, x_dot, theta, theta_dot = _euler_step(x, x_dot, theta, theta_dot, force)
    next_state = torch.where(prev_done, fresh, torch.stack((x, x_dot, theta, theta_dot)))
    running = ~prev_done
    terminated = _terminated(x, theta) & running
    steps = torch.where(prev_done, 0, steps + 1)
    truncated = (steps >= max_episode_steps) & running
    reward = -terminated.to(torch.float32) if sutton_barto_reward else running.to(torch.float32)
    obs = next_state.T.to(torch.float32).contiguous()
    done = terminated | truncated
    # The count of ended sub-envs comes out of the fused loop, so reading it on the host costs no extra pass.
    return next_state, obs, reward, terminated, truncated, steps, done, done.sum()


class TorchCartPoleVectorEnv(VectorEnv):
    """
    ## Description

    ``num_envs`` copies of Gymnasium's CartPole-v1 (Barto, Sutton and Anderson, 1983, "Neuronlike adaptive
    elements that can solve difficult learning control problems") held in torch tensors on any device and
    stepped together: Gymnasium's constants, Euler integrator, termination thresholds, reward and
    500-step truncation. Observations, rewards and flags are returned as torch tensors on ``device``
    (wrap with ``gymnasium.wrappers.vector.TorchToNumpy`` for numpy; :class:`rlrelax.envs.CartPoleVecEnv`
    is the Stable-Baselines3 adapter).

    Faithfulness: in float64 (the default), from the same state under the same actions, the trajectory
    agrees with Gymnasium's ``CartPoleEnv`` to 1e-9 while both run and episodes end on the same step. The
    upright pole is unstable (a difference grows about 8% a step), so how long the agreement lasts depends
    on rounding. Measured over 64 trajectories of 500 steps under actions that keep the pole up
    (``tests/envs/test_envs_cartpole.py``): the eager step does numpy's arithmetic in numpy's order, and 62
    of the 64 stayed bit-identical for all 500 steps, the other 2 within 1e-9 for 228 steps at worst (torch's
    and the C library's cos or sin differ in the last bit there); the fused step (``compile=True``) rounds
    differently from the first step and stays within 1e-9 for 214 steps at worst, 243 in the median. A
    random-action episode (about 22 steps) stays within rounding throughout.

    ## Action Space

    A ``(num_envs,)`` bool or integer tensor (or numpy array) of ``{0, 1}``: 0 pushes the cart to the left,
    1 to the right. Anything else raises ``ValueError``.

    ## Observation Space

    A ``(num_envs, 4)`` float32 tensor of cart position, cart velocity, pole angle and pole angular velocity,
    bounded by ±4.8, ±3.4e38, ±0.418 rad, ±3.4e38: Gymnasium's bounds, with the largest finite float32
    in place of its ±inf (which Gymnasium's env checker flags).

    ## Rewards

    ``+1`` for every step, including the terminating one; with ``sutton_barto_reward=True``, ``0`` for
    every step and ``-1`` for the terminating one. A sub-env's reset step (``NEXT_STEP`` mode) gives 0.

    ## Starting State

    Each state variable uniform in ``(-0.05, 0.05)`` (``options={"low": ..., "high": ...}`` in ``reset``
    changes the bounds). The start states are drawn from the env's ``np_random`` (Gymnasium's seeded
    generator, never a global RNG) with the same calls as Gymnasium's ``CartPoleVectorEnv``, so the same
    seed gives the same start states, and in ``NEXT_STEP`` mode the same reset draws, as Gymnasium's.

    ## Episode End

    1. Termination: the pole angle leaves ±12°.
    2. Termination: the cart position leaves ±2.4.
    3. Truncation: the episode reaches ``max_episode_steps`` (500) steps.

    ## Autoreset

    ``metadata["autoreset_mode"]`` is the ``autoreset_mode`` argument. ``AutoresetMode.NEXT_STEP`` (the
    default, as Gymnasium's ``CartPoleVectorEnv``): a sub-env that ended is reset by the next ``step``,
    which ignores its action and returns its start state with zero reward. ``AutoresetMode.SAME_STEP``: it
    is reset in the step where it ended, which returns the start state and puts the final observation in
    ``info["final_obs"]`` (a ``(num_envs, 4)`` tensor, meaningful where the mask ``info["_final_obs"]``
    is True); both keys are present only when some sub-env ended.

    ## Arguments

    ``num_envs``; ``max_episode_steps=500``; ``sutton_barto_reward=False``; ``autoreset_mode``;
    ``device="cpu"``; ``dtype=torch.float64`` (the state's dtype; float32 is faster and drifts from
    Gymnasium's float64 state by float32 rounding); ``compile=False`` (fuse the step with
    ``torch.compile``; the first step of a process compiles, for seconds to a minute, and needs a C++
    compiler; ``benchmarks/bench_cartpole.py`` measures the speed).

    >>> envs = gymnasium.make_vec(
    ...     "rlrelax/CartPole-v1", num_envs=4096, vectorization_mode="vector_entry_point", compile=True
    ... )

    ## Version History

    * v1: Gymnasium CartPole-v1's physics, reward and 500-step limit.
    """

    # Not a ClassVar: __init__ replaces it per instance with the instance's autoreset mode.
    metadata: dict[str, Any] = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}  # noqa: RUF012

    def __init__(
        self,
        num_envs: int = 1,
        max_episode_steps: int = MAX_EPISODE_STEPS,
        render_mode: str | None = None,
        sutton_barto_reward: bool = False,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float64,
        compile: bool = False,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        if (
            isinstance(max_episode_steps, bool)
            or not isinstance(max_episode_steps, int)
            or max_episode_steps < 1
        ):
            raise ValueError(f"max_episode_steps must be a positive int, got {max_episode_steps!r}")
        if render_mode is not None:
            raise ValueError(f"render_mode must be None (rendering is not implemented), got {render_mode!r}")
        mode = AutoresetMode(autoreset_mode)
        if mode not in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
            raise ValueError(f"autoreset_mode must be NEXT_STEP or SAME_STEP, got {autoreset_mode!r}")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")

        self.num_envs = num_envs
        self.max_episode_steps = max_episode_steps
        self.render_mode = render_mode
        self.sutton_barto_reward = sutton_barto_reward
        self.autoreset_mode = mode
        self.metadata = {**self.metadata, "autoreset_mode": mode}
        self.device = torch.device(device)
        self.dtype = dtype
        self.compile = compile
        # dynamic=None compiles for the first shape and generalises to any num_envs on the second.
        self._step_fn = torch.compile(_vector_step) if compile else _vector_step

        self.single_action_space = spaces.Discrete(2)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.single_observation_space = spaces.Box(-_OBS_HIGH, _OBS_HIGH, dtype=np.float32)
        self.observation_space = batch_space(self.single_observation_space, num_envs)

        self.low, self.high = _RESET_LOW, _RESET_HIGH
        # (4, num_envs) like Gymnasium's CartPoleVectorEnv.state: each variable contiguous for the kernel.
        self.state: torch.Tensor | None = None
        # Start states for the sub-envs reset at the next step (the columns of `prev_done`; NEXT_STEP mode).
        self._fresh = torch.zeros((4, num_envs), dtype=dtype, device=self.device)
        self.steps = torch.zeros(num_envs, dtype=torch.int32, device=self.device)
        # Sub-envs that ended in the last step and are reset by the next one; never set in SAME_STEP mode.
        self.prev_done = torch.zeros(num_envs, dtype=torch.bool, device=self.device)
        self._n_pending = 0

    def _start_states(self, n: int) -> torch.Tensor:
        # Gymnasium's draw, (4, n) row by row, so that the same seed gives the same start states.
        draws = self.np_random.uniform(low=self.low, high=self.high, size=(4, n))
        return torch.from_numpy(draws).to(device=self.device, dtype=self.dtype)

    def _as_actions(self, actions: Any) -> torch.Tensor:
        if isinstance(actions, np.ndarray):
            actions = torch.from_numpy(actions)
        if not isinstance(actions, torch.Tensor):
            raise TypeError(f"actions must be a torch.Tensor or numpy array, got {type(actions).__name__}")
        if actions.shape != (self.num_envs,):
            raise ValueError(f"actions must have shape ({self.num_envs},), got {tuple(actions.shape)}")
        if actions.is_floating_point() or actions.is_complex():
            raise ValueError(f"actions must be bool or integer in {{0, 1}}, got dtype {actions.dtype}")
        actions = actions.to(self.device)
        if actions.dtype != torch.bool:
            low, high = torch.aminmax(actions)
            if int(low) < 0 or int(high) > 1:
                bad = int(torch.nonzero((actions < 0) | (actions > 1))[0])
                raise ValueError(f"actions must be in {{0, 1}}, got {int(actions[bad])} for sub-env {bad}")
        return actions

    def step(
        self, actions: torch.Tensor | np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Step every sub-env and autoreset the ones that ended (see the class docstring for the mode).

        :param actions: ``(num_envs,)`` bool or integer actions in ``{0, 1}``
        :return: observations ``(num_envs, 4)`` float32, rewards float32, terminated, truncated, info
        """
        actions = self._as_actions(actions)
        if self.state is None:
            raise RuntimeError("Call reset before step.")
        same_step = self.autoreset_mode == AutoresetMode.SAME_STEP
        if self._n_pending:
            # Gymnasium's (4, k) draw fills the pending columns row by row, as masked_scatter_ does.
            self._fresh.masked_scatter_(self.prev_done, self._start_states(self._n_pending))
        state, obs, reward, terminated, truncated, steps, done, n_done = self._step_fn(
            self.state,
            self._fresh,
            actions,
            self.steps,
            self.prev_done,
            self.max_episode_steps,
            self.sutton_barto_reward,
        )
        info: dict[str, Any] = {}
        # The one host sync per step: it keeps steps without an ended episode free of indexing and RNG calls.
        n_ended = int(n_done)
        if same_step:
            if n_ended:
                info["final_obs"], info["_final_obs"] = obs.clone(), done
                start = self._start_states(n_ended)
                state.masked_scatter_(done, start)
                obs.masked_scatter_(done[:, None], start.T.to(torch.float32).contiguous())
                steps.masked_fill_(done, 0)
        else:
            self.prev_done, self._n_pending = done, n_ended
        self.state, self.steps = state, steps
        return obs, reward, terminated, truncated, info

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Reset every sub-env.

        :param seed: seeds ``np_random``, from which all start states are drawn
        :param options: ``{"low": float, "high": float}`` bounds of the uniform start state
        :return: observations ``(num_envs, 4)`` float32 and an empty info dict
        """
        super().reset(seed=seed)
        self.low, self.high = utils.maybe_parse_reset_bounds(options, _RESET_LOW, _RESET_HIGH)
        self.state = self._start_states(self.num_envs)
        self._fresh = torch.zeros_like(self.state)
        self.steps = torch.zeros(self.num_envs, dtype=torch.int32, device=self.device)
        self.prev_done = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        self._n_pending = 0
        return self.state.T.to(torch.float32).contiguous(), {}


class TorchCartPoleEnv(gym.Env[np.ndarray, np.int64]):
    """
    ## Description

    One CartPole-v1 (Barto, Sutton and Anderson, 1983) stepped with the torch physics of
    :class:`TorchCartPoleVectorEnv` in float64, with numpy observations: the single-env entry point of
    ``rlrelax/CartPole-v1``, so that ``gymnasium.make("rlrelax/CartPole-v1")`` works and can be checked.
    Same spaces, rewards, start state and episode end as :class:`TorchCartPoleVectorEnv`; the 500-step
    truncation comes from the registration's ``TimeLimit``. Start states are drawn from ``np_random``
    exactly as Gymnasium's ``CartPoleEnv`` draws them.

    ## Action Space

    ``Discrete(2)``: 0 pushes the cart to the left, 1 to the right; anything else raises ``ValueError``.

    ## Observation Space

    ``Box((4,), float32)``: cart position, cart velocity, pole angle, pole angular velocity, bounded as
    in :class:`TorchCartPoleVectorEnv`.

    ## Rewards

    ``+1`` per step including the terminating one (``sutton_barto_reward=True``: 0, and -1 on termination).

    ## Starting State

    Uniform in ``(-0.05, 0.05)`` (``options={"low": ..., "high": ...}`` changes the bounds).

    ## Episode End

    Termination when the pole angle leaves ±12° or the cart position leaves ±2.4; truncation at 500 steps
    through registration. Stepping a terminated episode raises ``RuntimeError``.

    ## Version History

    * v1: Gymnasium CartPole-v1's physics, reward and 500-step limit.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 50}  # noqa: RUF012 (per instance)

    def __init__(self, sutton_barto_reward: bool = False, render_mode: str | None = None) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None, 'human' or 'rgb_array', got {render_mode!r}")
        self.sutton_barto_reward = sutton_barto_reward
        self.render_mode = render_mode
        self._renderer: GymnasiumCartPoleEnv | None = None
        self.action_space = spaces.Discrete(2)
        self.observation_space = spaces.Box(-_OBS_HIGH, _OBS_HIGH, dtype=np.float32)
        self.state: np.ndarray | None = None
        self._terminated = False

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Advance the cart-pole by one Euler step of 0.02 s.

        :param action: 0 (push left) or 1 (push right)
        :return: observation, reward, terminated, truncated (always False), info
        """
        if not self.action_space.contains(action):
            raise ValueError(f"action must be 0 or 1, got {action!r} ({type(action).__name__})")
        if self.state is None:
            raise RuntimeError("Call reset before step.")
        if self._terminated:
            raise RuntimeError("The episode has terminated; call reset before step.")
        force = torch.tensor(FORCE_MAG if int(action) == 1 else -FORCE_MAG, dtype=torch.float64)
        x, x_dot, theta, theta_dot = torch.from_numpy(self.state).unbind(0)
        next_state = _euler_step(x, x_dot, theta, theta_dot, force)
        self.state = torch.stack(next_state).numpy()
        self._terminated = bool(_terminated(next_state[0], next_state[2]))
        reward = (-1.0 if self._terminated else 0.0) if self.sutton_barto_reward else 1.0
        return self.state.astype(np.float32), reward, self._terminated, False, {}

    def render(self) -> np.ndarray | None:
        """Draw the current state with Gymnasium's own CartPole renderer (needs ``pygame``).

        :return: an RGB array for ``render_mode="rgb_array"``, else ``None``
        """
        if self.render_mode is None:
            gym.logger.warn("render() was called without a render_mode; pass render_mode to gymnasium.make")
            return None
        if self._renderer is None:
            self._renderer = GymnasiumCartPoleEnv(render_mode=self.render_mode)
        self._renderer.state = self.state
        return self._renderer.render()

    def close(self) -> None:
        """Close the renderer's window, if one was opened."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Draw a start state from ``np_random``.

        :param seed: seeds ``np_random``
        :param options: ``{"low": float, "high": float}`` bounds of the uniform start state
        :return: observation and an empty info dict
        """
        super().reset(seed=seed)
        low, high = utils.maybe_parse_reset_bounds(options, _RESET_LOW, _RESET_HIGH)
        self.state = self.np_random.uniform(low=low, high=high, size=(4,))
        self._terminated = False
        return self.state.astype(np.float32), {}
