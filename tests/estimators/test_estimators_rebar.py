"""REBAR and RELAX: their learnable control variates, the variance gradient and their argument checks."""

import math
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from rlrelax.estimators import (
    ESTIMATORS,
    RebarControlVariate,
    RelaxControlVariate,
    estimate_with_variance_gradient,
)

K = 4


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _logits(*shape: int, seed: int = 0) -> Tensor:
    return torch.randn(shape, generator=_generator(seed), dtype=torch.float64)


def _objective() -> Callable[[Tensor], Tensor]:
    weights = _logits(K, seed=1)
    return lambda actions: ((actions * weights).sum(-1) - 0.3) ** 2


def _perturbed(control_variate: nn.Module, seed: int) -> nn.Module:
    """``control_variate`` in float64 with every parameter moved at random, off its initial values."""
    control_variate = control_variate.double()
    generator = _generator(seed)
    with torch.no_grad():
        for parameter in control_variate.parameters():
            parameter.add_(0.5 * torch.randn(parameter.shape, generator=generator, dtype=torch.float64))
    return control_variate


def _control_variates() -> list[tuple[str, nn.Module]]:
    return [
        ("rebar", _perturbed(RebarControlVariate(eta=0.7, tau=0.4), seed=2)),
        ("relax", _perturbed(RelaxControlVariate(K, generator=_generator(3)), seed=4)),
    ]


def _gradient(name: str, logits: Tensor, seed: int, n_samples: int = 3, **options: object) -> Tensor:
    leaf = logits.clone().requires_grad_(True)
    ESTIMATORS[name](
        leaf, _objective(), n_samples=n_samples, generator=_generator(seed), **options
    ).backward()
    assert leaf.grad is not None
    return leaf.grad


def test_relax_without_a_control_variate_is_reinforce_without_a_baseline() -> None:
    # The untrained network is zero, and RELAX draws the actions first, as the score function does.
    logits = _logits(2, 3, K)
    torch.testing.assert_close(
        _gradient("relax", logits, seed=5), _gradient("score_function", logits, seed=5)
    )


def test_rebar_without_a_control_variate_uses_eta_one_and_tau_one() -> None:
    logits = _logits(2, K)
    default = _gradient("rebar", logits, seed=6)
    explicit = _gradient("rebar", logits, seed=6, control_variate=RebarControlVariate(eta=1.0, tau=1.0))
    assert torch.equal(default, explicit)
    other = _gradient("rebar", logits, seed=6, control_variate=RebarControlVariate(eta=1.0, tau=0.5))
    assert not torch.allclose(default, other)


@pytest.mark.parametrize(("name", "calls"), [("rebar", 2), ("relax", 1)])
def test_rebar_evaluates_f_at_the_sample_and_at_relaxed_samples_relax_only_at_the_sample(
    name: str, calls: int
) -> None:
    objective = _objective()
    seen: list[Tensor] = []

    def f(actions: Tensor) -> Tensor:
        seen.append(actions.detach())
        return objective(actions)

    surrogate = ESTIMATORS[name](_logits(3, K), f, n_samples=4, generator=_generator(7))
    assert len(seen) == calls
    one_hot = seen[0]
    assert one_hot.shape == (4, 3, K) and torch.isin(one_hot, torch.tensor([0.0, 1.0])).all()
    torch.testing.assert_close(surrogate, objective(one_hot).mean(0).sum())
    if name == "rebar":
        relaxed = seen[1]  # z and z~, stacked along the samples
        assert relaxed.shape == (8, 3, K)
        torch.testing.assert_close(relaxed.sum(-1), torch.ones(8, 3, dtype=torch.float64))
        assert ((relaxed > 0) & (relaxed < 1)).all()


@pytest.mark.parametrize(("name", "control_variate"), _control_variates())
def test_surrogates_leave_no_gradient_in_the_control_variate(name: str, control_variate: nn.Module) -> None:
    leaf = _logits(2, K).requires_grad_(True)
    ESTIMATORS[name](leaf, _objective(), n_samples=3, control_variate=control_variate).backward()
    assert leaf.grad is not None
    assert all(parameter.grad is None for parameter in control_variate.parameters())


