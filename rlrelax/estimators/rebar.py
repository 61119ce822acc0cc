"""REBAR and RELAX: the score function with a relaxed, conditionally marginalized control variate.

Both estimate ``∇θ E_{b ~ p(b|θ)}[f(b)]`` for a categorical ``b = argmax z`` with ``z = log p + G`` (Gumbel
noise ``G``) as

    ĝ = [f(b) - c(z~)] ∇ log p(b) + ∇ c(z) - ∇ c(z~),

where ``z~`` is drawn from ``p(z | b)`` by a reparameterization (:func:`conditionally_perturbed`) and the last
two gradients are total derivatives through ``z(θ)`` and ``z~(θ)``. The two correction terms have the
expectation of the control variate's score term, so ``ĝ`` is unbiased for any differentiable ``c``, and
the variance can be minimised over ``c``'s parameters φ by the gradient ``∇φ E[ĝ²]`` (the expectation of
``ĝ`` does not depend on φ): :func:`estimate_with_variance_gradient`. A Bernoulli variable is the ``K = 2``
case: logits ``(0, θ)`` give ``P(b = 1) = sigmoid(θ)``, and the two-class relaxation ``softmax(z / τ)`` is
the binary Concrete ``sigmoid((θ + L) / τ)`` with logistic ``L`` (a difference of two Gumbels).
"""

from collections.abc import Callable

import torch
from torch import Tensor, nn

from rlrelax._validation import check_finite_number, check_int
from rlrelax.estimators._checks import check_estimator_call, evaluate, perturb
from rlrelax.estimators.gumbel_rao import conditionally_perturbed
from rlrelax.relax import gumbel_noise, log_softmax, softmax
from rlrelax.relax._validation import check_generator, check_tau


def concrete_relaxation(perturbed: Tensor, log_tau: Tensor) -> Tensor:
    """``softmax(perturbed / exp(log_tau))``: the Concrete relaxation of a Gumbel-max sample at a learned
    temperature.

    :param perturbed: Gumbel-perturbed log-probabilities ``(..., K)``
    :param log_tau: the log-temperature, a one-element tensor
    :return: the relaxed one-hot ``(..., K)``
    """
    return softmax(perturbed, tau=log_tau.exp())


class RebarControlVariate(nn.Module):
    """REBAR's control variate ``c(z) = η f(softmax(z / τ))``, with ``η`` and ``log τ`` learnable.

    Tucker, Mnih, Maddison, Lawson and Sohl-Dickstein (2017), "REBAR: Low-variance, unbiased gradient
    estimates for discrete latent variable models": the objective itself at the Concrete relaxation of the
    sample, scaled by ``η``; both ``η`` and the temperature are tuned to minimise the estimator's variance
    (:func:`estimate_with_variance_gradient`). ``f`` must accept relaxed actions.

    :param eta: initial scale ``η``, a finite number
    :param tau: initial temperature, above 0 (learned as ``log_tau``)
    """

    def __init__(self, eta: float = 1.0, tau: float = 1.0) -> None:
        super().__init__()
        self.eta = nn.Parameter(torch.tensor(check_finite_number(eta, "eta")))
        self.log_tau = nn.Parameter(torch.tensor(check_tau(tau)).log())

    def forward(self, perturbed: Tensor, f: Callable[[Tensor], Tensor]) -> Tensor:
        """``η f(softmax(perturbed / τ))``.

        :param perturbed: Gumbel-perturbed log-probabilities ``(n, *batch, K)``
        :param f: maps relaxed actions ``(n, *batch, K)`` to values ``(n, *batch)``
        :return: ``(n, *batch)``
        """
        return self.eta * evaluate(f, concrete_relaxation(perturbed, self.log_tau))


