"""GumbelAC: options, bad input, the actor gradient, save/load, determinism, logging and learning."""

import csv
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.logger import configure
from stable_baselines3.common.torch_layers import create_mlp
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from torch import nn

from rlrelax.agents.gumbel_ac import ESTIMATOR_NAMES, GumbelAC
from rlrelax.agents.gumbel_ac.policies import EnsembleMLP
from rlrelax.estimators import ESTIMATORS, exact_gradient
from rlrelax.relax import LinearSchedule

ENV_ID = "CartPole-v1"
# Small settings so that a model trains (not only collects) within a few hundred steps.
FAST: dict[str, Any] = {"learning_starts": 64, "batch_size": 32, "buffer_size": 2_000}


def make(seed: int = 0, **kwargs: Any) -> GumbelAC:
    return GumbelAC("MlpPolicy", ENV_ID, seed=seed, **{**FAST, **kwargs})


def actor_loss(model: GumbelAC, obs: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    return model._actor_loss(obs, model._current_ent_coef(), model._current_temperature())


def observations(n: int = 16) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return 0.1 * torch.randn(n, 4, generator=generator)


def pooled(values: torch.Tensor, pessimism: float) -> torch.Tensor:
    """The critics' values pooled as ``critic_pessimism`` says: ``(1 - p)·mean + p·min`` over the critics."""
    return (1 - pessimism) * values.mean(dim=0) + pessimism * values.min(dim=0).values


def parameters(model: GumbelAC) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in model.policy.state_dict().items()}


@pytest.mark.parametrize("critic_input", ["mixture", "concat"])
@pytest.mark.parametrize("estimator", ESTIMATOR_NAMES)
def test_smoke_every_estimator_and_critic_input(estimator: str, critic_input: str) -> None:
    model = make(estimator=estimator, critic_input=critic_input).learn(200)
    logged = model.logger.name_to_value
    assert np.isfinite(logged["train/actor_loss"]) and np.isfinite(logged["train/critic_loss"])
    assert all(torch.isfinite(p).all() for p in model.policy.parameters())


def test_policy_kwargs_of_the_caller_are_left_alone() -> None:
    policy_kwargs = {"net_arch": [32, 32]}
    first = make(critic_input="concat", policy_kwargs=policy_kwargs)
    second = make(policy_kwargs=policy_kwargs)  # the same dict, reused
    assert policy_kwargs == {"net_arch": [32, 32]}
    assert (first.policy.critic_input, second.policy.critic_input) == ("concat", "mixture")


@pytest.mark.parametrize("ent_coef", [0.05, "auto", "auto_0.1"])
def test_ent_coef_fixed_or_learned(ent_coef: float | str) -> None:
    model = make(ent_coef=ent_coef)
    start = float(model._current_ent_coef())
    model.learn(300)
    end = float(model._current_ent_coef())
    if isinstance(ent_coef, str):
        assert start == pytest.approx(0.1 if ent_coef == "auto_0.1" else 1.0)
        assert model.log_ent_coef is not None and end != start
        assert "train/ent_coef_loss" in model.logger.name_to_value
    else:
        assert model.log_ent_coef is None and start == end == pytest.approx(ent_coef)
        assert "train/ent_coef_loss" not in model.logger.name_to_value


def test_temperature_schedule_is_followed_and_logged() -> None:
    # Training every 50 steps of a 400-step run, after the first 100 (SB3 trains once past learning_starts):
    # at step t the progress remaining is 1 - t/400, and a schedule from 2.0 to 0.5 gives 1.25 at step 200,
    # 0.875 at 300 and 0.5 at 400.
    model = make(temperature=LinearSchedule(2.0, 0.5), train_freq=50, learning_starts=100)
    logged: dict[int, float] = {}
    train = model.train

    def train_and_record(gradient_steps: int, batch_size: int = 64) -> None:
        train(gradient_steps, batch_size)
        logged[model.num_timesteps] = model.logger.name_to_value["train/temperature"]

    model.train = train_and_record  # type: ignore[method-assign]
    model.learn(400)
    expected = {150: 1.4375, 200: 1.25, 250: 1.0625, 300: 0.875, 350: 0.6875, 400: 0.5}
    assert logged == pytest.approx(expected)


