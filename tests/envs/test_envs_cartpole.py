"""The torch CartPole against Gymnasium's: constants, trajectories, autoreset, seeding, errors, gradients."""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.envs.classic_control.cartpole import CartPoleEnv, CartPoleVectorEnv
from gymnasium.vector import AutoresetMode

import rlrelax.envs.cartpole as cp
from rlrelax.envs import TorchCartPoleEnv, TorchCartPoleVectorEnv, cartpole_step

# Figures documented in TorchCartPoleVectorEnv's docstring: under actions that keep the pole up, the state
# stays within TOLERANCE of Gymnasium's for at least this many steps, over 64 trajectories. Eager mode does
# Gymnasium's float64 arithmetic in the same order: 62 of the 64 trajectories stay bit-identical for the
# whole 500-step episode, and the 2 others first differ in the last bit at steps 13 and later (where
# torch's and the C library's cos or sin round differently), then drift out of 1e-9 after 228 steps at
# worst; so eager mode is held to the whole episode on all but a few trajectories. The fused compiled step
# reorders the arithmetic from the first step (measured 214 at worst, 243 median). The bars keep a margin
# below the worst measured.
TOLERANCE = 1e-9
MIN_STEPS_WITHIN_TOLERANCE = {False: 200, True: 150}
# Eager mode only: trajectories (of 64) that must stay within tolerance for the whole episode.
MIN_WHOLE_EPISODES_EAGER = 60


