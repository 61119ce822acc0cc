"""The estimator registry, argument checks, reproducibility, batch semantics and the exact reference."""

import math
import re
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from rlrelax.estimators import (
    ESTIMATORS,
    exact_gradient,
    get_estimator,
    leave_one_out_baseline,
    mean_baseline,
    score_function_surrogate,
)

SAMPLING = ("score_function", "gumbel_softmax", "straight_through", "gumbel_rao", "rebar", "relax")
WITH_TAU = ("gumbel_softmax", "straight_through", "gumbel_rao")
# Options that make every estimator valid with n_samples=4.
OPTIONS: dict[str, dict[str, object]] = {
    "score_function": {"baseline": "leave_one_out"},
    "gumbel_softmax": {"tau": 0.5},
    "straight_through": {"tau": 0.5},
    "gumbel_rao": {"tau": 0.5, "n_rao_samples": 3},
    "rebar": {},
    "relax": {},
    "exact": {},
}


def _objective(weights: Tensor, target: Tensor) -> Callable[[Tensor], Tensor]:
    def f(actions: Tensor) -> Tensor:
        return ((actions * weights).sum(-1) - target) ** 2

    return f


def _logits(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _gradient(
    name: str, logits: Tensor, f: Callable[[Tensor], Tensor], seed: int, **options: object
) -> Tensor:
    leaf = logits.detach().clone().requires_grad_(True)
    generator = torch.Generator().manual_seed(seed)
    ESTIMATORS[name](leaf, f, n_samples=4, generator=generator, **options).backward()
    assert leaf.grad is not None
    return leaf.grad


def test_registry_names_and_lookup() -> None:
    assert set(ESTIMATORS) == {
        "score_function",
        "gumbel_softmax",
        "straight_through",
        "gumbel_rao",
        "rebar",
        "relax",
        "exact",
    }
    for name, estimator in ESTIMATORS.items():
        assert get_estimator(name) is estimator
    for name in SAMPLING:
        assert re.search(
            r"et al\.|and [\w-]+ \((19|20)\d\d\)", ESTIMATORS[name].__doc__ or ""
        )  # cites its paper
    with pytest.raises(ValueError, match=r"'reinforce'.*'exact'.*'score_function'"):
        get_estimator("reinforce")


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_unknown_option_is_rejected_before_sampling(name: str) -> None:
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    f = _objective(torch.ones(4), torch.tensor(0.0))
    with pytest.raises(ValueError, match="temperature"):
        ESTIMATORS[name](_logits(4), f, n_samples=2, generator=generator, temperature=1.0)
    assert torch.equal(generator.get_state(), state)


@pytest.mark.parametrize("name", list(ESTIMATORS))
@pytest.mark.parametrize("n_samples", [0, -3])
def test_bad_n_samples_is_rejected(name: str, n_samples: int) -> None:
    f = _objective(torch.ones(4), torch.tensor(0.0))
    with pytest.raises(ValueError, match=f"n_samples.*{n_samples}"):
        ESTIMATORS[name](_logits(4), f, n_samples=n_samples)
    with pytest.raises(TypeError, match="n_samples"):
        ESTIMATORS[name](_logits(4), f, n_samples=2.0)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", WITH_TAU)
@pytest.mark.parametrize("tau", [0.0, -1.0, math.inf, math.nan])
def test_bad_tau_is_rejected_before_sampling(name: str, tau: float) -> None:
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    f = _objective(torch.ones(4), torch.tensor(0.0))
    with pytest.raises(ValueError, match=f"tau.*{tau}"):
        ESTIMATORS[name](_logits(4), f, n_samples=2, generator=generator, tau=tau)
    assert torch.equal(generator.get_state(), state)


@pytest.mark.parametrize("n_rao_samples", [0, -1])
def test_bad_n_rao_samples_is_rejected(n_rao_samples: int) -> None:
    f = _objective(torch.ones(4), torch.tensor(0.0))
    with pytest.raises(ValueError, match=f"n_rao_samples.*{n_rao_samples}"):
        ESTIMATORS["gumbel_rao"](_logits(4), f, n_samples=2, n_rao_samples=n_rao_samples)


def test_bad_baseline_is_rejected_before_sampling() -> None:
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    f = _objective(torch.ones(4), torch.tensor(0.0))
    estimator = ESTIMATORS["score_function"]
    with pytest.raises(ValueError, match="'median'"):
        estimator(_logits(4), f, n_samples=4, generator=generator, baseline="median")
    for baseline in ("mean", "leave_one_out"):
        with pytest.raises(ValueError, match=f"{baseline}.*n_samples=1"):
            estimator(_logits(4), f, n_samples=1, generator=generator, baseline=baseline)
    assert torch.equal(generator.get_state(), state)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_bad_logits_are_rejected_before_sampling(name: str) -> None:
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    f = _objective(torch.ones(3), torch.tensor(0.0))
    options = OPTIONS[name]
    with pytest.raises(ValueError, match="NaN"):
        ESTIMATORS[name](torch.tensor([0.0, math.nan, 1.0]), f, n_samples=4, generator=generator, **options)
    with pytest.raises(ValueError, match="-inf"):
        ESTIMATORS[name](torch.full((2, 3), -math.inf), f, n_samples=4, generator=generator, **options)
    with pytest.raises(ValueError, match=r"\(\)"):
        ESTIMATORS[name](torch.tensor(1.0), f, n_samples=4, generator=generator, **options)
    with pytest.raises(TypeError, match="floating"):
        ESTIMATORS[name](torch.tensor([1, 2, 3]), f, n_samples=4, generator=generator, **options)
    assert torch.equal(generator.get_state(), state)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_f_with_wrong_output_shape_is_rejected(name: str) -> None:
    logits = _logits(2, 3)
    with pytest.raises(ValueError, match=r"\(4, 2\).*got shape \(4, 2, 3\)|\(3, 2\).*got shape \(3, 2, 3\)"):
        ESTIMATORS[name](logits, lambda a: a, n_samples=4, **OPTIONS[name])
    with pytest.raises(ValueError, match=r"got shape \(\)"):
        ESTIMATORS[name](logits, lambda a: a.sum(), n_samples=4, **OPTIONS[name])


@pytest.mark.parametrize("name", SAMPLING)
def test_same_generator_seed_gives_identical_gradients(name: str) -> None:
    logits = _logits(2, 3, 5)
    f = _objective(_logits(5, seed=1), torch.tensor(0.3))
    first = _gradient(name, logits, f, seed=7, **OPTIONS[name])
    assert torch.equal(first, _gradient(name, logits, f, seed=7, **OPTIONS[name]))
    assert not torch.equal(first, _gradient(name, logits, f, seed=8, **OPTIONS[name]))


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_global_rng_is_untouched_when_a_generator_is_given(name: str) -> None:
    torch.manual_seed(123)
    state = torch.get_rng_state()
    _gradient(name, _logits(3, 4), _objective(_logits(4, seed=1), torch.tensor(0.0)), seed=0, **OPTIONS[name])
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("name", SAMPLING)
def test_without_generator_the_global_rng_is_used(name: str) -> None:
    logits = _logits(3, 4)
    f = _objective(_logits(4, seed=1), torch.tensor(0.0))
    gradients = []
    for _ in range(2):
        torch.manual_seed(5)
        leaf = logits.clone().requires_grad_(True)
        ESTIMATORS[name](leaf, f, n_samples=4, **OPTIONS[name]).backward()
        gradients.append(leaf.grad)
    assert gradients[0] is not None and torch.equal(gradients[0], gradients[1])


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_surrogate_is_a_scalar_and_gradients_reach_the_parameters_of_f(name: str) -> None:
    logits = _logits(2, 3, 4).requires_grad_(True)
    weights = _logits(4, seed=1).requires_grad_(True)
    surrogate = ESTIMATORS[name](logits, _objective(weights, torch.tensor(0.5)), n_samples=4, **OPTIONS[name])
    assert surrogate.shape == ()
    surrogate.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    assert weights.grad is not None and torch.isfinite(weights.grad).all() and weights.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["score_function", "straight_through", "gumbel_rao", "relax"])