@pytest.mark.parametrize(
    ("estimator", "n_samples"),
    [("gumbel_rao", 1), *((name, 8) for name in ESTIMATOR_NAMES if name != "gumbel_rao")],
)
def test_auto_samples_per_state_are_one_for_gumbel_rao_and_eight_otherwise(
    estimator: str, n_samples: int
) -> None:
    assert make(estimator=estimator).n_samples == n_samples
    assert make(estimator=estimator, n_samples=3).n_samples == 3


def test_gumbel_rao_trains_with_the_resolved_samples_per_state() -> None:
    model = make(estimator="gumbel_rao").learn(100)
    seen: list[int] = []
    original = ESTIMATORS["gumbel_rao"]

    def spy(*args: Any, n_samples: int, **kwargs: Any) -> torch.Tensor:
        seen.append(n_samples)
        return original(*args, n_samples=n_samples, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(ESTIMATORS, "gumbel_rao", spy)
        model.train(1, 16)
    assert seen == [1]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"estimator": "gumbel"}, r"estimator must be one of .*gumbel_softmax.*exact.*got 'gumbel'"),
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": -1.0}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"temperature": LinearSchedule(1.0, 0.0)}, "temperature"),
        ({"ent_coef": 0.0}, "ent_coef must be a finite number > 0, got 0.0"),
        ({"critic_input": "sum"}, "critic_input"),
        ({"next_value": "max"}, "next_value"),
        ({"ent_coef": -0.1}, "ent_coef"),
        ({"ent_coef": "auto_-1"}, "ent_coef"),
        ({"ent_coef": "learned"}, "ent_coef"),
        ({"target_entropy": "high"}, "target_entropy"),
        ({"n_samples": 0}, "n_samples"),
        ({"n_samples": "eight"}, r"n_samples must be an int >= 1 or 'auto', got 'eight'"),
        ({"n_rao_samples": 0}, "n_rao_samples"),
        ({"tau": 0.0}, r"tau must be in \(0, 1\], got 0.0"),
        ({"target_update_interval": 0}, "target_update_interval must be an int >= 1, got 0"),
        ({"policy_delay": 0}, "policy_delay must be an int >= 1, got 0"),
        ({"target_entropy": 5.0}, r"target_entropy must lie strictly between 0 and log\|A\|"),
        ({"munchausen_coef": -0.5}, "munchausen_coef"),
        ({"munchausen_coef": float("inf")}, "munchausen_coef"),
        ({"munchausen_clip": 0.0}, "munchausen_clip"),
        ({"logit_penalty": -0.1}, "logit_penalty"),
        ({"logit_penalty": float("nan")}, "logit_penalty"),
        ({"critic_pessimism": 1.5}, r"critic_pessimism must be in \[0, 1\], got 1.5"),
        ({"critic_pessimism": -0.1}, "critic_pessimism"),
        ({"max_grad_norm": 0.0}, "max_grad_norm"),
        ({"policy_kwargs": {"critic_input": "concat"}}, "critic_input"),
        (
            {"simultaneous_updates": True, "critic_input": "concat"},
            "simultaneous_updates=True .* needs critic_input='mixture' .* got critic_input='concat'",
        ),
    ],
)
def test_bad_arguments_are_refused_by_name(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        GumbelAC("MlpPolicy", ENV_ID, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"temperature": "hot"}, "temperature must be a float > 0 or a schedule, got 'hot'"),
        ({"n_rao_samples": 1.5}, "n_rao_samples must be an int, got 1.5"),
        ({"policy_delay": 2.0}, "policy_delay must be an int, got 2.0"),
        ({"simultaneous_updates": 1}, "simultaneous_updates must be a bool, got 1"),
        ({"n_samples": True}, "n_samples must be an int, got True"),
        ({"estimator": 3}, "estimator must be one of"),
        ({"ent_coef": [0.1]}, r"ent_coef must be .*got \[0.1\] of type list"),
        ({"tau": "0.1"}, "tau must be a real number, got '0.1'"),
        ({"critic_pessimism": "half"}, "critic_pessimism must be a real number, got 'half'"),
    ],
)
def test_arguments_of_the_wrong_type_are_type_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(TypeError, match=match):
        GumbelAC("MlpPolicy", ENV_ID, **kwargs)


