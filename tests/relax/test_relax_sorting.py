"""Tests of SoftSort, NeuralSort and the relaxed top-k in rlrelax.relax."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize

from rlrelax.relax import neural_sort, soft_sort, soft_topk

SortFn = Callable[..., torch.Tensor]
SORTS: dict[str, SortFn] = {"soft_sort": soft_sort, "neural_sort": neural_sort}


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _reference_soft_sort(s: torch.Tensor, tau: float, descending: bool) -> torch.Tensor:
    ordered = sorted(s.tolist(), reverse=descending)
    rows = [
        torch.softmax(torch.tensor([-abs(v - x) / tau for x in s.tolist()], dtype=s.dtype), 0)
        for v in ordered
    ]
    return torch.stack(rows)


def _reference_neural_sort(s: torch.Tensor, tau: float, descending: bool) -> torch.Tensor:
    # Grover et al. (2019), eq. 5, written out row by row.
    n = s.numel()
    b = [sum(abs(sj - sk) for sk in s.tolist()) for sj in s.tolist()]
    rows = []
    for i in range(1, n + 1):
        logits = [((n + 1 - 2 * i) * sj - bj) / tau for sj, bj in zip(s.tolist(), b, strict=True)]
        rows.append(torch.softmax(torch.tensor(logits, dtype=s.dtype), 0))
    p = torch.stack(rows)
    return p if descending else p.flip(0)


REFERENCES = {"soft_sort": _reference_soft_sort, "neural_sort": _reference_neural_sort}


@pytest.mark.parametrize("name", SORTS)
@pytest.mark.parametrize("descending", [True, False])
def test_matches_the_papers_formula(name: str, descending: bool) -> None:
    s = torch.randn(6, generator=_gen(), dtype=torch.float64)
    for tau in (0.3, 2.0):
        expected = REFERENCES[name](s, tau, descending)
        torch.testing.assert_close(SORTS[name](s, tau, descending=descending), expected)


@pytest.mark.parametrize("name", SORTS)
@pytest.mark.parametrize("descending", [True, False])
def test_tau_to_zero_gives_the_sorting_permutation(name: str, descending: bool) -> None:
    s = torch.tensor([[0.3, -1.0, 2.0, 0.9], [5.0, 4.0, -3.0, 4.5]])
    perm = SORTS[name](s, 1.0, hard=True, descending=descending)
    assert torch.all((perm == 0) | (perm == 1))
    assert torch.all(perm.sum(-1) == 1) and torch.all(perm.sum(-2) == 1)
    expected = torch.sort(s, -1, descending=descending).values
    torch.testing.assert_close((perm @ s.unsqueeze(-1)).squeeze(-1), expected)
    errors = [(SORTS[name](s, tau, descending=descending) - perm).abs().max().item() for tau in (1.0, 1e-3)]
    assert errors[0] > 0.1 and errors[1] < 1e-6


@pytest.mark.parametrize("name", SORTS)
def test_hard_gradient_is_the_soft_gradient_and_ties_give_a_permutation(name: str) -> None:
    s = torch.tensor([1.0, 2.0, 1.0, 0.0], requires_grad=True)
    w = torch.randn(4, 4, generator=_gen())
    hard = SORTS[name](s, 0.5, hard=True)
    assert torch.all(hard.sum(-1) == 1) and torch.all(hard.sum(-2) == 1)
    assert hard.argmax(-1).tolist() == [1, 0, 2, 3]  # ties broken by index
    (g_hard,) = torch.autograd.grad((hard * w).sum(), s)
    (g_soft,) = torch.autograd.grad((SORTS[name](s, 0.5) * w).sum(), s)
    torch.testing.assert_close(g_hard, g_soft)


@pytest.mark.parametrize("name", SORTS)
def test_gradcheck_sorts(name: str) -> None:
    s = torch.randn(2, 4, dtype=torch.float64, generator=_gen(), requires_grad=True)
    tau = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, t: SORTS[name](x, t), (s, tau))
    assert torch.autograd.gradcheck(lambda x: SORTS[name](x, 0.5, descending=False), (s,))


@pytest.mark.parametrize("name", SORTS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_sorts_stay_finite(name: str, dtype: torch.dtype) -> None:
    s = torch.tensor([1e4, -1e4, 0.0, 3.0], dtype=dtype)
    for tau in (1e-6, 1.0, 1e6):
        for hard in (False, True):
            p = SORTS[name](s, tau, hard=hard)
            assert p.dtype == dtype and torch.isfinite(p).all()
            torch.testing.assert_close(p.float().sum(-1), torch.ones(4), atol=1e-2, rtol=0)


def test_soft_sort_handles_scores_near_the_float_range() -> None:
    big = torch.finfo(torch.float32).max / 2
    p = soft_sort(torch.tensor([big, -big, 0.0]), 1e-30)
    assert torch.isfinite(p).all() and p.argmax(-1).tolist() == [0, 2, 1]


def test_neural_sort_rejects_scores_that_would_overflow() -> None:
    big = torch.finfo(torch.float32).max / 2
    with pytest.raises(ValueError, match="scores too large for neural_sort"):
        neural_sort(torch.tensor([big, 0.0, 1.0]))


@pytest.mark.parametrize("name", SORTS)
def test_sort_validation(name: str) -> None:
    fn = SORTS[name]
    with pytest.raises(ValueError, match=r"scores must be finite, got nan at index \(0, 1\)"):
        fn(torch.tensor([[0.0, math.nan]]))
    with pytest.raises(ValueError, match=r"scores must be finite, got -inf at index \(1,\)"):
        fn(torch.tensor([0.0, -math.inf]))
    with pytest.raises(ValueError, match=r"tau must be a finite number > 0, got 0\.0"):
        fn(torch.zeros(3), 0.0)
    with pytest.raises(ValueError, match="at least 1 dimension"):
        fn(torch.tensor(1.0))
    with pytest.raises(ValueError, match="no entries to sort"):
        fn(torch.zeros(2, 0))
    with pytest.raises(TypeError, match="descending must be a bool"):
        fn(torch.zeros(3), descending="yes")


@settings(max_examples=20, deadline=None)
@given(
    batch=st.lists(st.integers(1, 3), min_size=0, max_size=2),
    n=st.integers(1, 6),
    tau=st.floats(0.05, 5.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_sort_shapes_property(batch: list[int], n: int, tau: float, seed: int) -> None:
    s = torch.randn([*batch, n], generator=_gen(seed)) * 3
    for fn in SORTS.values():
        p = fn(s, tau)
        assert p.shape == (*batch, n, n) and (p >= 0).all()
        torch.testing.assert_close(p.sum(-1), torch.ones(*batch, n))
    k = 1 + seed % n
    mask = soft_topk(s, k, tau)
    assert mask.shape == s.shape and (mask >= 0).all() and (mask <= 1).all()
    torch.testing.assert_close(mask.sum(-1), torch.full(batch, float(k)))


# ---------------------------------------------------------------- soft top-k


def test_soft_topk_matches_an_independent_root_finder() -> None:
    s = torch.randn(7, generator=_gen(), dtype=torch.float64)
    k, tau = 3, 0.4
    scores = s.tolist()

    def excess(t: float) -> float:
        return sum(1 / (1 + math.exp(-(x - t) / tau)) for x in scores) - k

    t = optimize.brentq(excess, min(scores) - 20, max(scores) + 20, xtol=1e-14)
    expected = torch.sigmoid((s - t) / tau)
    torch.testing.assert_close(soft_topk(s, k, tau), expected, atol=1e-10, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_soft_topk_sums_to_k_within_unit_interval(dtype: torch.dtype) -> None:
    s = (torch.randn(16, 9, generator=_gen()) * 4).to(dtype)
    atol = {torch.float64: 1e-9, torch.float32: 1e-5, torch.float16: 2e-2, torch.bfloat16: 1e-1}[dtype]
    for k in (1, 4, 8, 9):
        for tau in (1e-4, 0.3, 10.0):
            mask = soft_topk(s, k, tau)
            assert mask.dtype == dtype and torch.isfinite(mask).all()
            assert (mask >= 0).all() and (mask <= 1).all()
            torch.testing.assert_close(
                mask.double().sum(-1), torch.full((16,), float(k), dtype=torch.float64), atol=atol, rtol=0
            )


def test_soft_topk_approaches_the_k_hot_and_hard_is_exact() -> None:
    s = torch.tensor([[0.3, -1.0, 2.0, 0.9, 1.5], [5.0, 4.0, -3.0, 4.5, 0.0]])
    hard = soft_topk(s, 2, 1.0, hard=True)
    assert hard.tolist() == [[0.0, 0.0, 1.0, 0.0, 1.0], [1.0, 0.0, 0.0, 1.0, 0.0]]
    errors = [(soft_topk(s, 2, tau) - hard).abs().max().item() for tau in (1.0, 1e-3)]
    assert errors[0] > 0.1 and errors[1] < 1e-6
    ties = soft_topk(torch.tensor([1.0, 2.0, 1.0, 1.0]), 2, 0.1, hard=True)
    assert ties.tolist() == [1.0, 1.0, 0.0, 0.0]


def test_soft_topk_gradients() -> None:
    s = torch.randn(2, 6, dtype=torch.float64, generator=_gen(), requires_grad=True)
    tau = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, t: soft_topk(x, 2, t), (s, tau))
    assert torch.autograd.gradcheck(lambda x: soft_topk(x, 5, 0.3), (s,))
    w = torch.randn(2, 6, dtype=torch.float64, generator=_gen(1))
    (g_hard,) = torch.autograd.grad((soft_topk(s, 3, 0.5, hard=True) * w).sum(), s)
    (g_soft,) = torch.autograd.grad((soft_topk(s, 3, 0.5) * w).sum(), s)
    torch.testing.assert_close(g_hard, g_soft)
    # The mask always sums to k, so the gradient of its sum vanishes; raising a score raises its entry.
    (g_sum,) = torch.autograd.grad(soft_topk(s, 3, 0.5).sum(), s)
    torch.testing.assert_close(g_sum, torch.zeros_like(g_sum))
    jacobian = torch.autograd.functional.jacobian(lambda x: soft_topk(x, 3, 0.5), s[0].detach())
    assert (jacobian.diagonal() > 0).all()


def test_soft_topk_all_selected_and_tiny_tau() -> None:
    s = torch.tensor([1.0, -2.0, 0.5], requires_grad=True)
    everything = soft_topk(s, 3, 0.5)
    assert everything.tolist() == [1.0, 1.0, 1.0]
    (grad,) = torch.autograd.grad(everything.sum(), s)
    assert torch.equal(grad, torch.zeros(3))
    mask = soft_topk(torch.tensor([1e4, -1e4, 0.0, 3.0], dtype=torch.float64), 2, 1e-30)
    assert torch.isfinite(mask).all()
    torch.testing.assert_close(
        mask, torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=torch.float64), atol=1e-12, rtol=0
    )


def test_soft_topk_validation() -> None:
    for k in (0, -1, 4):
        with pytest.raises(ValueError, match=rf"k must be in \[1, n\] = \[1, 3\] .* got k={k}"):
            soft_topk(torch.zeros(3), k)
    with pytest.raises(TypeError, match=r"k must be an int, got 1\.5"):
        soft_topk(torch.zeros(3), 1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="k must be an int, got True"):
        soft_topk(torch.zeros(3), True)
    with pytest.raises(ValueError, match=r"scores must be finite, got nan"):
        soft_topk(torch.tensor([0.0, math.nan, 1.0]), 1)
    with pytest.raises(ValueError, match=r"tau must be a finite number > 0, got -1\.0"):
        soft_topk(torch.zeros(3), 1, -1.0)