class RelaxControlVariate(nn.Module):
    """RELAX's learned control variate ``c_φ(z)``: a one-hidden-layer ReLU network of ``softmax(z / τ)``.

    Grathwohl, Choi, Wu, Roeder and Duvenaud (2018), "Backpropagation through the Void: Optimizing control
    variates for black-box gradient estimation": the control variate is a free-form network trained to
    minimise the estimator's variance, so ``f`` is only ever evaluated at discrete actions. As in their toy
    experiment, the network sees the Concrete relaxation of the sample at a learned temperature. The output
    layer starts at zero, so an untrained ``c_φ`` is zero and RELAX starts as REINFORCE without a baseline;
    the variance gradient reaches the output layer at once (through the hidden activations) and the hidden
    layer from the second update on. Subclasses may override :meth:`forward` (e.g. to condition on a state).

    :param n_actions: the number of categories ``K``
    :param hidden_size: width of the hidden layer
    :param tau: initial temperature of the relaxation, above 0 (learned as ``log_tau``)
    :param generator: source of randomness for the hidden layer's initial weights (``None``: the global
        RNG), drawn as ``torch.nn.Linear`` draws them
    """

    def __init__(
        self,
        n_actions: int,
        hidden_size: int = 10,
        tau: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        check_int(n_actions, "n_actions", minimum=1)
        check_int(hidden_size, "hidden_size", minimum=1)
        check_generator(generator)
        self.log_tau = nn.Parameter(torch.tensor(check_tau(tau)).log())
        # skip_init leaves the global RNG alone: the initial weights come from `generator` instead.
        self.hidden = nn.utils.skip_init(nn.Linear, n_actions, hidden_size)
        self.output = nn.utils.skip_init(nn.Linear, hidden_size, 1)
        bound = n_actions**-0.5
        with torch.no_grad():
            self.hidden.weight.uniform_(-bound, bound, generator=generator)
            self.hidden.bias.uniform_(-bound, bound, generator=generator)
            self.output.weight.zero_()
            self.output.bias.zero_()

    @property
    def n_actions(self) -> int:
        """The number of categories ``K`` the network takes."""
        return self.hidden.in_features

    def forward(self, perturbed: Tensor) -> Tensor:
        """``c_φ(z)`` for Gumbel-perturbed log-probabilities ``z``.

        :param perturbed: ``(n, *batch, K)``
        :return: ``(n, *batch)``, in the dtype of ``perturbed``
        """
        relaxed = concrete_relaxation(perturbed, self.log_tau)
        hidden = torch.relu(self.hidden(relaxed.to(self.hidden.weight.dtype)))
        return self.output(hidden).squeeze(-1).to(perturbed.dtype)


ControlVariate = RebarControlVariate | RelaxControlVariate


def control_variate_terms(
    log_probs: Tensor,
    perturbed: Tensor,
    actions: Tensor,
    values: Tensor,
    control_variate: Callable[[Tensor], Tensor],
    generator: torch.Generator | None = None,
) -> Tensor:
    """The REBAR/RELAX estimate for given Gumbel-max samples, as a surrogate that is zero in value.

    For each sample ``b = argmax z`` with ``z = log p + G``, the gradient of the returned tensor w.r.t. the
    logits behind ``log_probs`` and ``perturbed`` is the whole estimate
    ``ĝ = [f(b) - c(z~)] ∇ log p(b) + ∇ c(z) - ∇ c(z~)`` of the module docstring, with ``z~ ~ p(z | b)``
    drawn here. For callers that drew ``G`` themselves, as an agent does when it acts; the estimators
    draw it in :func:`_control_variate_surrogate`.

    :param log_probs: normalized log-probabilities ``(*batch, K)``, or ``(n, *batch, K)``
    :param perturbed: ``log_probs + G`` for the noise ``G`` that drew ``actions``, ``(n, *batch, K)``
    :param actions: the samples ``b``, action indices ``(n, *batch)``
    :param values: ``f(b)``, ``(n, *batch)``, no gradient needed
    :param control_variate: ``c``, called once on ``z`` and ``z~`` concatenated along the first dimension
    :param generator: source of randomness for ``z~`` (``None``: the global RNG)
    :return: ``(n, *batch)``, zero in value
    """
    one_hot = torch.nn.functional.one_hot(actions, perturbed.shape[-1]).bool()
    conditional_noise = gumbel_noise(
        perturbed.shape, generator=generator, device=perturbed.device, dtype=perturbed.dtype
    )
    conditional = conditionally_perturbed(log_probs, one_hot, conditional_noise)
    # One call for z and z~: f (REBAR) or the network (RELAX) sees both batches at once.
    at_sample, at_conditional = evaluate(
        control_variate, torch.cat([perturbed, conditional]), name="the control variate"
    ).chunk(2)
    log_prob_taken = log_probs.expand_as(perturbed).gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    # DiCE (Foerster et al., 2018) for both parts: zero in value, so a caller can add f(b) to the sum and
    # let its gradient reach f's parameters. Because log p - log p.detach() is zero, c(z~)'s own θ-gradient
    # drops out of the score term without a detach; attached, c(z~) keeps ĝ a function of φ, which the
    # variance gradient differentiates.
    score = (log_prob_taken - log_prob_taken.detach()) * (values.detach() - at_conditional)
    correction = at_sample - at_conditional
    return score + correction - correction.detach()


def _control_variate_surrogate(
    logits: Tensor,
    f: Callable[[Tensor], Tensor],
    control_variate: Callable[[Tensor], Tensor],
    n_samples: int,
    generator: torch.Generator | None,
) -> Tensor:
    """The surrogate of REBAR and RELAX for a control variate ``c`` of perturbed log-probabilities."""
    log_p = log_softmax(logits)
    perturbed = perturb(log_p, n_samples, generator)
    actions = perturbed.detach().argmax(dim=-1)
    values = evaluate(f, torch.nn.functional.one_hot(actions, logits.shape[-1]).to(logits.dtype))
    terms = control_variate_terms(log_p, perturbed, actions, values, control_variate, generator)
    return (terms + values).sum() / n_samples


def _check_control_variate(estimator: str, control_variate: object, logits: Tensor) -> None:
    expected = RebarControlVariate if estimator == "rebar" else RelaxControlVariate
    if not isinstance(control_variate, expected):
        raise TypeError(
            f"control_variate of estimator {estimator!r} must be a {expected.__name__} or None, "
            f"got {type(control_variate).__name__}"
        )
    if isinstance(control_variate, RelaxControlVariate) and control_variate.n_actions != logits.shape[-1]:
        raise ValueError(
            f"control_variate takes {control_variate.n_actions} actions, but logits of shape "
            f"{tuple(logits.shape)} have K = {logits.shape[-1]}"
        )


def _as_function(
    control_variate: ControlVariate, f: Callable[[Tensor], Tensor], *, detach: bool
) -> Callable[[Tensor], Tensor]:
    """The control variate as a function of ``z``, its parameters detached or not.

    The estimators' surrogates detach them: the gradient w.r.t. φ that their backward pass would leave in
    ``.grad`` is not the variance gradient, so none is left there.
    """
    parameters = {name: p.detach() if detach else p for name, p in control_variate.named_parameters()}
    objective = (f,) if isinstance(control_variate, RebarControlVariate) else ()
    return lambda z: torch.func.functional_call(control_variate, parameters, (z, *objective))


def rebar_estimator(
    logits: Tensor,
    f: Callable[[Tensor], Tensor],
    *,
    n_samples: int,
    generator: torch.Generator | None = None,
    control_variate: RebarControlVariate | None = None,
    **options: object,
) -> Tensor:
    """REBAR estimate of ``∇ E_{a ~ softmax(logits)}[f(a)]``: unbiased, with a Concrete control variate.

    Tucker, Mnih, Maddison, Lawson and Sohl-Dickstein (2017), "REBAR: Low-variance, unbiased gradient
    estimates for discrete latent variable models": the score function with the control variate
    ``η f(softmax(z / τ))`` evaluated at the conditional sample ``z~``, plus its reparameterized correction
    ``η ∇f(softmax(z / τ)) - η ∇f(softmax(z~ / τ))`` (module docstring). ``f`` is evaluated at the one-hot
    sample and at the relaxed ``z`` and ``z~``, so it must accept relaxed actions and be differentiable.
    Unbiased for every ``η`` and ``τ``; they matter for the variance only.

    :param logits: ``(*batch, K)``
    :param f: maps one-hot or relaxed actions ``(n, *batch, K)`` to values ``(n, *batch)``
    :param n_samples: samples per batch element
    :param generator: source of randomness (``None``: the global RNG)
    :param control_variate: ``η`` and ``τ`` (``None``: fixed ``η = 1``, ``τ = 1``); train it with
        :func:`estimate_with_variance_gradient`. No gradient reaches its parameters from this surrogate.
    :return: a scalar surrogate: its value is the sample mean of ``f`` at the one-hot samples summed over
        the batch, its gradient w.r.t. ``logits`` the REBAR estimate
    """
    check_estimator_call("rebar", logits, n_samples, generator, options, ("control_variate",))
    if control_variate is None:
        control_variate = RebarControlVariate()
    _check_control_variate("rebar", control_variate, logits)
    return _control_variate_surrogate(
        logits, f, _as_function(control_variate, f, detach=True), n_samples, generator
    )


def relax_estimator(
    logits: Tensor,
    f: Callable[[Tensor], Tensor],
    *,
    n_samples: int,
    generator: torch.Generator | None = None,
    control_variate: RelaxControlVariate | None = None,
    **options: object,
) -> Tensor:
    """RELAX estimate of ``∇ E_{a ~ softmax(logits)}[f(a)]``: unbiased, with a learned control variate.

    Grathwohl, Choi, Wu, Roeder and Duvenaud (2018), "Backpropagation through the Void: Optimizing control
    variates for black-box gradient estimation": REBAR's estimator with the relaxed objective replaced by
    a network ``c_φ(z)`` (:class:`RelaxControlVariate`), so ``f`` is only evaluated at the one-hot samples
    and may be a black box. Unbiased for every ``φ``. Without a control variate, ``c_φ`` is an untrained
    :class:`RelaxControlVariate`, which is zero: the estimate is then REINFORCE without a baseline.

    :param logits: ``(*batch, K)``
    :param f: maps one-hot actions ``(n_samples, *batch, K)`` to values ``(n_samples, *batch)``
    :param n_samples: samples per batch element
    :param generator: source of randomness (``None``: the global RNG)
    :param control_variate: ``c_φ`` for ``K`` actions (``None``: zero); train it with
        :func:`estimate_with_variance_gradient`. No gradient reaches its parameters from this surrogate.
    :return: a scalar surrogate: its value is the sample mean of ``f`` summed over the batch, its gradient
        w.r.t. ``logits`` the RELAX estimate
    """
    check_estimator_call("relax", logits, n_samples, generator, options, ("control_variate",))
    if control_variate is None:
        # A fixed seed: the zero output layer makes c_φ zero whatever the hidden weights.
        untrained = RelaxControlVariate(logits.shape[-1], generator=torch.Generator().manual_seed(0))
        control_variate = untrained.to(device=logits.device, dtype=logits.dtype)
    _check_control_variate("relax", control_variate, logits)
    return _control_variate_surrogate(
        logits, f, _as_function(control_variate, f, detach=True), n_samples, generator
    )


def estimate_with_variance_gradient(
    logits: Tensor,
    f: Callable[[Tensor], Tensor],
    control_variate: ControlVariate,
    *,
    n_samples: int = 1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The REBAR or RELAX estimate, and the gradient of its variance accumulated into the control variate.

    Tucker et al. (2017), section 3.3, and Grathwohl et al. (2018), section 3.3: since ``E[ĝ]`` does not
    depend on the control variate's parameters φ, ``∇φ Var(ĝ) = ∇φ E[‖ĝ‖²]``, estimated without bias by
    ``∇φ ‖ĝ‖²`` on the same draws that give ``ĝ`` (differentiating ``ĝ`` itself, a second-order gradient).
    The estimator follows from the type: REBAR for a :class:`RebarControlVariate`, RELAX for a
    :class:`RelaxControlVariate`. ``∇φ ‖ĝ‖²`` (``ĝ`` summed over the batch elements' squared entries) is
    added to each parameter's ``.grad``, like ``backward()``; step an optimizer of the control variate's
    parameters afterwards. Nothing else receives a gradient: apply the returned estimate yourself, e.g.
    ``logits.backward(estimate)`` for logits computed by a policy.

    :param logits: ``(*batch, K)``
    :param f: as for ``ESTIMATORS["rebar"]`` or ``ESTIMATORS["relax"]``
    :param control_variate: the learnable part, in training
    :param n_samples: samples per batch element (the estimate is their mean)
    :param generator: source of randomness (``None``: the global RNG)
    :return: the estimate ``ĝ`` of the gradient w.r.t. ``logits``, detached, of their shape
    """
    if not isinstance(control_variate, RebarControlVariate | RelaxControlVariate):
        raise TypeError(
            "control_variate must be a RebarControlVariate or a RelaxControlVariate, "
            f"got {type(control_variate).__name__}"
        )
    estimator = "rebar" if isinstance(control_variate, RebarControlVariate) else "relax"
    check_estimator_call(estimator, logits, n_samples, generator, {}, ())
    _check_control_variate(estimator, control_variate, logits)
    leaf = logits.detach().requires_grad_(True)
    parameters = [p for p in control_variate.parameters() if p.requires_grad]
    with torch.enable_grad():
        surrogate = _control_variate_surrogate(
            leaf, f, _as_function(control_variate, f, detach=False), n_samples, generator
        )
        (estimate,) = torch.autograd.grad(surrogate, leaf, create_graph=True)
        # materialize_grads: a subclass's forward may leave a parameter unused.
        variance_gradients = torch.autograd.grad(
            estimate.square().sum(), parameters, allow_unused=True, materialize_grads=True
        )
    for parameter, gradient in zip(parameters, variance_gradients, strict=True):
        parameter.grad = gradient if parameter.grad is None else parameter.grad + gradient
    return estimate.detach()