def test_expected_is_an_alias_of_the_exact_estimator(tmp_path: Path) -> None:
    model = make(estimator="expected")
    assert model.estimator == "exact"
    # A model saved by rlrelax 0.1 holds the old name; loading it must give the same estimator.
    model.estimator = "expected"
    model.save(tmp_path / "old")
    assert GumbelAC.load(tmp_path / "old").estimator == "exact"


def test_temperature_schedule_is_checked_whenever_it_is_evaluated() -> None:
    # Positive at both ends (so the constructor accepts it) but not in between.
    model = make(temperature=BadMiddle(), train_freq=10)
    with pytest.raises(ValueError, match="temperature"):
        model.learn(300)


class BadMiddle:
    def __call__(self, progress_remaining: float) -> float:
        return 1.0 if progress_remaining in (0.0, 1.0) or progress_remaining > 0.9 else -1.0


@pytest.mark.parametrize("critic_pessimism", [1.0, 0.5, 0.0])
def test_exact_estimator_gives_the_exact_soft_actor_gradient(critic_pessimism: float) -> None:
    model = make(estimator="exact", ent_coef=0.3, logit_penalty=0.0, critic_pessimism=critic_pessimism)
    obs = observations()
    logits = model.actor(obs)
    q = pooled(model.critic(obs), critic_pessimism).detach()

    def soft_value(actions: torch.Tensor) -> torch.Tensor:
        # f(e_k) = Q(s, k) - alpha log π(k|s), the per-action soft value the actor maximises.
        return (actions * (q - 0.3 * torch.log_softmax(logits.detach(), -1))).sum(-1)

    # ∇ of Σ_k π_k (alpha log π_k - Q_k) = -∇ E[soft value], as E[∇ log π] = 0 for the log π inside f.
    expected = -exact_gradient(logits.detach(), soft_value) / obs.shape[0]
    logits_leaf = logits.detach().requires_grad_(True)
    model.actor.forward = lambda _obs: logits_leaf  # type: ignore[method-assign]
    loss, _ = actor_loss(model, obs)
    (grad,) = torch.autograd.grad(loss, logits_leaf)
    torch.testing.assert_close(grad, expected)


def test_logit_penalty_adds_the_squared_centred_logits_to_the_actor_loss() -> None:
    # Centred logits (1, -1) and (1.5, -1.5): squared sums 2 and 4.5, mean 3.25, times 0.25.
    obs = observations(2)
    logits = torch.tensor([[1.0, -1.0], [3.0, 0.0]])
    losses = []
    for penalty in (0.0, 0.25):
        model = make(estimator="exact", logit_penalty=penalty)
        model.actor.forward = lambda _obs: logits  # type: ignore[method-assign]
        losses.append(actor_loss(model, obs)[0])
    torch.testing.assert_close(losses[1] - losses[0], torch.tensor(0.8125))


def test_logit_penalty_moves_a_saturated_actor_that_the_entropy_bonus_cannot() -> None:
    # Logits 40 apart: the exact soft actor gradient carries a factor π(1-π) ≈ e^-40 and vanishes, even
    # though the critic prefers the other action; the penalty's gradient does not.
    obs = observations()
    saturated = torch.tensor([[20.0, -20.0]]).expand(obs.shape[0], -1).clone()
    gradients = []
    for penalty in (0.0, 0.01):
        model = make(estimator="exact", logit_penalty=penalty)
        logits_leaf = saturated.clone().requires_grad_(True)
        model.actor.forward = lambda _obs, leaf=logits_leaf: leaf  # type: ignore[method-assign]
        (grad,) = torch.autograd.grad(actor_loss(model, obs)[0], logits_leaf)
        gradients.append(grad)
    assert gradients[0].abs().max() < 1e-12
    # d/dl_0 of 0.01·Σ_k (l_k - mean l)² / batch = 0.01·2·20 / batch, towards a smaller gap.
    torch.testing.assert_close(gradients[1][:, 0], torch.full((obs.shape[0],), 0.4 / obs.shape[0]))