def balancing_actions(seed: int, n_steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run Gymnasium's CartPoleEnv from ``reset(seed)`` under a linear controller that keeps the pole up.

    :return: start state (4,), actions (n_steps,), states after each step (n_steps, 4)
    """
    env = CartPoleEnv()
    env.reset(seed=seed)
    assert env.state is not None
    start = env.state.copy()
    actions, states = [], []
    for _ in range(n_steps):
        _, x_dot, theta, theta_dot = env.state
        actions.append(int(theta + 0.5 * theta_dot + 0.1 * x_dot > 0))
        _, _, terminated, _, _ = env.step(actions[-1])
        assert not terminated
        states.append(env.state.copy())
    return start, np.array(actions), np.array(states)


def test_constants_are_gymnasiums() -> None:
    ref = CartPoleEnv()
    ours = (cp.GRAVITY, cp.MASSCART, cp.MASSPOLE, cp.TOTAL_MASS, cp.LENGTH, cp.POLEMASS_LENGTH, cp.FORCE_MAG)
    theirs = (ref.gravity, ref.masscart, ref.masspole, ref.total_mass, ref.length, ref.polemass_length)
    assert ours == (*theirs, ref.force_mag)
    assert (ref.tau, ref.theta_threshold_radians, ref.x_threshold) == (
        cp.TAU,
        cp.THETA_THRESHOLD_RADIANS,
        cp.X_THRESHOLD,
    )
    assert ref.kinematics_integrator == "euler"
    limits = {gym.spec(i).max_episode_steps for i in ("CartPole-v1", "rlrelax/CartPole-v1")}
    assert limits == {cp.MAX_EPISODE_STEPS}


@pytest.mark.parametrize("compile", [False, True])
def test_stays_within_tolerance_of_cartpole_env_over_a_balanced_horizon(compile: bool) -> None:
    n, horizon = 64, 500
    runs = [balancing_actions(seed, horizon) for seed in range(n)]
    env = TorchCartPoleVectorEnv(n, compile=compile)
    env.reset(seed=0)
    env.state = torch.tensor(np.stack([start for start, _, _ in runs], axis=1))
    actions = np.stack([a for _, a, _ in runs], axis=1)
    expected = np.stack([s for _, _, s in runs], axis=2)  # (horizon, 4, n)
    first_outside = np.full(n, horizon)
    for t in range(horizon):
        _, _, terminated, truncated, _ = env.step(actions[t])
        assert env.state is not None
        error = np.abs(env.state.numpy() - expected[t]).max(axis=0)
        first_outside = np.where((error > TOLERANCE) & (first_outside == horizon), t, first_outside)
        within = torch.from_numpy(first_outside == horizon)
        # While within tolerance the episode runs on, as Gymnasium's does, and CartPole-v1 truncates after
        # the 500th step, on the same step as Gymnasium's TimeLimit.
        assert not terminated[within].any()
        assert truncated[within].eq(t == horizon - 1).all()
    steps = f"{first_outside.min()} steps (median {np.median(first_outside)})"
    print(f"compile={compile}: within {TOLERANCE} of Gymnasium's CartPoleEnv for {steps}")
    assert first_outside.min() >= MIN_STEPS_WITHIN_TOLERANCE[compile]
    if not compile:
        assert (first_outside == horizon).sum() >= MIN_WHOLE_EPISODES_EAGER


@pytest.mark.parametrize("compile", [False, True])
def test_random_episodes_agree_with_cartpole_env_and_end_on_the_same_step(compile: bool) -> None:
    n, horizon = 64, 200
    rng = np.random.default_rng(1)
    actions = rng.integers(0, 2, size=(horizon, n))
    starts, lengths, states = [], [], np.full((horizon, 4, n), np.nan)
    for i in range(n):
        ref = CartPoleEnv()
        ref.reset(seed=1000 + i)
        assert ref.state is not None
        starts.append(ref.state.copy())
        for t in range(horizon):
            _, reward, terminated, _, _ = ref.step(int(actions[t, i]))
            assert reward == 1.0
            states[t, :, i] = ref.state
            if terminated:
                lengths.append(t + 1)
                break
    assert len(lengths) == n  # every random episode ended within the horizon

    env = TorchCartPoleVectorEnv(n, compile=compile)
    env.reset(seed=0)
    env.state = torch.tensor(np.stack(starts, axis=1))
    ended_at = np.zeros(n, dtype=int)
    for t in range(max(lengths)):
        _, reward, terminated, truncated, _ = env.step(actions[t])
        assert env.state is not None
        running = ended_at == 0
        np.testing.assert_allclose(
            env.state.numpy()[:, running], states[t][:, running], rtol=0, atol=TOLERANCE
        )
        np.testing.assert_array_equal(reward.numpy()[running], 1.0)
        assert not truncated.any()
        ended_at[running & terminated.numpy()] = t + 1
    np.testing.assert_array_equal(ended_at, lengths)


# Compiled tests share one configuration (64 envs), as each new one costs a compilation of seconds.
@pytest.mark.parametrize(("sutton_barto_reward", "compile"), [(False, False), (True, False), (False, True)])
def test_matches_gymnasium_vector_env_including_autoresets(sutton_barto_reward: bool, compile: bool) -> None:
    """Same seed and actions: same start states, same reset draws, same rewards and flags, to rounding."""
    n, horizon = 64, 300
    kwargs = {"max_episode_steps": 30, "sutton_barto_reward": sutton_barto_reward}
    ref = CartPoleVectorEnv(n, **kwargs)
    env = TorchCartPoleVectorEnv(n, compile=compile, **kwargs)
    assert env.metadata["autoreset_mode"] == ref.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    ref_obs, _ = ref.reset(seed=7)
    obs, _ = env.reset(seed=7)
    np.testing.assert_array_equal(obs.numpy(), ref_obs)
    rng = np.random.default_rng(2)
    seen_termination = seen_truncation = False
    for _ in range(horizon):
        action = rng.integers(0, 2, size=n)
        ref_obs, ref_reward, ref_terminated, ref_truncated, _ = ref.step(action)
        obs, reward, terminated, truncated, _ = env.step(torch.from_numpy(action))
        assert env.state is not None and ref.state is not None
        np.testing.assert_allclose(env.state.numpy(), ref.state, rtol=0, atol=TOLERANCE)
        np.testing.assert_allclose(obs.numpy(), ref_obs, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(reward.numpy(), ref_reward)
        np.testing.assert_array_equal(terminated.numpy(), ref_terminated)
        np.testing.assert_array_equal(truncated.numpy(), ref_truncated)
        assert obs.dtype == reward.dtype == torch.float32
        seen_termination |= bool(ref_terminated.any())
        seen_truncation |= bool(ref_truncated.any())
    assert seen_termination and seen_truncation


def test_same_step_autoreset_reports_the_final_observation() -> None:
    n = 32
    next_step = TorchCartPoleVectorEnv(n, max_episode_steps=15)
    same_step = TorchCartPoleVectorEnv(n, max_episode_steps=15, autoreset_mode="SameStep")
    assert same_step.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert TorchCartPoleVectorEnv.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    next_step.reset(seed=3)
    same_step.reset(seed=3)
    rng = np.random.default_rng(3)
    first_episode = torch.ones(n, dtype=torch.bool)  # the two envs agree until a sub-env's first end
    while first_episode.any():
        action = torch.from_numpy(rng.integers(0, 2, size=n))
        obs_n, rew_n, term_n, trunc_n, info_n = next_step.step(action)
        obs_s, rew_s, term_s, trunc_s, info_s = same_step.step(action)
        assert info_n == {}
        assert term_s[first_episode].equal(term_n[first_episode])
        assert trunc_s[first_episode].equal(trunc_n[first_episode])
        assert rew_s[first_episode].equal(rew_n[first_episode])
        done = term_s | trunc_s
        if not done.any():
            assert "final_obs" not in info_s and "_final_obs" not in info_s
            assert obs_s[first_episode].equal(obs_n[first_episode])
            continue
        assert info_s["_final_obs"].equal(done)
        ended = done & first_episode
        assert info_s["final_obs"][ended].equal(obs_n[ended])
        assert obs_s[~done & first_episode].equal(obs_n[~done & first_episode])
        # The returned observation of an ended sub-env is a fresh start state, its step count back at 0.
        assert (obs_s[done].abs() <= 0.05).all() and not obs_s[done].equal(info_s["final_obs"][done])
        assert same_step.steps[done].eq(0).all() and same_step.steps[~done].gt(0).all()
        first_episode &= ~done


def rollout(env: TorchCartPoleVectorEnv, seed: int, n_steps: int) -> list[torch.Tensor]:
    """Observations of a seeded rollout under fixed random actions (which trigger many autoresets)."""
    observations = [env.reset(seed=seed)[0]]
    rng = np.random.default_rng(0)
    for _ in range(n_steps):
        observations.append(env.step(rng.integers(0, 2, size=env.num_envs))[0])
    return observations


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_seeded_resets_are_reproducible(mode: AutoresetMode) -> None:
    env = TorchCartPoleVectorEnv(16, autoreset_mode=mode)
    first, again = rollout(env, 5, 100), rollout(TorchCartPoleVectorEnv(16, autoreset_mode=mode), 5, 100)
    assert all(a.equal(b) for a, b in zip(first, again, strict=True))
    assert not rollout(env, 6, 0)[0].equal(first[0])
    # Options bound the start state as in Gymnasium.
    obs, _ = env.reset(seed=5, options={"low": -0.2, "high": 0.2})
    ref_obs, _ = CartPoleVectorEnv(16).reset(seed=5, options={"low": -0.2, "high": 0.2})
    np.testing.assert_array_equal(obs.numpy(), ref_obs)


@pytest.mark.parametrize(
    ("action", "error"),
    [
        (np.array([0, 2, 1]), ValueError),
        (torch.tensor([0, -1, 1]), ValueError),
        (np.array([0.0, 1.0, 1.0]), ValueError),
        (torch.tensor([[0, 1, 1]]), ValueError),
        (np.array([0, 1]), ValueError),
        ([0, 1, 1], TypeError),
    ],
)
def test_invalid_actions_raise(action: object, error: type[Exception]) -> None:
    env = TorchCartPoleVectorEnv(3)
    env.reset(seed=0)
    state = env.state
    with pytest.raises(error, match="actions"):
        env.step(action)  # type: ignore[arg-type]
    assert env.state is state  # nothing was stepped


def test_bool_and_integer_actions_push_the_same_way() -> None:
    as_bool, as_int = TorchCartPoleVectorEnv(4), TorchCartPoleVectorEnv(4)
    as_bool.reset(seed=0)
    as_int.reset(seed=0)
    obs_b = as_bool.step(torch.tensor([True, False, True, False]))[0]
    obs_i = as_int.step(np.array([1, 0, 1, 0], dtype=np.uint8))[0]
    assert obs_b.equal(obs_i)


def test_step_before_reset_and_bad_arguments_raise() -> None:
    with pytest.raises(RuntimeError, match="reset"):
        TorchCartPoleVectorEnv(2).step(np.array([0, 1]))
    for kwargs in (
        {"num_envs": 0},
        {"num_envs": 2.0},
        {"max_episode_steps": 0},
        {"dtype": torch.float16},
        {"render_mode": "human"},
        {"autoreset_mode": AutoresetMode.DISABLED},
    ):
        name = next(iter(kwargs))
        with pytest.raises(ValueError, match=name):
            TorchCartPoleVectorEnv(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="low"):
        TorchCartPoleVectorEnv(2).reset(options={"low": 1.0, "high": 0.0})


def test_float32_state_follows_float64_to_float32_rounding() -> None:
    env32, env64 = TorchCartPoleVectorEnv(64, dtype=torch.float32), TorchCartPoleVectorEnv(64)
    env32.reset(seed=0)
    env64.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(10):  # before any episode of a random policy can end
        action = rng.integers(0, 2, size=64)
        obs32, obs64 = env32.step(action)[0], env64.step(action)[0]
    assert env32.state is not None and env32.state.dtype == torch.float32
    torch.testing.assert_close(obs32, obs64, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    cpu, gpu = TorchCartPoleVectorEnv(128), TorchCartPoleVectorEnv(128, device="cuda")
    a, b = rollout(cpu, 0, 50), rollout(gpu, 0, 50)
    assert b[-1].device.type == "cuda"
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y.cpu(), rtol=0, atol=1e-5)


def test_single_env_is_gymnasiums_cartpole_env() -> None:
    env, ref = TorchCartPoleEnv(), CartPoleEnv()
    rng = np.random.default_rng(4)
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        ref_obs, _ = ref.reset(seed=seed)
        np.testing.assert_array_equal(obs, ref_obs)
        terminated = False
        while not terminated:
            action = int(rng.integers(0, 2))
            obs, reward, terminated, truncated, _ = env.step(action)
            ref_obs, ref_reward, ref_terminated, _, _ = ref.step(action)
            assert env.state is not None and ref.state is not None
            np.testing.assert_allclose(env.state, ref.state, rtol=0, atol=TOLERANCE)
            assert (reward, terminated, truncated) == (ref_reward, ref_terminated, False)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def test_single_env_bad_input_and_sutton_barto_reward() -> None:
    env = TorchCartPoleEnv(sutton_barto_reward=True)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    for bad in (2, -1, 0.5, "left"):
        with pytest.raises(ValueError, match="action"):
            env.step(bad)
    rewards = []
    terminated = False
    while not terminated:
        _, reward, terminated, _, _ = env.step(1)
        rewards.append(reward)
    assert rewards[-1] == -1.0 and set(rewards[:-1]) <= {0.0}
    with pytest.raises(ValueError, match="render_mode"):
        TorchCartPoleEnv(render_mode="ansi")


def test_time_limit_comes_from_registration() -> None:
    env = gym.make("rlrelax/CartPole-v1")
    start, actions, _ = balancing_actions(0, 500)
    env.reset(seed=0)
    env.unwrapped.state = start  # type: ignore[attr-defined]
    for t, action in enumerate(actions):
        _, _, terminated, truncated, _ = env.step(int(action))
        assert not terminated and truncated == (t == 499)


# ---- the differentiable step -------------------------------------------------------------------------


def test_cartpole_step_gradcheck() -> None:
    gen = torch.Generator().manual_seed(0)
    state = (torch.rand(5, 4, generator=gen, dtype=torch.float64) - 0.5).requires_grad_()
    probs = torch.softmax(torch.randn(5, 2, generator=gen, dtype=torch.float64), -1).requires_grad_()
    assert torch.autograd.gradcheck(lambda s, p: cartpole_step(s, p)[0], (state, probs))
    assert torch.autograd.gradgradcheck(lambda s, p: cartpole_step(s, p)[0], (state, probs))


@pytest.mark.parametrize("compile", [False, True])
def test_hard_action_step_equals_the_environment_step(compile: bool) -> None:
    env = TorchCartPoleVectorEnv(64, compile=compile)
    env.reset(seed=0, options={"low": -0.2, "high": 0.2})
    rng = np.random.default_rng(0)
    for _ in range(5):
        assert env.state is not None
        state, pending = env.state.T.clone(), env.prev_done.clone()
        action = torch.from_numpy(rng.integers(0, 2, size=64))
        _, _, terminated, _, _ = env.step(action)
        next_state, mask = cartpole_step(state, torch.nn.functional.one_hot(action, 2).double())
        stepped = ~pending  # the others were reset by this step
        assert stepped.sum() > 32
        assert mask.dtype == torch.bool and mask[stepped].equal(terminated[stepped])
        atol = 1e-12 if compile else 0.0  # the fused kernel rounds differently
        torch.testing.assert_close(next_state[stepped], env.state.T[stepped], rtol=0, atol=atol)


def test_gumbel_softmax_actor_backpropagates_through_a_horizon() -> None:
    gen = torch.Generator().manual_seed(0)
    weights = torch.zeros(4, 2, dtype=torch.float64, requires_grad=True)
    state = (torch.rand(16, 4, generator=gen, dtype=torch.float64) - 0.5) * 0.1
    alive = torch.ones(16, dtype=torch.float64)
    loss = torch.zeros((), dtype=torch.float64)
    for _ in range(20):
        logits = state @ weights
        gumbels = -torch.log(-torch.log(torch.rand(logits.shape, generator=gen, dtype=torch.float64)))
        probs = torch.softmax((logits + gumbels) / 0.5, dim=-1)
        state, terminated = cartpole_step(state, probs)
        alive = alive * (~terminated).to(alive.dtype)
        loss = loss + (alive * state[:, 2].square()).sum()
    loss.backward()
    assert weights.grad is not None and torch.isfinite(weights.grad).all() and weights.grad.abs().sum() > 0


def test_cartpole_step_rejects_bad_input() -> None:
    state, probs = torch.zeros(3, 4), torch.full((3, 2), 0.5)
    cartpole_step(state, probs)
    with pytest.raises(ValueError, match="state"):
        cartpole_step(torch.zeros(3, 5), probs)
    with pytest.raises(ValueError, match="state"):
        cartpole_step(torch.zeros(3, 4, dtype=torch.int64), probs)
    with pytest.raises(ValueError, match="action"):
        cartpole_step(state, torch.full((3, 3), 0.5))
    with pytest.raises(ValueError, match="action"):
        cartpole_step(state, probs.double())
    with pytest.raises(TypeError, match="tensors"):
        cartpole_step(state.numpy(), probs)  # type: ignore[arg-type]


def test_theta_threshold_is_twelve_degrees() -> None:
    assert math.isclose(math.degrees(cp.THETA_THRESHOLD_RADIANS), 12.0)