@pytest.mark.parametrize(("name", "control_variate"), _control_variates())
def test_variance_gradient_is_the_gradient_of_the_squared_estimate(
    name: str, control_variate: nn.Module
) -> None:
    # For fixed draws the estimate is a smooth function of the control variate's parameters, so
    # ∇φ ‖ĝ‖² can be checked by central differences of estimates made with the same seed.
    logits = _logits(2, K)
    estimate = estimate_with_variance_gradient(
        logits, _objective(), control_variate, n_samples=3, generator=_generator(8)
    )
    assert not estimate.requires_grad
    torch.testing.assert_close(estimate, _gradient(name, logits, seed=8, control_variate=control_variate))
    step = 1e-6
    for parameter in control_variate.parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0
        differences = torch.zeros(parameter.numel(), dtype=torch.float64)
        for i in range(parameter.numel()):
            squares = []
            for sign in (1, -1):
                with torch.no_grad():
                    parameter.view(-1)[i] += sign * step
                squares.append(
                    _gradient(name, logits, seed=8, control_variate=control_variate).square().sum()
                )
                with torch.no_grad():
                    parameter.view(-1)[i] -= sign * step
            differences[i] = (squares[0] - squares[1]) / (2 * step)
        torch.testing.assert_close(parameter.grad.flatten(), differences, rtol=1e-6, atol=1e-8)


def test_variance_gradient_accumulates_like_backward() -> None:
    control_variate = RelaxControlVariate(K, generator=_generator(9)).double()
    for _ in range(2):
        estimate_with_variance_gradient(
            _logits(3, K), _objective(), control_variate, n_samples=2, generator=_generator(10)
        )
    once = RelaxControlVariate(K, generator=_generator(9)).double()
    estimate_with_variance_gradient(_logits(3, K), _objective(), once, n_samples=2, generator=_generator(10))
    for twice, single in zip(control_variate.parameters(), once.parameters(), strict=True):
        assert twice.grad is not None and single.grad is not None
        torch.testing.assert_close(twice.grad, 2 * single.grad)


@pytest.mark.parametrize(("name", "control_variate"), _control_variates())
def test_impossible_actions_get_zero_gradient_and_finite_variance_gradients(
    name: str, control_variate: nn.Module
) -> None:
    logits = _logits(3, K)
    logits[:, 1] = -math.inf
    logits[0, 3] = -math.inf
    estimate = estimate_with_variance_gradient(
        logits, _objective(), control_variate, n_samples=4, generator=_generator(11)
    )
    assert torch.isfinite(estimate).all()
    assert torch.equal(estimate[torch.isinf(logits)], torch.zeros(4, dtype=torch.float64))
    for parameter in control_variate.parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all()


def test_relax_control_variate_starts_at_zero_and_draws_its_weights_from_the_generator() -> None:
    state = torch.get_rng_state()
    first = RelaxControlVariate(K, hidden_size=7, tau=0.5, generator=_generator(12))
    assert torch.equal(torch.get_rng_state(), state)
    second = RelaxControlVariate(K, hidden_size=7, tau=0.5, generator=_generator(12))
    assert torch.equal(first.hidden.weight, second.hidden.weight) and first.hidden.weight.shape == (7, K)
    assert first.hidden.weight.abs().max() <= K**-0.5 and first.hidden.weight.std() > 0
    assert float(first.log_tau.detach().exp()) == pytest.approx(0.5)
    assert torch.equal(first(torch.randn(5, 2, K)), torch.zeros(5, 2))
    assert first.n_actions == K


def test_rebar_control_variate_scales_f_at_the_tempered_softmax() -> None:
    control_variate = RebarControlVariate(eta=0.5, tau=0.25).double()
    perturbed = _logits(3, 2, K, seed=13)
    objective = _objective()
    torch.testing.assert_close(
        control_variate(perturbed, objective), 0.5 * objective(torch.softmax(perturbed / 0.25, -1))
    )