@pytest.mark.parametrize("critic_pessimism", [1.0, 0.5, 0.0])
@pytest.mark.parametrize("next_value", ["boltzmann", "policy"])
@pytest.mark.parametrize(("munchausen_coef", "munchausen_clip"), [(0.0, -1.0), (0.9, -1.0), (0.9, -0.05)])
def test_critic_target_is_the_soft_bellman_target_plus_the_munchausen_reward(
    next_value: str, munchausen_coef: float, munchausen_clip: float, critic_pessimism: float
) -> None:
    model = make(
        next_value=next_value,
        munchausen_coef=munchausen_coef,
        munchausen_clip=munchausen_clip,
        n_steps=1,
        critic_pessimism=critic_pessimism,
    )
    obs, next_obs = observations(8), observations(8) + 0.05
    actions = torch.tensor([[0], [1], [1], [0], [1], [0], [0], [1]])
    dones = torch.tensor([[0.0]] * 7 + [[1.0]])
    rewards = torch.linspace(0.5, 1.5, 8).unsqueeze(1)
    samples = ReplayBufferSamples(obs, actions, next_obs, dones, rewards)
    alpha = 0.5
    # Bigger than the initial networks' spread of values, so that the clipping bound has something to bite.
    with torch.no_grad():
        model.critic_target.q_networks.weights[-1].mul_(20.0)
        model.actor.logits_net[-1].weight.mul_(20.0)
        if next_value == "boltzmann":
            # The policy is softmax(Q̄/alpha) of the target critics' pooled values.
            q, next_q = (pooled(model.critic_target(o), critic_pessimism) for o in (obs, next_obs))
            log_pi = torch.log_softmax(q / alpha, dim=-1).gather(1, actions)
            next_log_probs = torch.log_softmax(next_q / alpha, dim=-1)
        else:
            log_pi = torch.log_softmax(model.actor(obs), dim=-1).gather(1, actions)
            next_log_probs = torch.log_softmax(model.actor(next_obs), dim=-1)
            next_q = pooled(model.critic_target(next_obs), critic_pessimism)
    # The soft value E_π[Q̄ - alpha log π], which is alpha·logsumexp(Q̄/alpha) for the Boltzmann policy.
    next_v = (next_log_probs.exp() * (next_q - alpha * next_log_probs)).sum(dim=1, keepdim=True)
    bonus = munchausen_coef * torch.clamp(alpha * log_pi, min=munchausen_clip, max=0.0)
    expected = rewards + bonus + model.gamma * (1 - dones) * next_v
    actual = model._critic_target(samples, alpha)
    torch.testing.assert_close(actual, expected)
    if munchausen_clip == -0.05:  # the bound must bite for this case to test it
        assert (alpha * log_pi < munchausen_clip).any()


def test_actor_loss_leaves_the_critic_without_gradient() -> None:
    for critic_input in ("mixture", "concat"):
        model = make(estimator="gumbel_softmax", critic_input=critic_input)
        loss, _ = actor_loss(model, observations())
        loss.backward()
        assert all(p.grad is None for p in model.critic.parameters())
        assert all(p.requires_grad for p in model.critic.parameters())
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.actor.parameters())


def _actor_gradient(model: GumbelAC, generator: torch.Generator) -> list[torch.Tensor]:
    value = model._actor_value(observations(), generator, model._current_temperature(), model.estimator)
    return list(torch.autograd.grad(value.surrogate, list(model.actor.parameters())))


def test_mixture_critic_makes_gumbel_softmax_and_straight_through_coincide() -> None:
    # The mixture critic is linear in the action, so ∂f/∂a = Q(s, ·) at the soft and the hard sample alike.
    soft = make(estimator="gumbel_softmax", temperature=0.7)
    hard = make(estimator="straight_through", temperature=0.7)
    hard.policy.load_state_dict(soft.policy.state_dict())
    for a, b in zip(
        _actor_gradient(soft, torch.Generator().manual_seed(3)),
        _actor_gradient(hard, torch.Generator().manual_seed(3)),
        strict=True,
    ):
        torch.testing.assert_close(a, b)
    concat_soft = make(estimator="gumbel_softmax", critic_input="concat")
    concat_hard = make(estimator="straight_through", critic_input="concat")
    concat_hard.policy.load_state_dict(concat_soft.policy.state_dict())
    pairs = zip(
        _actor_gradient(concat_soft, torch.Generator().manual_seed(3)),
        _actor_gradient(concat_hard, torch.Generator().manual_seed(3)),
        strict=True,
    )
    assert any(not torch.allclose(a, b) for a, b in pairs)


