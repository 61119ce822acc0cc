"""GumbelAC on several discrete choices at once: ``MultiDiscrete`` and ``MultiBinary`` action spaces.

The agent tests reuse the contextual bandit of ``test_factorised_actions.py`` (its optimum is known: every
choice matches its context's target); the estimator tests check the factorised estimators against
enumeration of the joint actions.
"""

import itertools
import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback, EvalCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from test_factorised_actions import SPACES, ContextualChoices, make_env, observations

import rlrelax.envs  # noqa: F401  (registers rlrelax/Slate-v0)
from rlrelax.agents import GumbelAC
from rlrelax.agents.common import AUTO_TARGET_ENTROPY_FRACTION, ChoiceLayout
from rlrelax.agents.gumbel_ac import ESTIMATOR_NAMES

# Small settings so that a model trains (not only collects) within a few hundred steps.
FAST: dict[str, Any] = {"learning_starts": 64, "batch_size": 32, "buffer_size": 2_000}
RELAXED = ("gumbel_softmax", "straight_through", "gumbel_rao")
# Two categorical choices of different sizes, three bits, and equal choices (one run of the layout).
LAYOUTS = {
    "choices-3-2": ChoiceLayout((3, 2)),
    "bits-3": ChoiceLayout((2, 2, 2), binary=True),
    "choices-2-3-3": ChoiceLayout((2, 3, 3)),
}


def make(name: str, seed: int = 0, **kwargs: Any) -> GumbelAC:
    return GumbelAC("MlpPolicy", make_env(name), seed=seed, **{**FAST, **kwargs})


def parameters(model: GumbelAC) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in model.policy.state_dict().items()}


# --- enumeration, written without ChoiceLayout ---------------------------------------------------------


def joint_table(layout: ChoiceLayout, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every joint action's probability ``(batch, J)`` and encoding ``(J, width)``, by brute force."""
    if layout.binary:
        per_choice = [torch.stack([1 - p, p], dim=-1) for p in torch.sigmoid(logits).unbind(-1)]
    else:
        per_choice = [torch.softmax(chunk, dim=-1) for chunk in logits.split(list(layout.sizes), dim=-1)]
    probs, codes = [], []
    for action in itertools.product(*(range(n) for n in layout.sizes)):
        probs.append(math.prod(p[:, a] for p, a in zip(per_choice, action, strict=True)))
        if layout.binary:
            codes.append(torch.tensor(action, dtype=logits.dtype))
        else:
            codes.append(
                torch.cat(
                    [torch.eye(n, dtype=logits.dtype)[a] for n, a in zip(layout.sizes, action, strict=True)]
                )
            )
    return torch.stack(probs, dim=-1), torch.stack(codes)


def critic_like(width: int, seed: int = 0) -> Any:
    """A fixed nonlinear function of the encoded joint action, with interactions between the choices."""
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(width, 8, generator=generator, dtype=torch.float64)
    bias, out = torch.randn(8, generator=generator, dtype=torch.float64), torch.randn(8, dtype=torch.float64)

    def f(actions: torch.Tensor) -> torch.Tensor:
        return torch.tanh(actions @ weight + bias) @ out

    return f


def random_logits(layout: ChoiceLayout, batch: int = 4) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(batch, layout.width, generator=generator, dtype=torch.float64)


def exact_gradient(layout: ChoiceLayout, logits: torch.Tensor, f: Any) -> torch.Tensor:
    leaf = logits.detach().requires_grad_(True)
    probs, codes = joint_table(layout, leaf)
    (grad,) = torch.autograd.grad((probs * f(codes)).sum(), leaf)
    return grad


# --- the layout against enumeration ---------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=list(LAYOUTS))
def test_layout_entropy_log_prob_and_encoding_match_enumeration(layout: ChoiceLayout) -> None:
    logits = random_logits(layout)
    probs, codes = joint_table(layout, logits)
    joint = layout.joint_actions()
    assert joint.shape == (layout.n_joint_actions, len(layout.sizes))
    torch.testing.assert_close(layout.encode(joint, torch.float64), codes)
    log_probs = layout.log_prob(logits, joint.unsqueeze(1).expand(-1, logits.shape[0], -1))
    torch.testing.assert_close(log_probs.T.exp(), probs)
    torch.testing.assert_close(layout.entropy(logits), -(probs * probs.log()).sum(dim=-1))
    # The deterministic action is each choice's most likely option, which is the most likely joint action.
    torch.testing.assert_close(layout.encode(layout.mode(logits), torch.float64), codes[probs.argmax(dim=-1)])


@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=list(LAYOUTS))
def test_layout_samples_follow_the_policy(layout: ChoiceLayout) -> None:
    logits = random_logits(layout, batch=2)
    probs, _ = joint_table(layout, logits)
    draws = layout.sample(logits, 20_000, torch.Generator().manual_seed(0))
    assert draws.shape == (20_000, 2, len(layout.sizes))
    index = torch.zeros(draws.shape[:-1], dtype=torch.long)
    for m, size in enumerate(layout.sizes):
        index = index * size + draws[..., m]  # the joint index, first choice slowest
    for state in range(2):
        frequencies = torch.bincount(index[:, state], minlength=layout.n_joint_actions) / 20_000
        expected = probs[state].float()
        tolerance = 5 * torch.sqrt(expected * (1 - expected) / 20_000) + 1e-3
        assert torch.all((frequencies - expected).abs() <= tolerance)