def test_surrogate_value_is_the_sample_mean_of_f_summed_over_the_batch(name: str) -> None:
    logits = _logits(2, 3, 4)
    seen: list[Tensor] = []
    f = _objective(_logits(4, seed=1), torch.tensor(0.5))

    def recording_f(actions: Tensor) -> Tensor:
        seen.append(actions.detach().clone())
        return f(actions)

    surrogate = ESTIMATORS[name](logits, recording_f, n_samples=4, **OPTIONS[name])
    (actions,) = seen
    assert torch.equal(actions.sum(-1), torch.ones(4, 2, 3))  # exact one-hot actions
    assert torch.isin(actions, torch.tensor([0.0, 1.0])).all()
    torch.testing.assert_close(surrogate, f(actions).mean(0).sum())


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_impossible_actions_are_never_taken_and_get_zero_gradient(name: str) -> None:
    logits = _logits(3, 4)
    logits[:, 1] = -math.inf
    logits[0, 3] = -math.inf
    seen: list[Tensor] = []
    weights = _logits(4, seed=1)

    def f(actions: Tensor) -> Tensor:
        seen.append(actions.detach())
        return ((actions * weights).sum(-1) - 0.2) ** 2

    grad = _gradient(name, logits, f, seed=0, **OPTIONS[name])
    assert torch.isfinite(grad).all()
    assert torch.equal(grad[torch.isinf(logits)], torch.zeros(4))
    if name != "exact":  # "exact" enumerates every action, weighted by its probability (zero here)
        assert torch.equal(seen[0][:, :, 1], torch.zeros(4, 3))
        assert torch.equal(seen[0][:, 0, 3], torch.zeros(4))


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_float64_logits_give_float64_gradients(name: str) -> None:
    logits = _logits(2, 4, dtype=torch.float64)
    f = _objective(_logits(4, seed=1, dtype=torch.float64), torch.tensor(0.5))
    grad = _gradient(name, logits, f, seed=0, **OPTIONS[name])
    assert grad.dtype == torch.float64