def test_mixture_critic_makes_straight_through_training_equal_gumbel_softmax_training() -> None:
    # Same gradients and the same random draws: the validation of one covers the other.
    soft = parameters(make(estimator="gumbel_softmax").learn(300))
    hard = parameters(make(estimator="straight_through").learn(300))
    for name, value in soft.items():
        torch.testing.assert_close(hard[name], value, rtol=0, atol=0)


@pytest.mark.parametrize("estimator", ESTIMATOR_NAMES)
def test_private_generator_leaves_the_global_rng_alone(estimator: str) -> None:
    model = make(estimator=estimator)
    state = torch.get_rng_state()
    first = _actor_gradient(model, torch.Generator().manual_seed(5))
    assert torch.equal(torch.get_rng_state(), state)
    second = _actor_gradient(model, torch.Generator().manual_seed(5))
    for a, b in zip(first, second, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_predict_is_the_argmax_of_the_logits_when_deterministic() -> None:
    model = make()
    obs = observations(8).numpy()
    actions, _ = model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(actions, model.actor(torch.as_tensor(obs)).argmax(-1).numpy())
    # A sharply peaked policy samples its argmax; a uniform one samples both actions.
    with torch.no_grad():
        model.actor.logits_net[-1].bias.copy_(torch.tensor([0.0, 50.0]))
        model.actor.logits_net[-1].weight.zero_()
    assert set(model.predict(obs, deterministic=False)[0].tolist()) == {1}
    with torch.no_grad():
        model.actor.logits_net[-1].bias.zero_()
    assert set(model.predict(np.repeat(obs, 8, axis=0), deterministic=False)[0].tolist()) == {0, 1}


def test_training_mode_reaches_actor_and_critic_but_not_the_target() -> None:
    model = make()
    modules = {"actor": model.actor, "critic": model.critic}
    for mode in (False, False, True, True, False):
        model.policy.set_training_mode(mode)
        assert {name: m.training for name, m in modules.items()} == {"actor": mode, "critic": mode}
        assert all(sub.training == mode for m in modules.values() for sub in m.modules())
        assert not model.critic_target.training


@pytest.mark.parametrize("net_arch", [[], [8], [8, 6]])
def test_ensemble_members_are_independent_mlps(net_arch: list[int]) -> None:
    torch.manual_seed(0)
    ensemble = EnsembleMLP(3, in_dim=5, out_dim=2, net_arch=net_arch, activation_fn=nn.Tanh)
    shared, per_member = torch.randn(7, 5), torch.randn(3, 7, 5)
    outputs = ensemble(shared), ensemble(per_member)
    assert outputs[0].shape == outputs[1].shape == (3, 7, 2)
    for member in range(3):
        # The same member as a plain MLP: nn.Linear holds the transposed weight.
        layers: list[nn.Module] = []
        for weight, bias in zip(ensemble.weights, ensemble.biases, strict=True):
            linear = nn.Linear(*weight.shape[1:])
            linear.weight.data, linear.bias.data = weight[member].T, bias[member, 0]
            layers += [linear, nn.Tanh()]
        mlp = nn.Sequential(*layers[:-1])
        torch.testing.assert_close(outputs[0][member], mlp(shared))
        torch.testing.assert_close(outputs[1][member], mlp(per_member[member]))
    # Each member drew its own initial weights.
    first = ensemble.weights[0]
    assert not torch.equal(first[0], first[1]) and not torch.equal(first[1], first[2])


@pytest.mark.parametrize("net_arch", [[8], [8, 6]])
def test_layer_normalised_ensemble_members_are_create_mlps_with_layer_norm(net_arch: list[int]) -> None:
    torch.manual_seed(0)
    ensemble = EnsembleMLP(3, in_dim=5, out_dim=2, net_arch=net_arch, activation_fn=nn.ReLU, layer_norm=True)
    assert [tuple(gain.shape) for gain in ensemble.norm_gains] == [(3, 1, width) for width in net_arch]
    with torch.no_grad():  # away from nn.LayerNorm's initial gain 1 and bias 0, so a lost one shows
        for parameter in [*ensemble.norm_gains, *ensemble.norm_biases]:
            parameter.normal_()
    inputs = torch.randn(7, 5)
    outputs = ensemble(inputs)
    for member in range(3):
        mlp = nn.Sequential(*create_mlp(5, 2, net_arch, nn.ReLU, post_linear_modules=[nn.LayerNorm]))
        linears = [module for module in mlp if isinstance(module, nn.Linear)]
        norms = [module for module in mlp if isinstance(module, nn.LayerNorm)]
        with torch.no_grad():
            for linear, weight, bias in zip(linears, ensemble.weights, ensemble.biases, strict=True):
                linear.weight.copy_(weight[member].T)
                linear.bias.copy_(bias[member, 0])
            for norm, gain, shift in zip(norms, ensemble.norm_gains, ensemble.norm_biases, strict=True):
                norm.weight.copy_(gain[member, 0])
                norm.bias.copy_(shift[member, 0])
        torch.testing.assert_close(outputs[member], mlp(inputs))


def test_critic_layer_norm_bounds_values_far_from_the_data() -> None:
    # Linear extrapolation: an unnormalised ReLU critic's values grow with the input's scale, a
    # layer-normalised one's stay within |last weights| * sqrt(width) + |last bias| (Ball et al., 2023).
    plain = make(policy_kwargs={"critic_layer_norm": False})
    normalised = make(policy_kwargs={"critic_layer_norm": True})
    far = torch.full((1, 4), 1e4)
    with torch.no_grad():
        assert plain.critic(far).abs().max() > 100.0
        values = normalised.critic(far).abs().max()
        ensemble = normalised.critic.q_networks
        last_weights, last_biases = (
            ensemble.weights[-1],
            ensemble.biases[-1],
        )  # (member, in, out), (member, 1, out)
        # At the initial gain 1 and bias 0 a normalised hidden layer has norm sqrt(width) before its ReLU.
        bound = last_weights.abs().sum(1).max() * last_weights.shape[1] ** 0.5 + last_biases.abs().max()
        assert values <= bound


def test_critic_layer_norm_is_saved_and_checked(tmp_path: Path) -> None:
    model = make(policy_kwargs={"critic_layer_norm": True})
    assert (
        len(model.critic.q_networks.norm_gains) == 2 and len(model.critic_target.q_networks.norm_gains) == 2
    )
    model.save(tmp_path / "model.zip")
    loaded = GumbelAC.load(tmp_path / "model.zip")
    assert len(loaded.critic.q_networks.norm_gains) == 2
    for name, tensor in model.policy.state_dict().items():
        torch.testing.assert_close(loaded.policy.state_dict()[name], tensor, rtol=0, atol=0)
    assert len(make().critic.q_networks.norm_gains) == 0  # off by default
    with pytest.raises(TypeError, match="critic_layer_norm must be a bool, got 'yes'"):
        make(policy_kwargs={"critic_layer_norm": "yes"})


@pytest.mark.parametrize("critic_input", ["mixture", "concat"])
def test_save_load_round_trip_with_replay_buffer_and_schedule(tmp_path: Path, critic_input: str) -> None:
    schedule = LinearSchedule(2.0, 0.5)
    model = make(
        estimator="gumbel_rao",
        temperature=schedule,
        ent_coef="auto",
        critic_input=critic_input,
        critic_pessimism=0.5,
    )
    model.learn(300)
    model.save(tmp_path / "model")
    model.save_replay_buffer(tmp_path / "buffer")
    loaded = GumbelAC.load(tmp_path / "model", env=gym.make(ENV_ID))
    loaded.load_replay_buffer(tmp_path / "buffer")

    obs = observations(32).numpy()
    np.testing.assert_array_equal(
        model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0]
    )
    for name, value in parameters(model).items():
        torch.testing.assert_close(parameters(loaded)[name], value, rtol=0, atol=0)
    assert loaded.log_ent_coef is not None and model.log_ent_coef is not None
    torch.testing.assert_close(loaded.log_ent_coef, model.log_ent_coef)
    assert loaded.ent_coef_optimizer is not None and model.ent_coef_optimizer is not None
    assert (
        loaded.ent_coef_optimizer.state_dict()["state"][0]["step"]
        == model.ent_coef_optimizer.state_dict()["state"][0]["step"]
    )
    assert loaded.temperature == schedule and loaded.estimator == "gumbel_rao"
    # Loaded without an estimator keyword, with which "auto" would resolve to 8: the saved value wins.
    assert loaded.n_samples == model.n_samples == 1
    assert loaded.critic_input == critic_input == loaded.critic.critic_input
    assert loaded.critic_pessimism == 0.5
    assert loaded.replay_buffer is not None and model.replay_buffer is not None
    assert loaded.replay_buffer.size() == model.replay_buffer.size() == 300
    np.testing.assert_array_equal(loaded.replay_buffer.observations, model.replay_buffer.observations)

    before = parameters(loaded)
    loaded.learn(200, reset_num_timesteps=False)
    assert loaded.num_timesteps == 500
    assert any(not torch.equal(before[name], value) for name, value in parameters(loaded).items())