def test_joint_space_too_large_to_enumerate_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"has 8192 actions .* more than the 4096"):
        ChoiceLayout((2,) * 13, binary=True).joint_actions()


# --- the factorised estimators -------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=list(LAYOUTS))
def test_exact_estimator_is_the_enumerated_expectation(layout: ChoiceLayout) -> None:
    logits = random_logits(layout).requires_grad_(True)
    f = critic_like(layout.width)
    surrogate = layout.surrogate(logits, f, "exact", n_samples=1, tau=1.0, n_rao_samples=1)
    probs, codes = joint_table(layout, logits.detach())
    torch.testing.assert_close(surrogate.detach(), (probs * f(codes)).sum())
    (grad,) = torch.autograd.grad(surrogate, logits)
    torch.testing.assert_close(grad, exact_gradient(layout, logits, f))


@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=list(LAYOUTS))
def test_score_function_estimator_is_unbiased(layout: ChoiceLayout) -> None:
    logits = random_logits(layout).requires_grad_(True)
    f = critic_like(layout.width)
    generator = torch.Generator().manual_seed(2)
    estimates = torch.stack(
        [
            torch.autograd.grad(
                layout.surrogate(
                    logits, f, "score_function", n_samples=500, tau=1.0, n_rao_samples=1, generator=generator
                ),
                logits,
            )[0]
            for _ in range(40)
        ]
    )
    error = estimates.mean(dim=0) - exact_gradient(layout, logits, f)
    standard_error = estimates.std(dim=0) / math.sqrt(len(estimates))
    assert torch.all(error.abs() <= 5 * standard_error + 1e-6), (error, standard_error)


@pytest.mark.parametrize("estimator", RELAXED)
@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=list(LAYOUTS))
def test_relaxed_joint_actions(layout: ChoiceLayout, estimator: str) -> None:
    logits = random_logits(layout).requires_grad_(True)
    actions = layout.relaxed_actions(
        logits, estimator, n_samples=6, tau=0.5, n_rao_samples=3, generator=torch.Generator().manual_seed(0)
    )
    assert actions.shape == (6, 4, layout.width) and torch.isfinite(actions).all()
    assert ((actions >= 0) & (actions <= 1)).all()
    if not layout.binary:
        # Each choice is a point of its own simplex.
        for chunk in actions.split(list(layout.sizes), dim=-1):
            torch.testing.assert_close(chunk.sum(dim=-1), torch.ones(6, 4, dtype=torch.float64))
    exact = ((actions == 0) | (actions == 1)).all()
    assert bool(exact) == (estimator != "gumbel_softmax")
    # Each sample's gradient reaches every choice's logits.
    (grad,) = torch.autograd.grad(critic_like(layout.width)(actions).sum(), logits)
    assert torch.isfinite(grad).all() and (grad != 0).all()


