"""Tests of Gumbel-top-k sampling and the Plackett-Luce log-probability in rlrelax.relax."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats

from rlrelax.relax import gumbel_topk, plackett_luce_log_prob

INF = math.inf


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _sequential_probability(logits: list[float], order: tuple[int, ...]) -> float:
    # The model written as its definition: each item is drawn from the softmax over the items left.
    left = list(range(len(logits)))
    probability = 1.0
    for item in order:
        probability *= math.exp(logits[item]) / sum(math.exp(logits[j]) for j in left)
        left.remove(item)
    return probability


@pytest.mark.parametrize(("n", "k"), [(4, 1), (4, 2), (4, 3), (4, 4), (5, 2)])
def test_log_prob_matches_the_definition_and_sums_to_one(n: int, k: int) -> None:
    logits = torch.randn(n, generator=_gen(n * 10 + k), dtype=torch.float64)
    orders = list(itertools.permutations(range(n), k))
    log_probs = plackett_luce_log_prob(logits, torch.tensor(orders))
    expected = [math.log(_sequential_probability(logits.tolist(), order)) for order in orders]
    torch.testing.assert_close(log_probs, torch.tensor(expected, dtype=torch.float64))
    assert log_probs.exp().sum().item() == pytest.approx(1.0, abs=1e-12)


def _frequency_pvalue(samples: torch.Tensor, logits: torch.Tensor) -> float:
    k = samples.shape[-1]
    orders = list(itertools.permutations(range(logits.numel()), k))
    index = {order: i for i, order in enumerate(orders)}
    counts = np.bincount([index[tuple(row)] for row in samples.tolist()], minlength=len(orders))
    probs = plackett_luce_log_prob(logits.double(), torch.tensor(orders)).exp().numpy()
    return float(stats.chisquare(counts, probs / probs.sum() * samples.shape[0]).pvalue)


@pytest.mark.parametrize("k", [2, 4])
def test_sample_frequencies_match_the_log_prob(k: int) -> None:
    logits = torch.tensor([1.0, 0.0, -0.5, 0.7])
    samples = gumbel_topk(logits.expand(20_000, 4), k, generator=_gen(k))
    assert samples.dtype == torch.int64 and samples.shape == (20_000, k)
    assert _frequency_pvalue(samples, logits) > 1e-3


def test_chi_square_detects_a_wrong_model() -> None:
    # Guards against a test that cannot fail: samples of slightly sharper logits are rejected.
    logits = torch.tensor([1.0, 0.0, -0.5, 0.7])
    samples = gumbel_topk(logits.expand(20_000, 4) * 1.3, 2, generator=_gen(2))
    assert _frequency_pvalue(samples, logits) < 1e-3


def test_impossible_items_are_never_drawn_and_score_minus_inf() -> None:
    logits = torch.tensor([0.0, -INF, 1.0, 0.5, -INF], requires_grad=True)
    samples = gumbel_topk(logits.expand(5_000, 5), 3, generator=_gen(1))
    assert not torch.isin(samples, torch.tensor([1, 4])).any()
    log_probs = plackett_luce_log_prob(logits, torch.tensor([[0, 2, 3], [2, 1, 0], [3, 0, 4]]))
    assert torch.isfinite(log_probs[0]) and log_probs[1:].tolist() == [-INF, -INF]
    log_probs.sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    with pytest.raises(ValueError, match=r"only 3 possible item\(s\) \(not -inf\), fewer than k=4"):
        gumbel_topk(logits.detach(), 4)


def test_samples_are_distinct_and_follow_the_batch_shape() -> None:
    logits = torch.randn(3, 2, 7, generator=_gen())
    samples = gumbel_topk(logits, 5, generator=_gen(1))
    assert samples.shape == (3, 2, 5)
    assert all(len(set(row)) == 5 for row in samples.reshape(-1, 5).tolist())
    assert gumbel_topk(torch.zeros(0, 4), 2).shape == (0, 2)
    assert plackett_luce_log_prob(torch.zeros(0, 4), torch.zeros(0, 2, dtype=torch.long)).shape == (0,)


def test_log_prob_broadcasts_samples_against_logits() -> None:
    logits = torch.randn(4, 6, generator=_gen(), dtype=torch.float64)
    samples = gumbel_topk(logits.expand(8, 4, 6), 3, generator=_gen(1))
    broadcast = plackett_luce_log_prob(logits, samples)
    assert broadcast.shape == (8, 4)
    torch.testing.assert_close(broadcast, plackett_luce_log_prob(logits.expand(8, 4, 6), samples))
    one_order = plackett_luce_log_prob(logits, torch.tensor([5, 0, 2], dtype=torch.int32))
    assert one_order.shape == (4,)


def test_generator_reproducible_and_leaves_global_rng_alone() -> None:
    logits = torch.randn(16, 9, generator=_gen(3))
    state = torch.get_rng_state()
    first = gumbel_topk(logits, 4, generator=_gen(7))
    assert torch.equal(first, gumbel_topk(logits, 4, generator=_gen(7)))
    assert not torch.equal(first, gumbel_topk(logits, 4, generator=_gen(8)))
    assert torch.equal(torch.get_rng_state(), state)


def test_gradcheck_and_score_function_identity() -> None:
    logits = torch.randn(2, 5, generator=_gen(), dtype=torch.float64, requires_grad=True)
    orders = torch.tensor([[4, 1, 0], [2, 3, 1]])
    assert torch.autograd.gradcheck(lambda z: plackett_luce_log_prob(z, orders), (logits,))
    # E[grad log p] = 0: the expected score vanishes when summed over every ordered 3-subset.
    every = torch.tensor(list(itertools.permutations(range(5), 3))).unsqueeze(1)
    log_probs = plackett_luce_log_prob(logits, every)
    (expected_score,) = torch.autograd.grad((log_probs.exp().detach() * log_probs).sum(), logits)
    torch.testing.assert_close(expected_score, torch.zeros_like(expected_score))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_extreme_logits_stay_finite_with_finite_gradients(dtype: torch.dtype) -> None:
    # The drawn items hold all but about e^-200 of the mass: log(1 - drawn mass) would be log(0) = -inf.
    reference = torch.tensor([200.0, 100.0, 0.0, -100.0], dtype=torch.float64)
    orders = torch.tensor([[0, 1, 2], [3, 2, 1]])
    logits = reference.to(dtype).requires_grad_(True)
    log_probs = plackett_luce_log_prob(logits, orders)
    assert log_probs.dtype == dtype and torch.isfinite(log_probs).all()
    expected = plackett_luce_log_prob(reference, orders)
    torch.testing.assert_close(log_probs.double(), expected, rtol=1e-2, atol=1e-2)
    log_probs.sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("k", [0, -1, 5])
def test_k_out_of_range_raises(k: int) -> None:
    with pytest.raises(
        ValueError, match=rf"k must be in \[1, n\] = \[1, 4\] for logits of shape \(2, 4\), got k={k}"
    ):
        gumbel_topk(torch.zeros(2, 4), k)
    if k >= 0:
        with pytest.raises(ValueError, match=rf"k must be in \[1, n\] = \[1, 4\] .* got k={k}"):
            plackett_luce_log_prob(torch.zeros(2, 4), torch.arange(k).expand(2, k))


def test_bad_types_raise_type_errors() -> None:
    with pytest.raises(TypeError, match=r"k must be an int, got 2\.0"):
        gumbel_topk(torch.zeros(4), 2.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="k must be an int, got True"):
        gumbel_topk(torch.zeros(4), True)
    for bad_logits in (torch.zeros(4, dtype=torch.long), [0.0, 1.0]):
        with pytest.raises(TypeError, match="logits must be a"):
            gumbel_topk(bad_logits, 1)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="logits must be a"):
            plackett_luce_log_prob(bad_logits, torch.tensor([0]))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator"):
        gumbel_topk(torch.zeros(4), 1, generator=0)  # type: ignore[arg-type]
    for bad_indices in (torch.tensor([0.0, 1.0]), torch.tensor([True, False])):
        with pytest.raises(
            TypeError, match=r"indices must be an integer tensor, got dtype torch\.(float32|bool)"
        ):
            plackett_luce_log_prob(torch.zeros(4), bad_indices)
    with pytest.raises(TypeError, match=r"indices must be a torch\.Tensor, got list"):
        plackett_luce_log_prob(torch.zeros(4), [0, 1])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("logits", "indices", "message"),
    [
        (torch.zeros(4), torch.tensor([0, 4]), r"indices must be in \[0, 4\), got 4 at index \(1,\)"),
        (
            torch.zeros(4),
            torch.tensor([[0, 1], [-1, 2]]),
            r"indices must be in \[0, 4\), got -1 at index \(1, 0\)",
        ),
        (
            torch.zeros(4),
            torch.tensor([[0, 1], [2, 2]]),
            r"distinct within a row, got \[2, 2\] at row \(1,\)",
        ),
        (torch.zeros(3, 4), torch.zeros(2, 1, dtype=torch.long), r"batch shapes .* \(3, 4\) .* \(2, 1\)"),
        (torch.zeros(4), torch.tensor(1), "at least 1 dimension"),
        (torch.tensor([0.0, math.nan]), torch.tensor([0]), r"NaN \(first at index \(1,\)\)"),
        (torch.tensor([0.0, INF]), torch.tensor([0]), r"\+inf"),
    ],
)
def test_bad_values_raise_naming_them(logits: torch.Tensor, indices: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plackett_luce_log_prob(logits, indices)


def test_sampler_rejects_bad_logits_before_drawing() -> None:
    generator = _gen(4)
    for logits in (torch.tensor([0.0, math.nan]), torch.tensor([[0.0, 1.0], [-INF, -INF]])):
        with pytest.raises(ValueError, match=r"NaN|-inf for every entry"):
            gumbel_topk(logits, 1, generator=generator)
    assert torch.equal(generator.get_state(), _gen(4).get_state())