@pytest.mark.parametrize("name", ["rebar", "relax"])
def test_wrong_control_variate_is_rejected_before_sampling(name: str) -> None:
    generator = _generator(14)
    state = generator.get_state()
    logits = _logits(2, K)
    other = RelaxControlVariate(K) if name == "rebar" else RebarControlVariate()
    expected = "RebarControlVariate" if name == "rebar" else "RelaxControlVariate"
    with pytest.raises(TypeError, match=rf"control_variate of estimator '{name}' must be a {expected}.*got"):
        ESTIMATORS[name](logits, _objective(), n_samples=2, generator=generator, control_variate=other)
    with pytest.raises(TypeError, match=f"must be a {expected} or None, got Linear"):
        ESTIMATORS[name](
            logits, _objective(), n_samples=2, generator=generator, control_variate=nn.Linear(K, 1)
        )
    assert torch.equal(generator.get_state(), state)


def test_relax_control_variate_for_another_number_of_actions_is_rejected() -> None:
    generator = _generator(15)
    state = generator.get_state()
    control_variate = RelaxControlVariate(3)
    with pytest.raises(ValueError, match=r"takes 3 actions, but logits of shape \(2, 4\) have K = 4"):
        ESTIMATORS["relax"](
            _logits(2, K), _objective(), n_samples=2, generator=generator, control_variate=control_variate
        )
    with pytest.raises(ValueError, match="takes 3 actions"):
        estimate_with_variance_gradient(_logits(2, K), _objective(), control_variate, generator=generator)
    assert torch.equal(generator.get_state(), state)


def test_variance_gradient_rejects_bad_arguments_before_sampling() -> None:
    generator = _generator(16)
    state = generator.get_state()
    control_variate = RebarControlVariate()
    linear = nn.Linear(K, 1)
    with pytest.raises(TypeError, match="RebarControlVariate or a RelaxControlVariate, got Linear"):
        estimate_with_variance_gradient(_logits(K), _objective(), linear, generator=generator)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"n_samples.*0"):
        estimate_with_variance_gradient(_logits(K), _objective(), control_variate, n_samples=0)
    with pytest.raises(ValueError, match="NaN"):
        estimate_with_variance_gradient(torch.tensor([0.0, math.nan]), _objective(), control_variate)
    with pytest.raises(TypeError, match="generator"):
        estimate_with_variance_gradient(_logits(K), _objective(), control_variate, generator=0)  # type: ignore[arg-type]
    assert torch.equal(generator.get_state(), state)


def test_control_variate_returning_the_wrong_shape_is_rejected() -> None:
    class Constant(RelaxControlVariate):
        def forward(self, perturbed: Tensor) -> Tensor:
            return perturbed.sum()

    with pytest.raises(ValueError, match=r"the control variate must map .* got shape \(\)"):
        ESTIMATORS["relax"](_logits(2, K), _objective(), n_samples=2, control_variate=Constant(K))


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: RebarControlVariate(eta=math.nan), ValueError, "eta must be finite, got nan"),
        (lambda: RebarControlVariate(eta="1"), TypeError, "eta must be a real number, got '1'"),
        (lambda: RebarControlVariate(tau=0.0), ValueError, "tau must be a finite number > 0, got 0.0"),
        (lambda: RelaxControlVariate(0), ValueError, "n_actions must be an int >= 1, got 0"),
        (lambda: RelaxControlVariate(2.0), TypeError, "n_actions must be an int, got 2.0"),
        (lambda: RelaxControlVariate(2, hidden_size=0), ValueError, "hidden_size must be an int >= 1, got 0"),
        (lambda: RelaxControlVariate(2, tau=-1.0), ValueError, "tau must be a finite number > 0, got -1.0"),
        (lambda: RelaxControlVariate(2, generator=1), TypeError, "generator must be a torch.Generator"),
    ],
)
def test_control_variates_reject_bad_arguments(make: Callable[[], object], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        make()
