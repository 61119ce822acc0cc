"""Tests of the relaxed Bernoulli and the straight-through estimators in rlrelax.relax."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from rlrelax.relax import hard_threshold, relaxed_bernoulli, ste_sign, straight_through

INF = math.inf


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- relaxed Bernoulli


@pytest.mark.parametrize("hard", [False, True])
def test_relaxed_bernoulli_frequencies_match_sigmoid(hard: bool) -> None:
    logits = torch.tensor([-1.5, 0.0, 0.7, 2.0])
    sample = relaxed_bernoulli(logits.expand(20_000, 4), 0.5, hard=hard, generator=_gen(1))
    ones = (sample > 0.5).sum(0).numpy()
    p = torch.sigmoid(logits).double().numpy()
    for count, prob in zip(ones, p, strict=True):
        assert stats.binomtest(int(count), 20_000, float(prob)).pvalue > 1e-3
    # Guards against a test that cannot fail: a shifted probability is rejected.
    assert stats.binomtest(int(ones[1]), 20_000, 0.47).pvalue < 1e-3


def test_relaxed_bernoulli_hard_is_exact_and_has_the_soft_gradient() -> None:
    x = torch.randn(300, generator=_gen(), requires_grad=True)
    w = torch.randn(300, generator=_gen(1))
    soft = relaxed_bernoulli(x, 0.7, generator=_gen(2))
    hard = relaxed_bernoulli(x, 0.7, hard=True, generator=_gen(2))
    assert torch.all((hard == 0) | (hard == 1))
    assert torch.equal(hard, (soft > 0.5).float())
    (g_soft,) = torch.autograd.grad((soft * w).sum(), x)
    (g_hard,) = torch.autograd.grad((hard * w).sum(), x)
    torch.testing.assert_close(g_soft, g_hard)


def test_relaxed_bernoulli_infinite_logits_are_certain_with_zero_gradient() -> None:
    x = torch.tensor([-INF, INF, 0.0], requires_grad=True)
    for hard in (False, True):
        y = relaxed_bernoulli(x, 0.5, hard=hard, generator=_gen())
        assert y[0] == 0.0 and y[1] == 1.0
        (grad,) = torch.autograd.grad(y.sum(), x)
        assert torch.isfinite(grad).all() and grad[0] == 0.0 and grad[1] == 0.0


def test_relaxed_bernoulli_tau_to_zero_approaches_hard_and_generator_reproducible() -> None:
    x = torch.randn(200, generator=_gen())
    state = torch.get_rng_state()
    hard = relaxed_bernoulli(x, 1.0, hard=True, generator=_gen(3))
    errors = [(relaxed_bernoulli(x, tau, generator=_gen(3)) - hard).abs().max().item() for tau in (1.0, 1e-4)]
    assert errors[0] > 0.1 and errors[1] < 1e-2
    assert torch.equal(relaxed_bernoulli(x, generator=_gen(4)), relaxed_bernoulli(x, generator=_gen(4)))
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_relaxed_bernoulli_low_precision(dtype: torch.dtype) -> None:
    x = torch.tensor([1e4, -1e4, 0.0], dtype=dtype)
    for tau in (1e-3, 1.0, 1e3):
        for hard in (False, True):
            y = relaxed_bernoulli(x, tau, hard=hard, generator=_gen())
            assert y.dtype == dtype and torch.isfinite(y).all()
    assert relaxed_bernoulli(x, 1e-3, generator=_gen())[:2].tolist() == [1.0, 0.0]


@pytest.mark.parametrize("drawn", [0.0, 1.0])
def test_logistic_noise_finite_for_degenerate_uniform_draws(
    monkeypatch: pytest.MonkeyPatch, drawn: float
) -> None:
    monkeypatch.setattr(torch.Tensor, "uniform_", lambda self, *args, **kwargs: self.fill_(drawn))
    x = torch.zeros(3, requires_grad=True)
    for dtype in (torch.float32, torch.float64):
        y = relaxed_bernoulli(x.to(dtype), 0.1)
        assert torch.isfinite(y).all()
        (grad,) = torch.autograd.grad(y.sum(), x)
        assert torch.isfinite(grad).all()


def test_relaxed_bernoulli_validation() -> None:
    with pytest.raises(ValueError, match=r"logits contain NaN \(first at index \(1,\)\)"):
        relaxed_bernoulli(torch.tensor([0.0, math.nan]))
    with pytest.raises(ValueError, match=r"tau must be a finite number > 0, got -0\.5"):
        relaxed_bernoulli(torch.zeros(2), -0.5)
    with pytest.raises(TypeError, match="hard must be a bool"):
        relaxed_bernoulli(torch.zeros(2), hard=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="floating-point tensor"):
        relaxed_bernoulli(torch.zeros(2, dtype=torch.int64))


def test_gradcheck_relaxed_bernoulli() -> None:
    x = torch.randn(5, dtype=torch.float64, generator=_gen(), requires_grad=True)
    tau = torch.tensor(0.6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z, t: relaxed_bernoulli(z, t, generator=_gen(3)), (x, tau))


# ---------------------------------------------------------------- straight-through


def test_straight_through_forward_is_exact_and_gradient_is_identity() -> None:
    soft = torch.tensor([0.3, 0.1, 0.6], requires_grad=True)
    hard = torch.tensor([False, False, True])
    y = straight_through(hard, soft)
    assert y.dtype == torch.float32 and y.tolist() == [0.0, 0.0, 1.0]
    upstream = torch.tensor([1.0, -2.0, 3.0])
    (grad,) = torch.autograd.grad(y, soft, upstream)
    assert torch.equal(grad, upstream)


def test_straight_through_hard_gets_no_gradient() -> None:
    hard = torch.tensor([1.0, 0.0], requires_grad=True)
    soft = torch.tensor([0.2, 0.8], requires_grad=True)
    straight_through(hard, soft).sum().backward()
    assert hard.grad is None and soft.grad is not None


def test_straight_through_exact_where_naive_formula_rounds() -> None:
    # 1 - s + s with s = 0.1 is not 1 in float32 for every s; ours must be.
    soft = torch.rand(10_000, generator=_gen()) * 0.5
    y = straight_through(torch.ones_like(soft), soft)
    assert torch.all(y == 1.0)


def test_straight_through_validation() -> None:
    with pytest.raises(ValueError, match=r"same shape, got \(2,\) and \(3,\)"):
        straight_through(torch.zeros(2), torch.zeros(3))
    with pytest.raises(ValueError, match=r"soft must be finite, got nan at index \(1,\)"):
        straight_through(torch.zeros(2), torch.tensor([0.0, math.nan]))
    with pytest.raises(ValueError, match=r"hard must be finite, got inf at index \(0,\)"):
        straight_through(torch.tensor([INF, 0.0]), torch.zeros(2))
    with pytest.raises(TypeError, match="hard must be a torch"):
        straight_through([0.0], torch.zeros(1))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="soft must be a floating-point tensor"):
        straight_through(torch.zeros(1), torch.zeros(1, dtype=torch.int64))


def test_ste_sign() -> None:
    x = torch.tensor([-2.0, -0.0, 0.0, 0.5, 1e30, -1e30], requires_grad=True)
    y = ste_sign(x)
    assert y.tolist() == [-1.0, 1.0, 1.0, 1.0, 1.0, -1.0]
    (grad,) = torch.autograd.grad(y, x, torch.arange(6.0))
    assert torch.equal(grad, torch.arange(6.0))
    assert ste_sign(torch.tensor([-3.0, 3.0], dtype=torch.float16)).dtype == torch.float16
    with pytest.raises(ValueError, match=r"x must be finite, got nan at index \(1,\)"):
        ste_sign(torch.tensor([1.0, math.nan]))
    with pytest.raises(ValueError, match=r"x must be finite, got -inf at index \(0,\)"):
        ste_sign(torch.tensor([-INF, 1.0]))


def test_hard_threshold_forward_and_sigmoid_gradient() -> None:
    x = torch.tensor([-1.0, 0.5, 0.5000001, 2.0, INF, -INF], dtype=torch.float64, requires_grad=True)
    y = hard_threshold(x, threshold=0.5, tau=0.3)
    assert y.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0, 0.0]
    (grad,) = torch.autograd.grad(y.sum(), x)
    ref = x.detach().clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(torch.sigmoid((ref - 0.5) / 0.3).sum(), ref)
    torch.testing.assert_close(grad, expected)
    assert grad[4] == 0.0 and grad[5] == 0.0


def test_hard_threshold_low_precision_and_validation() -> None:
    x = torch.tensor([1e4, -1e4, 0.1], dtype=torch.bfloat16, requires_grad=True)
    y = hard_threshold(x, tau=1e-3)
    assert y.dtype == torch.bfloat16 and y.tolist() == [1.0, 0.0, 1.0]
    (grad,) = torch.autograd.grad(y.sum(), x)
    assert torch.isfinite(grad).all()
    with pytest.raises(ValueError, match="threshold must be finite, got nan"):
        hard_threshold(torch.zeros(2), threshold=math.nan)
    with pytest.raises(ValueError, match=r"tau must be a finite number > 0, got 0\.0"):
        hard_threshold(torch.zeros(2), tau=0.0)
    with pytest.raises(ValueError, match="x contain NaN"):
        hard_threshold(torch.tensor([math.nan]))