@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=list(LAYOUTS))
def test_soft_value_exact_or_sampled(layout: ChoiceLayout) -> None:
    logits = random_logits(layout)
    f = critic_like(layout.width)
    probs, codes = joint_table(layout, logits)
    expected = (probs * (f(codes) - 0.3 * probs.log())).sum(dim=-1, keepdim=True)
    torch.testing.assert_close(layout.soft_value(logits, f, 0.3, n_samples=1), expected)


def test_soft_value_of_a_large_joint_space_is_a_sample_mean() -> None:
    layout = ChoiceLayout((2,) * 8, binary=True)  # 256 joint actions: sampled
    logits = random_logits(layout, batch=2)
    f = critic_like(layout.width)
    probs, codes = joint_table(layout, logits)
    expected = (probs * (f(codes) - 0.3 * probs.log())).sum(dim=-1, keepdim=True)
    torch.manual_seed(0)
    estimate = layout.soft_value(logits, f, 0.3, n_samples=20_000)
    torch.testing.assert_close(estimate, expected, atol=0.03, rtol=0)
    assert not torch.equal(estimate, layout.soft_value(logits, f, 0.3, n_samples=20_000))


# --- the agent --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("estimator", ESTIMATOR_NAMES)
@pytest.mark.parametrize("name", SPACES)
def test_every_estimator_trains_on_each_space(name: str, estimator: str) -> None:
    model = make(name, estimator=estimator, ent_coef="auto").learn(200)
    assert (model.critic_input, model.next_value) == ("concat", "policy")
    logged = model.logger.name_to_value
    for key in ("train/actor_loss", "train/critic_loss", "train/entropy", "train/ent_coef_loss"):
        assert np.isfinite(logged[key]), key
    assert all(torch.isfinite(p).all() for p in model.policy.parameters())


@pytest.mark.parametrize("name", SPACES)
def test_auto_settings_and_target_entropy_follow_the_space(name: str) -> None:
    model = make(name, ent_coef="auto")
    assert (model.critic_input, model.next_value) == ("concat", "policy")
    assert model.critic.critic_input == "concat"
    n_joint = math.prod(SPACES[name].nvec) if name == "MultiDiscrete" else 2 ** SPACES[name].n
    assert model._target_entropy == pytest.approx(AUTO_TARGET_ENTROPY_FRACTION * math.log(n_joint))
    discrete = GumbelAC("MlpPolicy", "CartPole-v1")
    assert (discrete.critic_input, discrete.next_value) == ("mixture", "boltzmann")
    # Here n_samples also draws the next soft value of a large joint space: gumbel_rao keeps eight.
    assert make(name, estimator="gumbel_rao").n_samples == 8


@pytest.mark.parametrize("name", SPACES)
def test_predict_shapes_and_the_deterministic_action(name: str) -> None:
    model = make(name)
    space = SPACES[name]
    action, state = model.predict(observations()[0], deterministic=True)
    assert action.shape == space.shape and state is None and space.contains(action.astype(space.dtype))
    actions, _ = model.predict(observations(), deterministic=False)
    assert actions.shape == (3, *space.shape)
    assert all(space.contains(a.astype(space.dtype)) for a in actions)
    greedy, _ = model.predict(observations(), deterministic=True)
    with torch.no_grad():
        logits = model.actor(torch.as_tensor(observations()))
    np.testing.assert_array_equal(greedy, model._layout.mode(logits).numpy())


