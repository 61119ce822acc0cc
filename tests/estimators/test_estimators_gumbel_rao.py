"""Conditional Gumbel sampling and the Gumbel-Rao straight-through building block."""

import math

import pytest
import torch
from scipy import stats
from torch import Tensor

from rlrelax.estimators import conditional_gumbel, gumbel_rao_straight_through

K = 5


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _one_hot(actions: Tensor) -> Tensor:
    return torch.nn.functional.one_hot(actions, K).float()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_conditional_noise_puts_the_argmax_on_the_given_action(dtype: torch.dtype) -> None:
    logits = torch.tensor(
        [
            [0.0, 0.0, 0.0, 0.0, 0.0],
            [30.0, -30.0, 0.0, 1.0, 2.0],  # the rare actions are conditioned on too
            [-math.inf, 2.0, -1.0, -math.inf, 0.5],
        ],
        dtype=dtype,
    )
    actions = torch.tensor([[0, 1, 2, 3, 4], [1, 2, 0, 4, 3], [1, 2, 4, 1, 2]]).T  # (5, 3): every action
    one_hot = _one_hot(actions).to(dtype)
    logits = logits.expand(5, 3, K)
    noise = conditional_gumbel(logits, one_hot, n_samples=20_000, generator=_generator(0))
    assert noise.shape == (20_000, 5, 3, K) and noise.dtype == dtype and not noise.requires_grad
    assert torch.isfinite(noise).all()
    assert torch.equal((logits + noise).argmax(-1), actions.expand(20_000, 5, 3))


def test_conditional_noise_marginalized_over_the_action_is_iid_standard_gumbel() -> None:
    n = 50_000
    logits = torch.tensor([1.5, -0.5, 0.0, 2.0, -3.0])
    # The action is drawn by an independent route (multinomial), then the noise conditionally on it.
    actions = torch.multinomial(torch.softmax(logits, -1), n, replacement=True, generator=_generator(1))
    noise = conditional_gumbel(logits.expand(n, K), _one_hot(actions), generator=_generator(2))[0]
    for k in range(K):
        assert stats.kstest(noise[:, k].double().numpy(), stats.gumbel_r.cdf).pvalue > 1e-3
    correlation = torch.corrcoef(noise.T.double())
    off_diagonal = correlation[~torch.eye(K, dtype=torch.bool)]
    assert off_diagonal.abs().max() < 4 / math.sqrt(n)  # 4 standard errors of a zero correlation


def test_conditional_noise_for_one_fixed_action_is_not_gumbel() -> None:
    # Power check for the test above: without marginalizing over the action the law is different.
    n = 50_000
    logits = torch.tensor([1.5, -0.5, 0.0, 2.0, -3.0])
    noise = conditional_gumbel(logits.expand(n, K), _one_hot(torch.full((n,), 1)), generator=_generator(3))[0]
    assert stats.kstest(noise[:, 1].double().numpy(), stats.gumbel_r.cdf).pvalue < 1e-6


def test_conditional_noise_is_reproducible_and_leaves_the_global_rng_alone() -> None:
    logits = torch.randn(4, K, generator=_generator(4))
    one_hot = _one_hot(torch.tensor([0, 1, 2, 3]))
    state = torch.get_rng_state()
    first = conditional_gumbel(logits, one_hot, n_samples=3, generator=_generator(5))
    assert torch.equal(first, conditional_gumbel(logits, one_hot, n_samples=3, generator=_generator(5)))
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("tau", [1.0, 0.3])
def test_gumbel_rao_straight_through_forward_is_the_action_and_backward_averages_soft_samples(
    tau: float,
) -> None:
    logits = torch.randn(2, 3, K, generator=_generator(6), dtype=torch.float64)
    one_hot = _one_hot(torch.randint(K, (2, 3), generator=_generator(7))).double()
    upstream = torch.randn(2, 3, K, generator=_generator(8), dtype=torch.float64)

    leaf = logits.clone().requires_grad_(True)
    out = gumbel_rao_straight_through(leaf, one_hot, tau, n_rao_samples=7, generator=_generator(9))
    assert torch.equal(out, one_hot)
    (out * upstream).sum().backward()

    reference = logits.clone().requires_grad_(True)
    noise = conditional_gumbel(logits, one_hot, n_samples=7, generator=_generator(9))
    soft = torch.softmax((reference + noise) / tau, dim=-1).mean(0)
    (soft * upstream).sum().backward()
    assert leaf.grad is not None and reference.grad is not None
    torch.testing.assert_close(leaf.grad, reference.grad)


def test_gumbel_rao_straight_through_rejects_bad_input() -> None:
    logits = torch.zeros(2, K)
    good = _one_hot(torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"tau.*0"):
        gumbel_rao_straight_through(logits, good, 0.0, 3)
    with pytest.raises(ValueError, match=r"n_rao_samples.*0"):
        gumbel_rao_straight_through(logits, good, 1.0, 0)
    with pytest.raises(ValueError, match=r"\(2, 5\).*\(2, 4\)"):
        gumbel_rao_straight_through(logits, good[:, :4], 1.0, 3)
    with pytest.raises(ValueError, match="exactly one 1"):
        gumbel_rao_straight_through(logits, good * 0.5, 1.0, 3)
    with pytest.raises(ValueError, match="exactly one 1"):
        gumbel_rao_straight_through(logits, good + _one_hot(torch.tensor([2, 3])), 1.0, 3)
    masked = logits.clone()
    masked[1, 1] = -math.inf
    with pytest.raises(ValueError, match="-inf"):
        gumbel_rao_straight_through(masked, good, 1.0, 3)
