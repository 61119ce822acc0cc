"""What a GumbelAC gradient step would cost with a closed-form actor gradient: checked, then timed.

    python experiments/tuning/closed_form_actor_probe.py

GumbelAC's actor loss on a ``Discrete`` space with the mixture critic and the ``exact`` estimator is, per
state, ``alpha Σ_a π_a log π_a - Σ_a π_a Q_a + lambda Σ_a (l_a - mean l)²`` for logits ``l``,
``π = softmax(l)`` and the critics' pooled values ``Q`` (held fixed). Its gradient w.r.t. the logits has a
closed form, ``π ⊙ (v - Σ_a π_a v_a) + 2 lambda (l - mean l)`` with ``v = alpha log π - Q``, which a handful
of operators compute, where autograd runs the loss's whole graph (the entropy, the estimator, the penalty).
The actor's own layers still backpropagate it (``(logits * gradient).sum()``).

This probe is not a change to GumbelAC: it sizes the lever that ``experiments/tuning/speed.md`` leaves, an
update with far fewer operators. With the CartPole-v1 entry and ``estimator="exact"``, after ``--warmup`` env
steps:

1. on one replay batch, the actor's parameter gradient of the closed form against autograd's of the real loss
   (largest difference relative to the gradient's largest entry), which is float rounding: about 1e-5, as
   the critics' values (about 90 on CartPole-v1) cancel in ``v - Σ_a π_a v_a``;
2. the gradient steps of ``train`` with the real actor loss and with the closed form, taking turns from one
   saved state (as in ``gradient_step_floor.py``), in one process, one thread, subnormals flushed: median
   milliseconds per step and the operators each dispatches.

The two gradients round differently, so every training run with the closed form would be a new draw.
"""

import statistics
import time
from collections.abc import Callable

import torch
from gradient_step_floor import (
    ENV_ID,
    operators_per_step,
    relative_gap,
    restore,
    saved_state,
    timing_arguments,
    trained_entry_model,
)
from torch.nn import functional as F

from rlrelax._platform import cpu_model
from rlrelax.agents import GumbelAC
from rlrelax.agents.common import flat_gradient

ActorLoss = Callable[[torch.Tensor, torch.Tensor, float], tuple[torch.Tensor, dict[str, torch.Tensor]]]


def closed_form_actor_loss(model: GumbelAC) -> ActorLoss:
    """A stand-in for ``model._actor_loss`` whose gradient w.r.t. the logits is the closed form above."""

    def actor_loss(
        observations: torch.Tensor, ent_coef: torch.Tensor, temperature: float
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits = model.actor(observations)
        with torch.no_grad():
            q_values = model._pooled(model.critic(observations))
            log_pi = F.log_softmax(logits, dim=-1)
            pi = log_pi.exp()
            values = ent_coef * log_pi - q_values
            gradient = pi * (values - (pi * values).sum(dim=-1, keepdim=True))
            centred = logits - logits.mean(dim=-1, keepdim=True)
            gradient = (gradient + 2.0 * model.logit_penalty * centred) / logits.shape[0]
            entropy = -(pi * log_pi).sum(dim=-1).mean()
            objective = -ent_coef * entropy - (pi * q_values).sum(dim=-1).mean()
        return (logits * gradient).sum(), {"objective": objective, "entropy": entropy}

    return actor_loss


def main() -> None:
    args = timing_arguments(__doc__)
    model = trained_entry_model(args.warmup, **{**args.overrides, "estimator": "exact"})
    real_loss: ActorLoss = model._actor_loss
    closed_form = closed_form_actor_loss(model)

    assert model.replay_buffer is not None
    observations = model.replay_buffer.sample(model.batch_size).observations
    ent_coef, temperature = model._current_ent_coef(), model._current_temperature()
    autograd = flat_gradient(real_loss(observations, ent_coef, temperature)[0], model.actor.parameters())
    by_hand = flat_gradient(closed_form(observations, ent_coef, temperature)[0], model.actor.parameters())
    difference = relative_gap(by_hand, autograd)

    state = saved_state(model)
    losses = {"autograd through the loss": real_loss, "closed form": closed_form}
    seconds: dict[str, list[float]] = {name: [] for name in losses}
    for round_ in range(args.rounds + 1):
        names = list(losses) if round_ % 2 == 0 else list(reversed(losses))
        for name in names:
            restore(model, state)
            model._actor_loss = losses[name]  # type: ignore[method-assign]
            start = time.perf_counter()
            model.train(gradient_steps=args.steps, batch_size=model.batch_size)
            if round_:  # the first round warms up
                seconds[name].append((time.perf_counter() - start) / args.steps)
    operators = {}
    for name, loss in losses.items():
        restore(model, state)
        model._actor_loss = loss  # type: ignore[method-assign]
        operators[name] = operators_per_step(model)

    print(f"{cpu_model()}, torch {torch.__version__}, 1 thread")
    print(
        f"GumbelAC 'exact', {ENV_ID} entry, {args.warmup:,} env steps, "
        f"then {args.rounds} x {args.steps} steps"
    )
    print(
        "actor gradient, closed form against autograd: largest difference "
        f"{difference:.1e} of its largest entry"
    )
    base = statistics.median(seconds["autograd through the loss"])
    for name, values in seconds.items():
        median = statistics.median(values)
        print(
            f"{name:<26} {median * 1e3:6.3f} ms/step   speed x{base / median:.3f}"
            f"   {operators[name]:.0f} operators a step"
        )


if __name__ == "__main__":
    main()