@pytest.mark.parametrize("estimator", ["gumbel_softmax", "score_function"])
@pytest.mark.parametrize("name", SPACES)
def test_same_seed_same_training(name: str, estimator: str) -> None:
    first, second = (make(name, seed=3, estimator=estimator).learn(300) for _ in range(2))
    different = make(name, seed=4, estimator=estimator).learn(300)
    for key, value in parameters(first).items():
        torch.testing.assert_close(parameters(second)[key], value, rtol=0, atol=0, msg=key)
    assert any(not torch.equal(parameters(different)[key], value) for key, value in parameters(first).items())


@pytest.mark.parametrize("name", SPACES)
def test_save_load_round_trip_and_continue(name: str, tmp_path: Path) -> None:
    model = make(name, estimator="gumbel_rao", ent_coef="auto").learn(300)
    model.save(tmp_path / "model.zip")
    loaded = GumbelAC.load(tmp_path / "model.zip", env=make_env(name, seed=1))
    assert (loaded.critic_input, loaded.next_value, loaded.estimator) == ("concat", "policy", "gumbel_rao")
    np.testing.assert_array_equal(
        loaded.predict(observations(), deterministic=True)[0],
        model.predict(observations(), deterministic=True)[0],
    )
    for key, value in parameters(model).items():
        torch.testing.assert_close(parameters(loaded)[key], value, rtol=0, atol=0, msg=key)
    assert loaded.log_ent_coef is not None and model.log_ent_coef is not None
    torch.testing.assert_close(loaded.log_ent_coef, model.log_ent_coef)
    loaded.learn(200, reset_num_timesteps=False)
    assert loaded.num_timesteps == 500


@pytest.mark.parametrize("name", SPACES)
def test_sb3_callbacks(name: str, tmp_path: Path) -> None:
    eval_callback = EvalCallback(
        make_env(name, seed=100), eval_freq=100, n_eval_episodes=3, log_path=str(tmp_path / "eval")
    )
    checkpoint = CheckpointCallback(save_freq=150, save_path=str(tmp_path / "checkpoints"))
    make(name).learn(400, callback=CallbackList([eval_callback, checkpoint]))
    evaluations = np.load(tmp_path / "eval" / "evaluations.npz")
    assert list(evaluations["timesteps"]) == [100, 200, 300, 400]
    assert len(list((tmp_path / "checkpoints").glob("rl_model_*_steps.zip"))) == 2


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (spaces.MultiDiscrete([[2, 3], [2, 2]]), "one-dimensional MultiDiscrete"),
        (spaces.MultiBinary([2, 2]), "one-dimensional MultiBinary"),
        (spaces.Box(-1.0, 1.0, (2,)), "needs a Discrete, MultiDiscrete or MultiBinary action space, got Box"),
    ],
)
def test_other_action_spaces_are_refused_with_their_name(space: spaces.Space, message: str) -> None:
    env = ContextualChoices(SPACES["MultiBinary"])
    env.action_space = space
    with pytest.raises(ValueError, match=message):
        GumbelAC("MlpPolicy", env)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"critic_input": "mixture"},
            r"critic_input='mixture' needs a Discrete action space, got MultiBinary",
        ),
        (
            {"next_value": "boltzmann"},
            r"next_value='boltzmann' needs a Discrete action space, got MultiBinary",
        ),
        ({"estimator": "score_function", "n_samples": 1}, r"n_samples must be >= 2, got 1"),
    ],
)
def test_settings_that_need_one_choice_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make("MultiBinary", **kwargs)


@pytest.mark.parametrize("estimator", ["exact", "expected"])
def test_exact_estimator_refuses_a_joint_space_too_large_to_enumerate(estimator: str) -> None:
    env = ContextualChoices(spaces.MultiBinary(13))
    with pytest.raises(ValueError, match=rf"estimator='{estimator}' enumerates .* 8192, more than 4096"):
        GumbelAC("MlpPolicy", env, estimator=estimator)
    GumbelAC("MlpPolicy", env, estimator="gumbel_rao", **FAST).learn(100)  # sampled: fine