def test_training_keys_reach_the_csv(tmp_path: Path) -> None:
    model = make(ent_coef="auto")
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(400, log_interval=1)
    with open(tmp_path / "progress.csv") as file:
        header = next(csv.reader(file))
    for key in ("actor_loss", "critic_loss", "ent_coef", "ent_coef_loss", "entropy", "temperature"):
        assert f"train/{key}" in header


def test_target_critics_move_on_every_target_update_interval_th_gradient_step() -> None:
    # One gradient step per train() call: the interval must be counted over the run, not within the call.
    model = make(target_update_interval=4, train_freq=1, gradient_steps=1)
    moved: list[bool] = []
    train = model.train

    def train_and_watch(gradient_steps: int, batch_size: int = 64) -> None:
        before = [p.detach().clone() for p in model.critic_target.parameters()]
        train(gradient_steps, batch_size)
        after = list(model.critic_target.parameters())
        moved.append(any(not torch.equal(a, b) for a, b in zip(before, after, strict=True)))

    model.train = train_and_watch  # type: ignore[method-assign]
    model.learn(FAST["learning_starts"] + 20)
    assert len(moved) >= 16
    assert moved == [(step + 1) % 4 == 0 for step in range(len(moved))]


@pytest.mark.parametrize("simultaneous_updates", [True, False])
def test_simultaneous_updates_step_the_actor_on_the_critics_before_their_step(
    simultaneous_updates: bool,
) -> None:
    # The defining property: the actor's step reads the critics' values from before the critics' step, so it
    # is the same whatever that step does (here: none, or a large one); sequential updates read the moved
    # critics, which makes the test able to fail.
    actors = []
    for critic_learning_rate in (0.0, 0.1):
        model = make(simultaneous_updates=simultaneous_updates, estimator="exact", learning_rate=1e-3)
        model.learn(200)
        model.critic.optimizer.param_groups[0]["lr"] = critic_learning_rate
        replay_data = model.replay_buffer.sample(32, env=None)
        model._eager_update(replay_data, model._current_ent_coef(), model._current_temperature(), True)
        actors.append(torch.cat([p.detach().flatten() for p in model.actor.parameters()]))
    assert torch.equal(actors[0], actors[1]) == simultaneous_updates


@pytest.mark.parametrize("ent_coef", [0.05, "auto"])
def test_actor_steps_once_every_policy_delay_gradient_steps(ent_coef: float | str) -> None:
    # Three gradient steps a train() call and a delay of two: counted over the run, as TD3 counts them, the
    # actor (and a learnt alpha) steps after the critics' 2nd, 4th, 6th... step, across calls.
    model = make(policy_delay=2, train_freq=3, gradient_steps=3, ent_coef=ent_coef)
    model.learn(FAST["learning_starts"] + 30)
    adam_steps = {
        name: [int(state["step"]) for state in optimizer.state.values()]
        for name, optimizer in (("critic", model.critic.optimizer), ("actor", model.actor.optimizer))
    }
    assert model._n_updates >= 30 and model._n_updates % 3 == 0
    assert set(adam_steps["critic"]) == {model._n_updates}
    assert set(adam_steps["actor"]) == {model._n_updates // 2}
    if model.ent_coef_optimizer is not None:
        assert [int(s["step"]) for s in model.ent_coef_optimizer.state.values()] == [model._n_updates // 2]
