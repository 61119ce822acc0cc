"""Statistics over seeds: IQM, stratified-bootstrap intervals, probability of improvement, steps to goal."""

import math
from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats

from rlrelax.compare import (
    bootstrap_interval,
    iqm,
    iqm_curve,
    median_steps,
    probability_of_improvement,
    steps_to_threshold,
)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8, 10, 11])
def test_iqm_is_scipys_25_percent_trimmed_mean(n: int) -> None:
    scores = np.random.default_rng(n).normal(size=(n, 3)) * 100
    assert iqm(scores) == pytest.approx(stats.trim_mean(scores, 0.25, axis=None))
    np.testing.assert_allclose(iqm(scores, axis=0), stats.trim_mean(scores, 0.25, axis=0))


def test_iqm_ignores_the_outer_quartiles() -> None:
    assert iqm(np.array([-1e9, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1e9])) == pytest.approx(3.5)


def test_bootstrap_interval_is_reproducible_and_brackets_the_estimate() -> None:
    scores = np.random.default_rng(0).normal(loc=300, scale=50, size=10)
    first = bootstrap_interval(scores, seed=0)
    assert first == bootstrap_interval(scores, seed=0)
    assert first != bootstrap_interval(scores, seed=1)
    estimate, low, high = first
    assert estimate == pytest.approx(stats.trim_mean(scores, 0.25))
    assert low < estimate < high
    assert scores.min() <= low and high <= scores.max()


def test_bootstrap_of_identical_scores_is_a_point() -> None:
    assert bootstrap_interval(np.full(5, 500.0)) == (500.0, 500.0, 500.0)


def test_bootstrap_is_stratified_by_task() -> None:
    # Two tasks on wildly different scales: a stratified resample always draws 3 runs of each task, so the
    # mean over all runs can only move within each task's spread; pooled resampling would swing by ~1e6.
    scores = np.array([[0.0, 1e6], [1.0, 1e6 + 1], [2.0, 1e6 + 2]])
    _, low, high = bootstrap_interval(scores, lambda s: s.reshape(len(s), -1).mean(axis=1), reps=2000)
    assert 5e5 <= low <= high <= 5e5 + 2


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_single_task_interval_is_scipys_percentile_bootstrap(confidence: float) -> None:
    # The same resampling with other random draws: the endpoints agree within the Monte Carlo error of
    # 20,000 replications (about 0.004 here), far below the 0.05 that separates a 90% from a 95% interval.
    scores = np.random.default_rng(1).normal(size=30)
    _, low, high = bootstrap_interval(scores, reps=20_000, confidence=confidence, seed=0)
    reference = stats.bootstrap(
        (scores,),
        lambda x, axis: stats.trim_mean(x, 0.25, axis=axis),
        n_resamples=20_000,
        confidence_level=confidence,
        method="percentile",
        random_state=0,
    ).confidence_interval
    assert low == pytest.approx(reference.low, abs=0.02)
    assert high == pytest.approx(reference.high, abs=0.02)


def test_iqm_curve_shape_and_band() -> None:
    scores = np.random.default_rng(0).normal(size=(6, 4)) + np.arange(4)
    middle, low, high = iqm_curve(scores, reps=500)
    np.testing.assert_allclose(middle, stats.trim_mean(scores, 0.25, axis=0))
    assert middle.shape == low.shape == high.shape == (4,)
    assert np.all(low <= middle) and np.all(middle <= high)


def test_probability_of_improvement_is_the_normalised_mann_whitney_u() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 5, size=7).astype(float), rng.integers(0, 5, size=5).astype(float)  # with ties
    u = stats.mannwhitneyu(x, y).statistic
    estimate, low, high = probability_of_improvement(x, y)
    assert estimate == pytest.approx(u / (len(x) * len(y)))
    assert low <= estimate <= high
    assert probability_of_improvement(np.full(3, 2.0), np.ones(4))[:3] == (1.0, 1.0, 1.0)
    assert probability_of_improvement(np.ones(3), np.ones(4))[0] == 0.5
    p_xy, p_yx = probability_of_improvement(x, y)[0], probability_of_improvement(y, x)[0]
    assert p_xy + p_yx == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("returns", "expected"),
    [
        ([10, 480, 300, 490, 500], (200, 400)),
        ([10, 20, 30, 40, 50], (None, None)),
        ([500, 500, 500, 500, 500], (100, 100)),
        ([10, 480, 490, 500, 470], (200, None)),
        ([10, 20, 30, 40, 475], (500, 500)),
    ],
)
def test_steps_to_threshold(returns: list[float], expected: tuple[int | None, int | None]) -> None:
    timesteps = np.array([100, 200, 300, 400, 500])
    assert steps_to_threshold(timesteps, np.array(returns, dtype=float), 475.0) == expected


def test_median_steps_counts_never_as_infinite() -> None:
    assert median_steps([100, 200, 300]) == 200
    assert median_steps([100, None, 300]) == 300
    assert median_steps([100, None, None]) == math.inf
    with pytest.raises(ValueError, match="median_steps needs at least one run"):
        median_steps([])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: bootstrap_interval(np.ones(3), confidence=1.0), r"confidence must be in \(0, 1\), got 1.0"),
        (lambda: bootstrap_interval(np.ones(3), reps=0), "reps must be an int >= 1, got 0"),
        (lambda: bootstrap_interval(np.ones(0)), "bootstrap_interval needs at least one run"),
        (lambda: probability_of_improvement(np.ones(0), np.ones(2)), "needs at least one run of each"),
        (lambda: iqm(np.ones(0)), "iqm needs at least one score"),
    ],
)
def test_bad_arguments(call: Callable[[], object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()