def test_exact_actor_gradient_is_the_enumerated_soft_actor_gradient() -> None:
    model = make("MultiDiscrete", estimator="exact", ent_coef=0.3, logit_penalty=0.0)
    layout = model._layout
    obs = torch.as_tensor(observations())
    logits = model.actor(obs).detach().double().requires_grad_(True)
    model.actor.forward = lambda _obs: logits.float()  # type: ignore[method-assign]
    loss, _ = model._actor_loss(obs, model._current_ent_coef(), 1.0)
    (grad,) = torch.autograd.grad(loss, logits)
    features = model.critic.features(obs).detach()

    def soft_objective(leaf: torch.Tensor) -> torch.Tensor:
        probs, codes = joint_table(layout, leaf)
        q = (
            model.critic.action_values(features, codes.float().unsqueeze(1).expand(-1, 3, -1))
            .min(dim=0)
            .values
        )
        # mean_s Σ_a π(a|s)(alpha log π(a|s) - Q(s, a))
        return (probs * (0.3 * probs.log() - q.T.double())).sum(dim=-1).mean()

    leaf = logits.detach().requires_grad_(True)
    (expected,) = torch.autograd.grad(soft_objective(leaf), leaf)
    torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", SPACES)
def test_relaxed_joint_action_flows_into_the_critic(name: str) -> None:
    """Only the actor takes the actor loss's gradient; soft and hard relaxations give different ones."""
    soft = make(name, estimator="gumbel_softmax", temperature=0.7)
    hard = make(name, estimator="straight_through", temperature=0.7)
    hard.policy.load_state_dict(soft.policy.state_dict())
    gradients = []
    for model in (soft, hard):
        model._actor_loss(torch.as_tensor(observations()), model._current_ent_coef(), 0.7)[0].backward()
        assert all(p.grad is None for p in model.critic.parameters())
        assert all(p.requires_grad for p in model.critic.parameters())
        gradients.append([p.grad.clone() for p in model.actor.parameters() if p.grad is not None])
        assert gradients[-1] and any(g.abs().sum() > 0 for g in gradients[-1])
    assert any(not torch.allclose(a, b) for a, b in zip(*gradients, strict=True))


@pytest.mark.parametrize("munchausen_coef", [0.0, 0.9])
def test_critic_target_is_the_actor_soft_value_plus_the_munchausen_reward(munchausen_coef: float) -> None:
    model = make("MultiDiscrete", munchausen_coef=munchausen_coef, munchausen_clip=-1.0)
    layout = model._layout
    obs, next_obs = torch.eye(3), torch.eye(3)[[1, 2, 0]]
    actions = torch.tensor([[0, 1], [2, 3], [1, 0]])
    dones, rewards = torch.tensor([[0.0], [0.0], [1.0]]), torch.tensor([[0.5], [1.0], [0.2]])
    alpha = 0.5
    with torch.no_grad():
        model.actor.logits_net[-1].weight.mul_(20.0)
        next_probs, codes = joint_table(layout, model.actor(next_obs).double())
        features = model.critic_target.features(next_obs)
        next_q = model.critic_target.action_values(features, codes.float().unsqueeze(1).expand(-1, 3, -1))
        next_q = next_q.min(dim=0).values.T.double()
        next_v = (next_probs * (next_q - alpha * next_probs.log())).sum(dim=-1, keepdim=True)
        probs, _ = joint_table(layout, model.actor(obs).double())
        taken = (actions[:, 0] * 4 + actions[:, 1]).unsqueeze(1)
        bonus = munchausen_coef * (alpha * probs.gather(1, taken).log()).clamp(-1.0, 0.0)
    expected = rewards + bonus + model.gamma * (1 - dones) * next_v
    actual = model._critic_target(ReplayBufferSamples(obs, actions, next_obs, dones, rewards), alpha)
    torch.testing.assert_close(actual, expected.float(), rtol=1e-5, atol=1e-5)
    if munchausen_coef:
        assert (alpha * probs.gather(1, taken).log() < -1.0).any()  # the clipping bound bites


