"""Statistical properties of the estimators, measured against the exact gradient by enumeration.

Many independent estimates come from one call: the logits are copied R times along a leading batch
dimension, and since the surrogate sums over the batch, the gradient w.r.t. each copy is an independent
estimate. The objectives broadcast their parameters over that extra dimension.
"""

from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from rlrelax.estimators import (
    ESTIMATORS,
    RebarControlVariate,
    RelaxControlVariate,
    estimate_with_variance_gradient,
    exact_gradient,
)

K = 4
BATCHES = [(), (3,), (2, 3)]


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape: int, seed: int) -> Tensor:
    return torch.randn(shape, generator=_generator(seed))


def _objective(kind: str, batch: tuple[int, ...]) -> Callable[[Tensor], Tensor]:
    """An objective of one-hot or relaxed actions ``(..., *batch, K)`` with per-batch-element parameters."""
    weights = _randn(*batch, K, seed=1)
    target = _randn(*batch, seed=2)
    matrix = _randn(K, K, seed=3)
    matrix = matrix + matrix.T
    objectives: dict[str, Callable[[Tensor], Tensor]] = {
        "linear": lambda a: (a * weights).sum(-1),
        "quadratic": lambda a: ((a @ matrix) * a).sum(-1),
        "squared_error": lambda a: ((a * weights).sum(-1) - target) ** 2,
        "sine": lambda a: torch.sin(2.0 * (a * weights).sum(-1)),
    }
    return objectives[kind]


def _draws(
    name: str,
    logits: Tensor,
    f: Callable[[Tensor], Tensor],
    n_draws: int,
    n_samples: int,
    seed: int,
    **options: object,
) -> Tensor:
    """``n_draws`` independent estimates of the gradient, flattened to ``(n_draws, logits.numel())``."""
    copies = logits.expand(n_draws, *logits.shape).clone().requires_grad_(True)
    generator = torch.Generator().manual_seed(seed)
    ESTIMATORS[name](copies, f, n_samples=n_samples, generator=generator, **options).backward()
    assert copies.grad is not None
    return copies.grad.reshape(n_draws, -1)


def _mean_and_standard_error(draws: Tensor) -> tuple[Tensor, Tensor]:
    return draws.mean(0), draws.std(0) / draws.shape[0] ** 0.5


def _total_variance(draws: Tensor) -> float:
    return float(torch.cov(draws.T).trace()) if draws.shape[1] > 1 else float(draws.var())


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("kind", ["linear", "quadratic", "squared_error"])
@pytest.mark.parametrize("baseline", ["none", "leave_one_out"])
def test_score_function_is_unbiased(baseline: str, kind: str, batch: tuple[int, ...]) -> None:
    logits = _randn(*batch, K, seed=0)
    f = _objective(kind, batch)
    truth = exact_gradient(logits, f).flatten()
    draws = _draws("score_function", logits, f, n_draws=10_000, n_samples=4, seed=10, baseline=baseline)
    mean, standard_error = _mean_and_standard_error(draws)
    assert (standard_error > 0).all()
    assert ((mean - truth).abs() <= 4 * standard_error).all(), (mean, truth, standard_error)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("kind", ["linear", "quadratic", "squared_error"])
def test_mean_baseline_scales_the_expected_gradient_by_n_minus_one_over_n(
    kind: str, batch: tuple[int, ...]
) -> None:
    # Each sample is part of its own baseline: E[(f_i - mean_j f_j) ∇log p_i] = (n - 1) / n ∇E[f].
    n_samples = 4
    logits = _randn(*batch, K, seed=0)
    f = _objective(kind, batch)
    truth = exact_gradient(logits, f).flatten()
    draws = _draws("score_function", logits, f, n_draws=10_000, n_samples=n_samples, seed=11, baseline="mean")
    mean, standard_error = _mean_and_standard_error(draws)
    scaled_truth = truth * (n_samples - 1) / n_samples
    assert ((mean - scaled_truth).abs() <= 4 * standard_error).all(), (mean, scaled_truth, standard_error)


def test_mean_baseline_bias_is_detectable() -> None:
    # The same check against the unscaled truth fails: the (n - 1) / n factor is a real bias.
    logits = _randn(K, seed=0)
    f = _objective("linear", ())
    truth = exact_gradient(logits, f)
    draws = _draws("score_function", logits, f, n_draws=20_000, n_samples=2, seed=12, baseline="mean")
    mean, standard_error = _mean_and_standard_error(draws)
    assert ((mean - truth).abs() > 4 * standard_error).any()


def test_leave_one_out_reduces_variance_when_f_has_a_large_offset() -> None:
    logits = _randn(2, 3, K, seed=0)
    linear = _objective("linear", (2, 3))

    def f(actions: Tensor) -> Tensor:
        return linear(actions) + 100.0

    variances = {
        baseline: _total_variance(
            _draws("score_function", logits, f, n_draws=5_000, n_samples=4, seed=13, baseline=baseline)
        )
        for baseline in ("none", "leave_one_out")
    }
    # The offset alone puts a variance of order 100² into "none"; leave-one-out cancels it exactly.
    assert variances["leave_one_out"] < 0.01 * variances["none"], variances