@pytest.mark.parametrize("batch", [(), (3,), (2, 3)])
def test_exact_estimator_matches_exact_gradient_and_the_closed_form(batch: tuple[int, ...]) -> None:
    logits = _logits(*batch, 5)
    f = _objective(_logits(*batch, 5, seed=1), _logits(*batch, seed=2))
    truth = exact_gradient(logits, f)
    assert truth.shape == logits.shape and not truth.requires_grad
    torch.testing.assert_close(_gradient("exact", logits, f, seed=0), truth, rtol=0, atol=1e-6)
    # d/dθ Σ_k p_k v_k = p ⊙ (v - p·v), with v_k = f(e_k) per batch element.
    values = f(torch.eye(5).reshape(5, *([1] * len(batch)), 5).expand(5, *batch, 5)).movedim(0, -1)
    probs = torch.softmax(logits, -1)
    closed_form = probs * (values - (probs * values).sum(-1, keepdim=True))
    torch.testing.assert_close(truth, closed_form, rtol=0, atol=1e-6)


def test_exact_gradient_ignores_grad_mode_and_leaves_inputs_alone() -> None:
    logits = _logits(3, 4).requires_grad_(True)
    f = _objective(_logits(4, seed=1), torch.tensor(0.0))
    with torch.no_grad():
        inside_no_grad = exact_gradient(logits, f)
    torch.testing.assert_close(inside_no_grad, exact_gradient(logits.detach(), f))
    assert logits.grad is None


def test_exact_estimator_passes_gradcheck() -> None:
    weights = _logits(4, seed=1, dtype=torch.float64)
    f = _objective(weights, torch.tensor(0.5, dtype=torch.float64))
    logits = _logits(2, 4, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: ESTIMATORS["exact"](x, f, n_samples=1), (logits,))


def test_exact_estimator_ignores_n_samples() -> None:
    logits = _logits(2, 4)
    f = _objective(_logits(4, seed=1), torch.tensor(0.0))
    torch.testing.assert_close(
        ESTIMATORS["exact"](logits, f, n_samples=1), ESTIMATORS["exact"](logits, f, n_samples=1000)
    )


def test_baselines() -> None:
    values = torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 3.0], [6.0, 1.0]])
    torch.testing.assert_close(
        leave_one_out_baseline(values),
        torch.tensor([[11 / 3, 4 / 3], [10 / 3, 4 / 3], [3.0, 1 / 3], [2.0, 1.0]]),
    )
    torch.testing.assert_close(leave_one_out_baseline(values.T, dim=1), leave_one_out_baseline(values).T)
    torch.testing.assert_close(mean_baseline(values), torch.tensor([[3.0, 1.0]]).expand(4, 2))
    assert mean_baseline(values, dim=1).shape == values.shape
    with pytest.raises(ValueError, match="at least 2 entries along dim 0, got 1"):
        leave_one_out_baseline(values[:1])


def test_score_function_surrogate_detaches_the_advantages() -> None:
    logits = _logits(3, 4).requires_grad_(True)
    log_probs = torch.log_softmax(logits, -1)[:, 0]
    advantages = torch.tensor([1.0, -2.0, 0.5], requires_grad=True)
    surrogate = score_function_surrogate(log_probs, advantages)
    torch.testing.assert_close(surrogate, (log_probs * advantages).sum())
    surrogate.backward()
    assert advantages.grad is None
    probs = torch.softmax(logits.detach(), -1)
    expected = advantages.detach()[:, None] * (
        torch.nn.functional.one_hot(torch.zeros(3, dtype=torch.long), 4) - probs
    )
    torch.testing.assert_close(logits.grad, expected)
    with pytest.raises(ValueError, match=r"\(3,\) and \(3, 1\)"):
        score_function_surrogate(log_probs, advantages[:, None])
