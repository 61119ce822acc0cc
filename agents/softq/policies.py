"""Policies for ``SoftQ``: a Q-network whose Boltzmann distribution is the policy."""

from typing import Any

import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, FlattenExtractor, create_mlp
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from stable_baselines3.dqn.policies import DQNPolicy, QNetwork
from torch import nn

from rlrelax.agents.common import FactorisedSpace, choice_sizes, split_choices
from rlrelax.relax import gumbel_noise


def boltzmann_sample(q_values: th.Tensor, ent_coef: float) -> th.Tensor:
    """Draw one action per row from the Boltzmann policy ``π(a|s) ∝ exp(Q(s, a) / alpha)``.

    Uses the Gumbel-max trick in the form ``argmax_a (Q(s, a) + alpha·G_a)``, which has the same argmax
    as ``Q/alpha + G`` for alpha > 0 but never divides by alpha, so it stays exact and finite as alpha → 0
    (the greedy action) and as alpha → ∞ (uniform). Draws come from the global torch RNG, which SB3 seeds.

    :param q_values: Q-values of shape ``(batch, n_actions)``
    :param ent_coef: the temperature alpha > 0
    :return: sampled action indices of shape ``(batch,)``
    """
    noise = gumbel_noise(q_values.shape, device=q_values.device, dtype=q_values.dtype)
    return (q_values + ent_coef * noise).argmax(dim=1).reshape(-1)


def mlp(
    input_dim: int, output_dim: int, net_arch: list[int], activation_fn: type[nn.Module], layer_norm: bool
) -> nn.Sequential:
    """A Q-network's MLP, SB3's ``create_mlp``, optionally with each hidden layer layer-normalised (Ba, Kiros
    and Hinton, 2016, "Layer Normalization") before its activation.

    Layer norm bounds what a critic extrapolates to states it has rarely seen, which stopped GumbelAC's late
    falls on CartPole-v1 (``experiments/tuning/speed.md``, "Layer-normalised critics"); SoftQ's entry learnt
    CartPole-v1 more slowly with it ("SoftQ's gradient step compiled").

    :param input_dim: the features' size
    :param output_dim: the outputs' size
    :param net_arch: the hidden layers' sizes
    :param activation_fn: the activation function
    :param layer_norm: whether to layer-normalise the hidden layers
    :return: the network
    """
    post_linear_modules: list[type[nn.Module]] = [nn.LayerNorm] if layer_norm else []
    return nn.Sequential(
        *create_mlp(input_dim, output_dim, net_arch, activation_fn, post_linear_modules=post_linear_modules)
    )


class BranchingQNetwork(BasePolicy):
    """
    A factorised Q-network for several discrete choices: ``Q(s, a) = V(s) + Σ_m A_m(s, a_m)``.

    One MLP outputs ``[V(s) | A_1(s, ·) | ... | A_M(s, ·)]`` (laid out as
    :func:`rlrelax.agents.common.split_choices` reads it), so the network grows with the sum of the choices'
    sizes, not their product; action branching after Tavakoli, Pardo and Kormushev (2018), "Action Branching
    Architectures for Deep Reinforcement Learning", with one joint value regressed on the soft Bellman
    target. ``_predict`` is the greedy joint action, each choice's own argmax.

    :param observation_space: Observation space
    :param action_space: Action space, ``MultiDiscrete`` or ``MultiBinary`` of one dimension
    :param features_extractor: Features extractor
    :param features_dim: Number of features
    :param net_arch: The hidden layer sizes (``[64, 64]`` when ``None``, as SB3's ``QNetwork``)
    :param activation_fn: Activation function
    :param normalize_images: Whether to normalize images or not, dividing by 255.0 (True by default)
    :param layer_norm: Whether each hidden layer is layer-normalised before its activation
        (:func:`hidden_layers`)
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.MultiDiscrete | spaces.MultiBinary,
        features_extractor: BaseFeaturesExtractor,
        features_dim: int,
        net_arch: list[int] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
        layer_norm: bool = False,
    ) -> None:
        super().__init__(
            observation_space,
            action_space,
            features_extractor=features_extractor,
            normalize_images=normalize_images,
        )
        sizes = choice_sizes(action_space)
        if sizes is None:
            raise ValueError(f"BranchingQNetwork is for several choices, got {action_space!r}; use QNetwork")
        self.choice_sizes = sizes
        self.net_arch = [64, 64] if net_arch is None else net_arch
        self.activation_fn = activation_fn
        self.features_dim = features_dim
        self.layer_norm = layer_norm
        self.q_net = mlp(features_dim, 1 + sum(sizes), self.net_arch, activation_fn, layer_norm)

    def forward(self, obs: PyTorchObs) -> th.Tensor:
        """
        :param obs: Observation batch
        :return: ``[V(s) | A_1(s, ·) | ... | A_M(s, ·)]``, shape ``(batch, 1 + Σ_m |A_m|)``
        """
        return self.q_net(self.extract_features(obs, self.features_extractor))

    def _predict(self, observation: PyTorchObs, deterministic: bool = True) -> th.Tensor:
        _, advantages = split_choices(self(observation), self.choice_sizes)
        return th.stack([advantage.argmax(dim=1) for advantage in advantages], dim=1)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            dict(
                net_arch=self.net_arch,
                features_dim=self.features_dim,
                activation_fn=self.activation_fn,
                features_extractor=self.features_extractor,
                layer_norm=self.layer_norm,
            )
        )
        return data


class LayerNormQNetwork(QNetwork):
    """SB3's ``QNetwork`` with each hidden layer layer-normalised before its activation (:func:`mlp`).

    :param args: ``QNetwork``'s arguments
    :param kwargs: ``QNetwork``'s keyword arguments
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # QNetwork takes no layers besides Linear and the activation, so its MLP is built again with them.
        self.q_net = mlp(self.features_dim, int(self.action_space.n), self.net_arch, self.activation_fn, True)