@pytest.mark.parametrize("name", SPACES)
def test_gradient_draws_have_an_exact_reference(name: str) -> None:
    model = make(name, estimator="score_function").learn(100)
    draws = model.actor_gradient_draws(3, 16, torch.Generator().manual_seed(0))
    n_parameters = sum(p.numel() for p in model.actor.parameters())
    assert draws.estimates.shape == (3, n_parameters) and draws.exact.shape == (n_parameters,)


def test_gradient_draws_of_another_estimator_leave_the_model_as_it_was() -> None:
    model = make("MultiDiscrete", estimator="score_function").learn(100)
    before, rng_state = parameters(model), torch.get_rng_state()
    exact = model.actor_gradient_draws(3, 16, torch.Generator().manual_seed(0), estimator="exact")
    # The enumerated expectation is deterministic: every draw is the exact gradient.
    torch.testing.assert_close(exact.estimates, exact.exact.expand(3, -1))
    own = model.actor_gradient_draws(3, 16, torch.Generator().manual_seed(0))
    named = model.actor_gradient_draws(3, 16, torch.Generator().manual_seed(0), estimator="score_function")
    torch.testing.assert_close(own.estimates, named.estimates, rtol=0, atol=0)
    assert model.estimator == "score_function"
    assert torch.equal(torch.get_rng_state(), rng_state)
    for key, value in parameters(model).items():
        assert torch.equal(value, before[key]), key


def test_gradient_draws_at_another_temperature() -> None:
    model = make("MultiDiscrete", estimator="gumbel_softmax", temperature=1.0).learn(100)
    draws = {
        tau: model.actor_gradient_draws(4, 16, torch.Generator().manual_seed(0), temperature=tau).estimates
        for tau in (None, 1.0, 0.1)
    }
    torch.testing.assert_close(draws[None], draws[1.0], rtol=0, atol=0)
    assert not torch.allclose(draws[1.0], draws[0.1])


@pytest.mark.parametrize(
    ("policy", "kwargs", "match"),
    [
        ("MlpPolicy", {"estimator": "expected"}, "estimator"),  # an alias of the constructor only
        ("MlpPolicy", {"estimator": "reinforce"}, "estimator"),
        ("TopKPolicy", {"estimator": "gumbel_rao"}, "gumbel_rao"),
        ("MlpPolicy", {"temperature": 0.0}, "temperature"),
    ],
)
def test_gradient_draws_refuse_an_estimator_or_temperature_the_model_cannot_use(
    policy: str, kwargs: dict[str, Any], match: str
) -> None:
    # A slate policy needs k slots over the same N items.
    env = (
        gym.make("rlrelax/Slate-v0", n_items=5, slate_size=2)
        if policy == "TopKPolicy"
        else make_env("MultiDiscrete")
    )
    model = GumbelAC(policy, env, seed=0, **FAST).learn(100)
    with pytest.raises(ValueError, match=match):
        model.actor_gradient_draws(3, 16, torch.Generator().manual_seed(0), **kwargs)


@pytest.mark.parametrize("estimator", ["gumbel_softmax", "score_function"])
@pytest.mark.parametrize("name", SPACES)
def test_learns_the_best_joint_action_of_each_context(name: str, estimator: str) -> None:
    model = GumbelAC(
        "MlpPolicy",
        make_env(name, n_envs=4),
        seed=0,
        estimator=estimator,
        learning_starts=200,
        train_freq=1,
    )
    model.learn(2_000)
    mean_return, _ = evaluate_policy(model, make_env(name, seed=1), n_eval_episodes=60, deterministic=True)
    # A uniformly random policy gets 0.29 (MultiDiscrete([3, 4])) or 0.5 (MultiBinary(4)); the optimum is 1.
    assert mean_return >= 0.95
    actions, _ = model.predict(observations(), deterministic=True)
    np.testing.assert_array_equal(actions, ContextualChoices(SPACES[name]).targets)
