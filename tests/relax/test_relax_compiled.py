"""The relaxations inside a ``torch.compile`` graph: their checks of values step aside, their results stay.

GumbelAC's compiled update (``compile_update=True``) traces the relaxations into one graph, which cannot read
a number out of a tensor; the checks of types and shapes still run while tracing, those of values do not
(``rlrelax.relax._validation.values_readable``), and eager calls check everything as before.
"""

import math

import pytest
import torch

from rlrelax.relax import (
    gumbel_topk,
    hard_threshold,
    log_softmax,
    plackett_luce_log_prob,
    relaxed_bernoulli,
    softmax,
    straight_through,
)


def relaxations(logits: torch.Tensor, indices: torch.Tensor, hard: torch.Tensor) -> list[torch.Tensor]:
    probs = softmax(logits, tau=0.5)
    return [
        probs,
        log_softmax(logits),
        straight_through(hard, probs),
        hard_threshold(logits),
        plackett_luce_log_prob(logits, indices),
        gumbel_topk(logits, 2),
        relaxed_bernoulli(logits, hard=True),
    ]


def test_relaxations_compile_into_one_graph_with_eager_results() -> None:
    logits = torch.randn(8, 5, generator=torch.Generator().manual_seed(0))
    indices = torch.tensor([[0, 3]] * 8)
    hard = torch.nn.functional.one_hot(logits.argmax(-1), 5).float()
    compiled = torch.compile(relaxations, fullgraph=True, options={"fallback_random": True})
    torch.manual_seed(1)
    reached = compiled(logits, indices, hard)
    torch.manual_seed(1)
    expected = relaxations(logits, indices, hard)
    for got, want in zip(reached, expected, strict=True):
        torch.testing.assert_close(got, want)


def test_eager_calls_still_check_values() -> None:
    logits = torch.tensor([[0.0, math.nan]])
    with pytest.raises(ValueError, match="logits contain NaN"):
        softmax(logits)
    with pytest.raises(ValueError, match="logits contain NaN"):
        relaxed_bernoulli(logits)
    with pytest.raises(ValueError, match="must be finite"):
        straight_through(torch.tensor([[1.0, 0.0]]), torch.tensor([[math.inf, 0.0]]))
    with pytest.raises(ValueError, match="indices must be distinct"):
        plackett_luce_log_prob(torch.zeros(1, 3), torch.tensor([[1, 1]]))