class SoftQPolicy(DQNPolicy):
    """
    Soft Q-learning policy: a Q-network, its target network, and the temperature alpha of the Boltzmann
    policy ``π(a|s) ∝ exp(Q(s, a)/alpha)``.

    alpha is stored here as the parameter ``log_ent_coef`` (outside the Q-network's optimiser) so that a
    policy saved or loaded on its own still samples from the right distribution.
    ``predict(deterministic=True)`` is the greedy action ``argmax_a Q(s, a)``; otherwise an action is drawn
    from the Boltzmann policy.

    :param observation_space: Observation space
    :param action_space: Action space: ``Discrete`` (a :class:`QNetwork` of |A| outputs), or ``MultiDiscrete``
        or ``MultiBinary`` of one dimension (a :class:`BranchingQNetwork`; one Boltzmann policy per choice)
    :param lr_schedule: Learning rate schedule (could be constant)
    :param net_arch: The hidden layer sizes of the Q-network (``[256, 256]`` when ``None``)
    :param activation_fn: Activation function
    :param features_extractor_class: Features extractor to use
    :param features_extractor_kwargs: Keyword arguments to pass to the features extractor
    :param normalize_images: Whether to normalize images or not, dividing by 255.0 (True by default)
    :param optimizer_class: The optimizer to use, ``th.optim.Adam`` by default
    :param optimizer_kwargs: Additional keyword arguments, excluding the learning rate, to pass to the
        optimizer
    :param layer_norm: Whether the Q-network's hidden layers are layer-normalised before their activations
        (:func:`mlp`)
    """

    action_space: FactorisedSpace

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: FactorisedSpace,
        lr_schedule: Schedule,
        net_arch: list[int] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        layer_norm: bool = False,
    ) -> None:
        if not isinstance(layer_norm, bool):
            raise TypeError(f"layer_norm must be a bool, got {layer_norm!r}")
        # Set first: DQNPolicy's constructor builds the Q-networks (make_q_net).
        self.layer_norm = layer_norm
        # Wider than DQNPolicy's [64, 64]: in tuning runs on CartPole-v1 it reached 500 within 25k steps on
        # seeds where [64, 64] stalled near 150 for most of the 50k-step budget.
        super().__init__(
            observation_space,
            # DQNPolicy is annotated for Discrete only; make_q_net below builds the network for the others.
            action_space,  # type: ignore[arg-type]
            lr_schedule,
            net_arch=[256, 256] if net_arch is None else net_arch,
            activation_fn=activation_fn,
            features_extractor_class=features_extractor_class,
            features_extractor_kwargs=features_extractor_kwargs,
            normalize_images=normalize_images,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
        )
        # log alpha rather than alpha: no gradient step can make alpha negative, and alpha → 0 stays
        # representable. Frozen unless SoftQ learns alpha ("auto"), which gives it an optimiser.
        self.log_ent_coef = nn.Parameter(th.zeros(()), requires_grad=False)

    @property
    def ent_coef(self) -> float:
        """The temperature alpha = exp(log alpha) of the Boltzmann policy, as a Python float (float64).

        :return: alpha
        """
        return float(self.log_ent_coef.detach().double().exp())

    def make_q_net(self) -> QNetwork | BranchingQNetwork:  # type: ignore[override]
        if isinstance(self.action_space, spaces.Discrete) and not self.layer_norm:
            return super().make_q_net()
        # Separate features extractors for the network and its target, as DQNPolicy.make_q_net makes them.
        net_args = self._update_features_extractor(self.net_args, features_extractor=None)
        if isinstance(self.action_space, spaces.Discrete):
            return LayerNormQNetwork(**net_args).to(self.device)
        return BranchingQNetwork(**net_args, layer_norm=self.layer_norm).to(self.device)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "layer_norm": self.layer_norm}

    def _predict(self, obs: PyTorchObs, deterministic: bool = True) -> th.Tensor:
        q_values = self.q_net(obs)
        sizes = choice_sizes(self.action_space)
        if sizes is None:
            if deterministic:
                return q_values.argmax(dim=1).reshape(-1)
            return boltzmann_sample(q_values, self.ent_coef)
        _, advantages = split_choices(q_values, sizes)
        if deterministic:
            return th.stack([advantage.argmax(dim=1) for advantage in advantages], dim=1)
        ent_coef = self.ent_coef
        return th.stack([boltzmann_sample(advantage, ent_coef) for advantage in advantages], dim=1)


MlpPolicy = SoftQPolicy
