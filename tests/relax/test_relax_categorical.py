"""Tests of the tempered softmax, Gumbel noise and Gumbel-softmax in rlrelax.relax."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from rlrelax.relax import gumbel_noise, gumbel_softmax, log_softmax, softmax

INF = math.inf
LOW_PRECISION = [torch.float16, torch.bfloat16]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- softmax / log_softmax


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("tau", [0.3, 1.0, 4.0])
def test_softmax_matches_torch(dtype: torch.dtype, tau: float) -> None:
    x = torch.randn(5, 7, generator=_gen(), dtype=dtype)
    torch.testing.assert_close(softmax(x, tau), torch.softmax(x / tau, -1))
    torch.testing.assert_close(log_softmax(x, tau), torch.log_softmax(x / tau, -1))
    torch.testing.assert_close(softmax(x, tau, dim=0), torch.softmax(x / tau, 0))
    torch.testing.assert_close(log_softmax(x, tau, dim=-2), torch.log_softmax(x / tau, 0))


def test_softmax_tau_to_zero_is_one_hot_of_argmax() -> None:
    x = torch.randn(50, 6, generator=_gen())
    one_hot = F.one_hot(x.argmax(-1), 6).float()
    assert (softmax(x, 1.0) - one_hot).abs().max() > 0.1
    assert (softmax(x, 1e-4) - one_hot).abs().max() < 1e-6


def test_softmax_learnable_tensor_tau_gets_gradient() -> None:
    x = torch.randn(4, 3, generator=_gen(), dtype=torch.float64)
    tau = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    (softmax(x, tau)[:, 0]).sum().backward()
    assert tau.grad is not None and torch.isfinite(tau.grad)
    tau_ref = tau.detach().clone().requires_grad_(True)
    (torch.softmax(x / tau_ref, -1)[:, 0]).sum().backward()
    torch.testing.assert_close(tau.grad, tau_ref.grad)


@pytest.mark.parametrize("fn", [softmax, log_softmax], ids=["softmax", "log_softmax"])
def test_learned_tau_gradient_ignores_minus_inf_logits(fn: Callable[..., torch.Tensor]) -> None:
    # -inf / tau has derivative 0 * inf = NaN w.r.t. tau; an impossible action must not poison it.
    x = torch.tensor([[0.5, -INF, 1.0], [2.0, 0.1, -INF]], dtype=torch.float64)
    tau = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    fn(x, tau)[torch.isfinite(x)].sum().backward()
    # The impossible entries contribute nothing: the rows without them give the same gradient.
    tau_ref = tau.detach().clone().requires_grad_(True)
    torch.cat([fn(row[torch.isfinite(row)], tau_ref) for row in x]).sum().backward()
    assert tau.grad is not None and torch.isfinite(tau.grad)
    torch.testing.assert_close(tau.grad, tau_ref.grad)


def test_gumbel_softmax_learned_tau_gradient_is_finite_with_minus_inf_logits() -> None:
    x = torch.tensor([[0.5, -INF, 1.0], [2.0, 0.1, -INF]], dtype=torch.float64)
    tau = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    (gumbel_softmax(x, tau, generator=_gen()) * torch.arange(3.0, dtype=torch.float64)).sum().backward()
    assert tau.grad is not None and torch.isfinite(tau.grad) and tau.grad != 0


def test_minus_inf_logits_get_zero_mass_and_zero_gradient() -> None:
    x = torch.tensor([[0.5, -INF, 1.0, -INF], [-INF, 2.0, -INF, -INF]], requires_grad=True)
    weights = torch.randn(2, 4, generator=_gen())
    for fn in (
        lambda z: softmax(z, 0.5),
        lambda z: gumbel_softmax(z, 0.5, generator=_gen()),
        lambda z: gumbel_softmax(z, 0.5, hard=True, generator=_gen()),
    ):
        x.grad = None
        y = fn(x)
        assert torch.all(y[torch.isinf(x)] == 0.0)
        assert torch.isfinite(y).all()
        (y * weights).sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()
        assert torch.all(x.grad[torch.isinf(x)] == 0.0)
        assert x.grad[0, 0] != 0.0  # the possible entries do get a gradient


def test_log_softmax_minus_inf_entries() -> None:
    x = torch.tensor([[0.5, -INF, 1.0]], requires_grad=True)
    out = log_softmax(x, 0.5)
    assert out[0, 1] == -INF
    torch.testing.assert_close(out[0, [0, 2]], torch.log_softmax(torch.tensor([1.0, 2.0]), -1))
    out[0, [0, 2]].sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad[0, 1] == 0.0


@pytest.mark.parametrize("dtype", LOW_PRECISION)
def test_low_precision_huge_logits_stay_finite(dtype: torch.dtype) -> None:
    x = torch.tensor([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], dtype=dtype)
    for tau in (1e-3, 1.0, 50.0):
        p = softmax(x, tau)
        lp = log_softmax(x, tau)
        assert p.dtype == dtype and lp.dtype == dtype
        assert torch.isfinite(p).all() and torch.isfinite(lp).all()
        torch.testing.assert_close(p.float().sum(-1), torch.ones(2), atol=1e-2, rtol=0)
        for hard in (False, True):
            y = gumbel_softmax(x, tau, hard=hard, generator=_gen())
            assert y.dtype == dtype and torch.isfinite(y).all()
            torch.testing.assert_close(y.float().sum(-1), torch.ones(2), atol=1e-2, rtol=0)
    # The first row's sample is certain: 1e4 beats any Gumbel noise.
    assert gumbel_softmax(x, 1e-3, generator=_gen())[0].tolist() == [1.0, 0.0, 0.0]


def test_log_softmax_float16_clamps_instead_of_overflowing() -> None:
    lp = log_softmax(torch.tensor([1e4, -1e4], dtype=torch.float16), 1e-3)
    assert lp[0] == 0.0 and lp[1] == torch.finfo(torch.float16).min


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_extreme_logits_and_tiny_tau_stay_finite(dtype: torch.dtype) -> None:
    big = torch.finfo(dtype).max / 2
    x = torch.tensor([[big, -big], [-big, -big], [1e4, -1e4]], dtype=dtype)
    for tau in (1e-30, 1e-3, 1.0, 1e30):
        for y in (softmax(x, tau), gumbel_softmax(x, tau, generator=_gen()), log_softmax(x, tau)):
            assert torch.isfinite(y).all(), (tau, y)
    assert softmax(x, 1e-30)[0].tolist() == [1.0, 0.0]
    torch.testing.assert_close(softmax(x, 1e-30)[1], torch.tensor([0.5, 0.5], dtype=dtype))


# ---------------------------------------------------------------- validation

RelaxFn = Callable[..., torch.Tensor]
RELAX_FUNCTIONS: dict[str, RelaxFn] = {
    "softmax": lambda x, **kw: softmax(x, **kw),
    "log_softmax": lambda x, **kw: log_softmax(x, **kw),
    "gumbel_softmax": lambda x, **kw: gumbel_softmax(x, **kw),
    "gumbel_softmax_hard": lambda x, **kw: gumbel_softmax(x, hard=True, **kw),
}


@pytest.mark.parametrize("fn", RELAX_FUNCTIONS.values(), ids=RELAX_FUNCTIONS.keys())
@pytest.mark.parametrize(
    ("logits", "message"),
    [
        ([[0.0, 1.0], [math.nan, 0.0]], r"NaN \(first at index \(1, 0\)\)"),
        ([[0.0, INF]], r"\+inf \(first at index \(0, 1\)\)"),
        ([[0.0, 1.0], [-INF, -INF]], r"-inf for every entry .*index \(1,\)"),
    ],
)
def test_bad_logits_raise_naming_the_value(fn: RelaxFn, logits: list[list[float]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fn(torch.tensor(logits))


@pytest.mark.parametrize("fn", RELAX_FUNCTIONS.values(), ids=RELAX_FUNCTIONS.keys())
@pytest.mark.parametrize("tau", [0.0, -1.0, math.nan, INF, -INF])
def test_bad_tau_raises_naming_the_value(fn: RelaxFn, tau: float) -> None:
    with pytest.raises(ValueError, match=rf"tau must be a finite number > 0, got {tau!r}"):
        fn(torch.zeros(2, 3), tau=tau)
    with pytest.raises(ValueError, match="tau must be a finite number > 0"):
        fn(torch.zeros(2, 3), tau=torch.tensor(tau))


@pytest.mark.parametrize("fn", RELAX_FUNCTIONS.values(), ids=RELAX_FUNCTIONS.keys())
def test_bad_types_and_dims(fn: RelaxFn) -> None:
    with pytest.raises(TypeError, match="tau must be a real number"):
        fn(torch.zeros(2, 3), tau="1")
    with pytest.raises(TypeError, match="tau must be a real number"):
        fn(torch.zeros(2, 3), tau=True)
    with pytest.raises(ValueError, match="one-element"):
        fn(torch.zeros(2, 3), tau=torch.ones(2))
    with pytest.raises(TypeError, match=r"floating-point tensor, got dtype torch\.int64"):
        fn(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(TypeError, match=r"must be a torch\.Tensor"):
        fn([0.0, 1.0])
    with pytest.raises(ValueError, match="dim=2 is out of range"):
        fn(torch.zeros(2, 3), dim=2)
    with pytest.raises(ValueError, match="no entries along dim=1"):
        fn(torch.zeros(2, 0))
    with pytest.raises(ValueError, match="at least 1 dimension"):
        fn(torch.tensor(0.0))


def test_validation_happens_before_any_random_draw() -> None:
    generator = _gen(4)
    with pytest.raises(ValueError, match="NaN"):
        gumbel_softmax(torch.tensor([0.0, math.nan]), generator=generator)
    assert torch.equal(generator.get_state(), _gen(4).get_state())


def test_empty_batch_is_fine() -> None:
    assert gumbel_softmax(torch.zeros(0, 3), hard=True).shape == (0, 3)
    assert softmax(torch.zeros(0, 3)).shape == (0, 3)


def test_gumbel_softmax_hard_must_be_bool() -> None:
    with pytest.raises(TypeError, match="hard must be a bool"):
        gumbel_softmax(torch.zeros(3), hard=1)  # type: ignore[arg-type]


# ---------------------------------------------------------------- Gumbel noise


def test_gumbel_noise_distribution_and_dtypes() -> None:
    g = gumbel_noise((100_000,), generator=_gen(1))
    assert g.dtype == torch.float32 and torch.isfinite(g).all()
    result = stats.kstest(g.numpy(), stats.gumbel_r.cdf)
    assert result.pvalue > 1e-3
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        h = gumbel_noise([3, 4], generator=_gen(), dtype=dtype)
        assert h.dtype == dtype and h.shape == (3, 4) and torch.isfinite(h).all()


@pytest.mark.parametrize("drawn", [0.0, 1.0])
def test_gumbel_noise_is_finite_even_when_the_uniform_draw_is_degenerate(
    monkeypatch: pytest.MonkeyPatch, drawn: float
) -> None:
    # u = 0 (log(0) = -inf) or u = 1 (log(-log 1) = -inf) must not leak into the result.
    monkeypatch.setattr(torch.Tensor, "uniform_", lambda self, *args, **kwargs: self.fill_(drawn))
    for dtype in (torch.float32, torch.float64, torch.float16):
        assert torch.isfinite(gumbel_noise((4,), dtype=dtype)).all()
    x = torch.tensor([[0.0, 1.0, -INF]], requires_grad=True)
    for hard in (False, True):
        y = gumbel_softmax(x, 0.1, hard=hard)
        assert torch.isfinite(y).all()
        y[0, 0].backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()


def test_gumbel_noise_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"non-negative ints, got \(2, -1\)"):
        gumbel_noise((2, -1))
    with pytest.raises(TypeError, match=r"floating torch\.dtype"):
        gumbel_noise((2,), dtype=torch.int32)


def test_generator_reproducible_and_leaves_global_rng_alone() -> None:
    x = torch.randn(8, 5, generator=_gen(3))
    state = torch.get_rng_state()
    a = gumbel_softmax(x, 0.5, generator=_gen(7))
    b = gumbel_softmax(x, 0.5, generator=_gen(7))
    c = gumbel_softmax(x, 0.5, generator=_gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(gumbel_noise((6,), generator=_gen(7)), gumbel_noise((6,), generator=_gen(7)))
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(11)
    d = gumbel_softmax(x, 0.5)
    torch.manual_seed(11)
    assert torch.equal(d, gumbel_softmax(x, 0.5))


# ---------------------------------------------------------------- Gumbel-softmax samples


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_hard_sample_is_an_exact_one_hot_of_the_soft_argmax(dtype: torch.dtype) -> None:
    x = torch.randn(500, 7, generator=_gen()).to(dtype)
    hard = gumbel_softmax(x, 3.0, hard=True, generator=_gen(4))
    # Low precision is computed in float32 with the same noise; the choice is made before rounding the
    # soft sample, which can tie in float16.
    soft = gumbel_softmax(
        x.to(torch.float64 if dtype == torch.float64 else torch.float32), 3.0, generator=_gen(4)
    )
    assert hard.dtype == dtype
    assert torch.all((hard == 0) | (hard == 1))
    assert torch.all(hard.sum(-1) == 1)
    assert torch.equal(hard.argmax(-1), soft.argmax(-1))


def test_hard_ties_give_a_single_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # With constant noise the perturbed logits keep the tie.
    monkeypatch.setattr(torch.Tensor, "uniform_", lambda self, *args, **kwargs: self.fill_(0.5))
    y = gumbel_softmax(torch.tensor([[2.0, 2.0, 0.0, 2.0]]), 0.5, hard=True)
    assert y.tolist() == [[1.0, 0.0, 0.0, 0.0]]


def test_hard_gradient_is_the_soft_gradient() -> None:
    x = torch.randn(6, 5, generator=_gen(), requires_grad=True)
    w = torch.randn(6, 5, generator=_gen(1))
    grads = []
    for hard in (False, True):
        x.grad = None
        (gumbel_softmax(x, 0.8, hard=hard, generator=_gen(9)) * w).sum().backward()
        assert x.grad is not None
        grads.append(x.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])
    assert grads[0].abs().sum() > 0


def test_soft_sample_approaches_hard_as_tau_goes_to_zero() -> None:
    x = torch.randn(200, 5, generator=_gen())
    hard = gumbel_softmax(x, 1.0, hard=True, generator=_gen(1))
    errors = [
        (gumbel_softmax(x, tau, generator=_gen(1)) - hard).abs().max().item() for tau in (1.0, 0.1, 1e-4)
    ]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-3


def _chi_square_pvalue(samples: torch.Tensor, probs: torch.Tensor) -> float:
    counts = np.bincount(samples.argmax(-1).numpy(), minlength=probs.numel())
    return float(stats.chisquare(counts, _expected(probs, samples.shape[0])).pvalue)


def _expected(probs: torch.Tensor, n: int) -> np.ndarray:
    # Renormalised in float64: chisquare insists that the expected counts sum to n.
    p = probs.double().numpy()
    return p / p.sum() * n


@pytest.mark.parametrize("hard", [False, True])
def test_argmax_frequencies_match_softmax(hard: bool) -> None:
    logits = torch.tensor([1.0, 0.0, -1.0, 2.0, 0.5])
    draws = logits.expand(20_000, 5)
    sample = gumbel_softmax(draws, 0.5, hard=hard, generator=_gen(123))
    assert _chi_square_pvalue(sample, torch.softmax(logits, -1)) > 1e-3


def test_chi_square_detects_wrong_probabilities() -> None:
    # Guards against a test that cannot fail: a biased sampler is rejected.
    logits = torch.tensor([1.0, 0.0, -1.0, 2.0, 0.5])
    sample = gumbel_softmax(logits.expand(20_000, 5), 0.5, generator=_gen(123))
    assert _chi_square_pvalue(sample, torch.softmax(logits / 1.2, -1)) < 1e-3


def test_impossible_actions_are_never_sampled() -> None:
    logits = torch.tensor([0.0, -INF, 1.0, -INF])
    sample = gumbel_softmax(logits.expand(20_000, 4), 1.0, hard=True, generator=_gen(5))
    counts = sample.sum(0)
    assert counts[1] == 0 and counts[3] == 0
    expected = _expected(torch.softmax(logits[[0, 2]], -1), 20_000)
    assert stats.chisquare(counts[[0, 2]].numpy(), expected).pvalue > 1e-3


# ---------------------------------------------------------------- gradients


def test_gradcheck_softmax_and_log_softmax() -> None:
    x = torch.randn(3, 4, dtype=torch.float64, generator=_gen(), requires_grad=True)
    tau = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z, t: softmax(z, t), (x, tau))
    assert torch.autograd.gradcheck(lambda z, t: log_softmax(z, t, dim=0), (x, tau))
    masked = torch.tensor([[0.3, -INF, 1.2]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: softmax(z, 0.5), (masked,))


def test_gradcheck_gumbel_softmax() -> None:
    x = torch.randn(3, 4, dtype=torch.float64, generator=_gen(), requires_grad=True)
    tau = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    # The generator is re-seeded inside the closure so every evaluation sees the same noise.
    assert torch.autograd.gradcheck(lambda z, t: gumbel_softmax(z, t, generator=_gen(3)), (x, tau))
    assert torch.autograd.gradcheck(lambda z: gumbel_softmax(z, 0.5, dim=0, generator=_gen(3)), (x,))


# ---------------------------------------------------------------- shapes (property-based)


@settings(max_examples=25, deadline=None)
@given(
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=4),
    dim_seed=st.integers(0, 100),
    tau=st.floats(0.05, 10.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_shapes_and_simplex_property(shape: list[int], dim_seed: int, tau: float, seed: int) -> None:
    dim = dim_seed % len(shape) - len(shape) * (dim_seed % 2)
    x = torch.randn(shape, generator=_gen(seed)) * 5
    soft = gumbel_softmax(x, tau, dim=dim, generator=_gen(seed))
    hard = gumbel_softmax(x, tau, hard=True, dim=dim, generator=_gen(seed))
    probs = softmax(x, tau, dim=dim)
    for y in (soft, hard, probs):
        assert y.shape == x.shape and torch.isfinite(y).all() and (y >= 0).all()
        torch.testing.assert_close(y.sum(dim), torch.ones_like(y.sum(dim)))
    assert torch.all(hard.sum(dim) == 1) and torch.all((hard == 0) | (hard == 1))
    assert torch.equal(hard.argmax(dim), soft.argmax(dim))
    torch.testing.assert_close(log_softmax(x, tau, dim=dim).exp(), probs)