@pytest.mark.parametrize("kind", ["linear", "quadratic", "sine"])
def test_gumbel_softmax_bias_shrinks_with_the_temperature(kind: str) -> None:
    # Not a law for every f: for "squared_error" here the bias is 0.0070 at tau=2 and 0.0082 at tau=1.
    logits = _randn(K, seed=0)
    f = _objective(kind, ())
    truth = exact_gradient(logits, f)
    biases, noises = [], []
    for tau in (2.0, 1.0, 0.5, 0.1):
        draws = _draws("gumbel_softmax", logits, f, n_draws=400_000, n_samples=1, seed=14, tau=tau)
        mean, standard_error = _mean_and_standard_error(draws)
        biases.append(float((mean - truth).norm()))
        # Size of the Monte Carlo error of the mean, as a vector: bounds how far the measured bias can
        # be from the real one (|‖m̂ - t‖ - ‖m - t‖| <= ‖m̂ - m‖).
        noises.append(float(standard_error.norm()))
    for i in range(len(biases) - 1):
        assert biases[i + 1] + 4 * (noises[i] + noises[i + 1]) < biases[i], (biases, noises)


@pytest.mark.parametrize("tau", [1.0, 0.5])
@pytest.mark.parametrize("batch", [(), (2, 3)])
def test_gumbel_rao_has_no_more_variance_than_straight_through(tau: float, batch: tuple[int, ...]) -> None:
    logits = _randn(*batch, K, seed=0)
    f = _objective("squared_error", batch)
    straight = _draws("straight_through", logits, f, n_draws=5_000, n_samples=1, seed=15, tau=tau)
    rao = _draws("gumbel_rao", logits, f, n_draws=5_000, n_samples=1, seed=15, tau=tau, n_rao_samples=10)
    assert _total_variance(rao) <= _total_variance(straight)
    # Rao-Blackwellization keeps the expectation: the two estimate the same (biased) gradient.
    (straight_mean, straight_se), (rao_mean, rao_se) = map(_mean_and_standard_error, (straight, rao))
    assert ((rao_mean - straight_mean).abs() <= 4 * (straight_se**2 + rao_se**2).sqrt()).all()


def test_gumbel_rao_with_one_conditional_sample_matches_straight_through_in_distribution() -> None:
    # (action, conditional noise) has the joint law of (argmax, unconditional noise), so with one Rao
    # sample the estimator is straight-through again: same mean and same variance up to noise.
    logits = _randn(K, seed=0)
    f = _objective("squared_error", ())
    straight = _draws("straight_through", logits, f, n_draws=50_000, n_samples=1, seed=16)
    rao = _draws("gumbel_rao", logits, f, n_draws=50_000, n_samples=1, seed=17, n_rao_samples=1)
    (straight_mean, straight_se), (rao_mean, rao_se) = map(_mean_and_standard_error, (straight, rao))
    assert ((rao_mean - straight_mean).abs() <= 4 * (straight_se**2 + rao_se**2).sqrt()).all()
    assert abs(_total_variance(rao) / _total_variance(straight) - 1) < 0.05


def _control_variate(name: str, learnable: str) -> RebarControlVariate | RelaxControlVariate | None:
    """``None`` (the estimator's default) or a learnable part with every parameter moved at random."""
    if learnable == "default":
        return None
    control_variate = (
        RebarControlVariate() if name == "rebar" else RelaxControlVariate(K, generator=_generator(20))
    )
    generator = _generator(21)
    with torch.no_grad():
        for parameter in control_variate.parameters():
            parameter.add_(0.5 * torch.randn(parameter.shape, generator=generator))
    return control_variate


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("kind", ["linear", "quadratic", "squared_error", "sine"])
@pytest.mark.parametrize("learnable", ["default", "perturbed"])
@pytest.mark.parametrize("name", ["rebar", "relax"])
def test_rebar_and_relax_are_unbiased(name: str, learnable: str, kind: str, batch: tuple[int, ...]) -> None:
    logits = _randn(*batch, K, seed=0)
    f = _objective(kind, batch)
    truth = exact_gradient(logits, f).flatten()
    control_variate = _control_variate(name, learnable)
    draws = _draws(name, logits, f, n_draws=10_000, n_samples=2, seed=22, control_variate=control_variate)
    mean, standard_error = _mean_and_standard_error(draws)
    assert (standard_error > 0).all()
    assert ((mean - truth).abs() <= 4 * standard_error).all(), (mean, truth, standard_error)


@pytest.mark.parametrize("name", ["rebar", "relax"])
def test_variance_minimisation_on_the_binary_toy(name: str) -> None:
    # E[(b - 0.499)²] for b ~ Bernoulli(sigmoid(θ)) at θ = 0: the K = 2 case with logits (0, θ). The two
    # values differ by 0.002, so the leave-one-out baseline removes nearly all the score function's variance.
    logits = torch.zeros(2)

    def f(actions: Tensor) -> Tensor:
        return (actions[..., 1] - 0.499) ** 2

    control_variate = (
        RebarControlVariate() if name == "rebar" else RelaxControlVariate(2, generator=_generator(23))
    )

    def variance(**options: object) -> float:
        return _total_variance(_draws(name, logits, f, n_draws=20_000, n_samples=2, seed=24, **options))

    before = variance(control_variate=control_variate)
    optimizer = torch.optim.Adam(control_variate.parameters(), lr=0.03)
    generator = _generator(25)
    for _ in range(400):
        optimizer.zero_grad()
        # 64 copies of θ a step: with 16, the noise of the variance gradient keeps kicking RELAX's network
        # away from its low-variance region.
        estimate_with_variance_gradient(
            logits.expand(64, 2), f, control_variate, n_samples=2, generator=generator
        )
        optimizer.step()
    after = variance(control_variate=control_variate)
    leave_one_out = _total_variance(
        _draws("score_function", logits, f, n_draws=20_000, n_samples=2, seed=24, baseline="leave_one_out")
    )
    assert after < 0.9 * before, (before, after)
    if name == "relax":
        assert before > 1_000 * leave_one_out  # untrained, RELAX is REINFORCE without a baseline
        assert after < 0.5 * leave_one_out, (after, leave_one_out)
