"""Policies for :class:`~rlrelax.agents.gumbel_ac.GumbelAC`: a categorical actor and twin discrete critics.

Both read the action space through :class:`rlrelax.agents.common.ChoiceLayout`: one categorical choice for
``Discrete``, several for a ``MultiDiscrete`` and one Bernoulli bit each for a ``MultiBinary`` space; or,
under :class:`TopKPolicy`, through :class:`rlrelax.agents.common.TopKLayout`: a slate of distinct items.
"""

from typing import Any, ClassVar, Literal

import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BaseModel, BasePolicy
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    FlattenExtractor,
    create_mlp,
    get_actor_critic_arch,
)
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn
from torch.nn import functional as F

from rlrelax.agents.common import ChoiceLayout, FactorisedSpace, TopKLayout

CriticInput = Literal["mixture", "concat"]
CRITIC_INPUTS: tuple[str, ...] = ("mixture", "concat")


class Actor(BasePolicy):
    """
    Categorical actor: an MLP from features to one logit per action (:class:`ChoiceLayout`).

    On a ``Discrete`` space one logit per action; on a ``MultiDiscrete`` one per option of each choice, on a
    ``MultiBinary`` one Bernoulli logit per bit: the policy is then the product of the choices' distributions,
    its deterministic action each choice's most likely option.

    :param observation_space: Observation space
    :param action_space: Action space (``Discrete``, or ``MultiDiscrete`` or ``MultiBinary`` of one dimension)
    :param net_arch: Hidden layer sizes
    :param features_extractor: Network to extract features
    :param features_dim: Number of features
    :param activation_fn: Activation function
    :param normalize_images: Whether to normalize images or not, dividing by 255.0
    :param top_k: Whether a ``MultiDiscrete([N] * k)`` action is a slate of ``k`` distinct items, one logit
        per item (:class:`rlrelax.agents.common.TopKLayout`), rather than ``k`` independent choices
    """

    action_space: FactorisedSpace

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: FactorisedSpace,
        net_arch: list[int],
        features_extractor: BaseFeaturesExtractor,
        features_dim: int,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
        top_k: bool = False,
    ) -> None:
        super().__init__(
            observation_space,
            action_space,
            features_extractor=features_extractor,
            normalize_images=normalize_images,
        )
        self.net_arch = net_arch
        self.features_dim = features_dim
        self.activation_fn = activation_fn
        self.top_k = top_k
        self.layout = TopKLayout.of(action_space) if top_k else ChoiceLayout.of(action_space)
        self.discrete = isinstance(action_space, spaces.Discrete)
        self.logits_net = nn.Sequential(*create_mlp(features_dim, self.layout.width, net_arch, activation_fn))

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            dict(
                net_arch=self.net_arch,
                features_dim=self.features_dim,
                activation_fn=self.activation_fn,
                features_extractor=self.features_extractor,
                top_k=self.top_k,
            )
        )
        return data

    def forward(self, obs: PyTorchObs) -> th.Tensor:
        """
        :param obs: Observation batch
        :return: The action logits, shape ``(batch, layout.width)``
        """
        return self.logits_net(self.extract_features(obs, self.features_extractor))

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        logits = self(observation)
        if not self.discrete:
            # Several choices: each its own argmax, or a Gumbel-max draw from the global torch RNG (a slate:
            # the top-k logits, or a Gumbel-top-k draw).
            return self.layout.mode(logits) if deterministic else self.layout.sample(logits, 1)[0]
        if deterministic:
            return logits.argmax(dim=-1)
        # Sampling from the global torch RNG, which SB3 seeds, keeps same-seed runs identical. Directly, not
        # through th.distributions.Categorical, whose argument checks cost 4x the draw on every env step.
        return th.multinomial(F.softmax(logits, dim=-1), 1).squeeze(-1)


class EnsembleMLP(nn.Module):
    """
    ``n_members`` MLPs of the same shape, evaluated together: each layer is one batched matrix product.

    Twin critics computed this way take about a quarter less time per forward and backward pass on a CPU
    than two ``nn.Sequential`` networks, whose cost at these sizes is mostly per-call overhead. Each member
    is initialised exactly as SB3's ``create_mlp`` initialises its own network.

    :param n_members: Number of networks
    :param in_dim: Input size
    :param out_dim: Output size
    :param net_arch: Hidden layer sizes
    :param activation_fn: Activation function after each hidden layer
    :param layer_norm: Whether each hidden layer is layer-normalised (with a learnt gain and bias per member)
        before its activation, as ``create_mlp(..., post_linear_modules=[nn.LayerNorm])`` does
    """

    def __init__(
        self,
        n_members: int,
        in_dim: int,
        out_dim: int,
        net_arch: list[int],
        activation_fn: type[nn.Module],
        layer_norm: bool = False,
    ) -> None:
        super().__init__()
        self.n_members = n_members
        members = [create_mlp(in_dim, out_dim, net_arch, activation_fn) for _ in range(n_members)]
        layers = [[module for module in member if isinstance(module, nn.Linear)] for member in members]
        # Weights as (member, in, out) and biases as (member, 1, out): the operands of th.baddbmm.
        self.weights = nn.ParameterList(
            nn.Parameter(th.stack([linear.weight.detach().T for linear in depth]).contiguous())
            for depth in zip(*layers, strict=True)
        )
        self.biases = nn.ParameterList(
            nn.Parameter(th.stack([linear.bias.detach().unsqueeze(0) for linear in depth]))
            for depth in zip(*layers, strict=True)
        )
        self.activation = activation_fn()
        # nn.LayerNorm's initial gain 1 and bias 0, one row per member: (member, 1, width).
        norm_widths = net_arch if layer_norm else []
        self.norm_gains = nn.ParameterList(nn.Parameter(th.ones(n_members, 1, w)) for w in norm_widths)
        self.norm_biases = nn.ParameterList(nn.Parameter(th.zeros(n_members, 1, w)) for w in norm_widths)

    def forward(self, inputs: th.Tensor) -> th.Tensor:
        """
        :param inputs: Shape ``(batch, in_dim)``, the same for every member, or ``(n_members, batch, in_dim)``
        :return: Shape ``(n_members, batch, out_dim)``
        """
        hidden = inputs if inputs.dim() == 3 else inputs.expand(self.n_members, *inputs.shape)
        last = len(self.weights) - 1
        for depth, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            hidden = th.baddbmm(bias, hidden, weight)
            if depth < last:
                if self.norm_gains:
                    hidden = F.layer_norm(hidden, hidden.shape[-1:])
                    hidden = th.addcmul(self.norm_biases[depth], hidden, self.norm_gains[depth])
                hidden = self.activation(hidden)
        return hidden


class DiscreteCritic(BaseModel):
    """
    Twin (or ``n_critics``) action-value networks for discrete actions, one choice or several.

    Two ways to read a (possibly relaxed) action ``a`` in the simplex, chosen by ``critic_input``:

    - ``"mixture"``: each network maps features to ``K`` values ``Q(s, ·)`` (discrete SAC's critic);
      a relaxed action is valued as the mixture ``Σ_k a_k Q(s, k)``, which is exact on one-hot actions and
      linear in ``a``. ``Discrete`` spaces only: over several choices it would need one output per joint
      action, and a mixture over the joint space is not what the choices' independent relaxations give.
    - ``"concat"``: each network maps ``[features, a]`` to one value ``Q(s, a)`` (SAC's continuous critic);
      a relaxed action is a genuine input, so the critic is evaluated off the simplex vertices, where it
      was never trained (replay holds one-hot actions only). For several choices ``a`` is the encoded
      joint action of :meth:`ChoiceLayout.encode` (the choices' one-hots side by side, or the bits), so the
      critic can value any interaction between the choices.

    :param observation_space: Observation space
    :param action_space: Action space (``Discrete``, or ``MultiDiscrete`` or ``MultiBinary`` of one dimension)
    :param net_arch: Hidden layer sizes
    :param features_extractor: Network to extract features
    :param features_dim: Number of features
    :param activation_fn: Activation function
    :param normalize_images: Whether to normalize images or not, dividing by 255.0
    :param n_critics: Number of critic networks (2: clipped double Q)
    :param share_features_extractor: Whether the features extractor is the actor's (then the critic loss
        does not train it)
    :param critic_input: ``"mixture"`` or ``"concat"``, see above
    :param top_k: Whether a ``MultiDiscrete([N] * k)`` action is a slate, read as its k-hot over the ``N``
        items (:meth:`rlrelax.agents.common.TopKLayout.encode`; ``"concat"`` only)
    :param layer_norm: Whether the networks' hidden layers are layer-normalised (:class:`EnsembleMLP`)
    """

    action_space: FactorisedSpace
    features_extractor: BaseFeaturesExtractor

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: FactorisedSpace,
        net_arch: list[int],
        features_extractor: BaseFeaturesExtractor,
        features_dim: int,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
        n_critics: int = 2,
        share_features_extractor: bool = False,
        critic_input: CriticInput = "mixture",
        top_k: bool = False,
        layer_norm: bool = False,
    ) -> None:
        super().__init__(
            observation_space,
            action_space,
            features_extractor=features_extractor,
            normalize_images=normalize_images,
        )
        if critic_input not in CRITIC_INPUTS:
            raise ValueError(f"critic_input must be one of {CRITIC_INPUTS}, got {critic_input!r}")
        self.discrete = isinstance(action_space, spaces.Discrete)
        if critic_input == "mixture" and not self.discrete:
            raise ValueError(
                f"critic_input='mixture' needs a Discrete action space, got {action_space!r}; "
                "use critic_input='concat', whose critic reads the joint action"
            )
        self.layout = TopKLayout.of(action_space) if top_k else ChoiceLayout.of(action_space)
        # The width of an encoded action: |A| for Discrete (a one-hot), else one entry per actor logit.
        self.n_actions = self.layout.width
        self.share_features_extractor = share_features_extractor
        self.n_critics = n_critics
        self.critic_input = critic_input
        in_dim, out_dim = (
            (features_dim, self.n_actions)
            if critic_input == "mixture"
            else (features_dim + self.n_actions, 1)
        )
        self.q_networks = EnsembleMLP(n_critics, in_dim, out_dim, net_arch, activation_fn, layer_norm)

    def features(self, obs: PyTorchObs) -> th.Tensor:
        """
        :param obs: Observation batch
        :return: The critic's features, shape ``(batch, features_dim)``
        """
        # A shared extractor is trained by the actor loss only, as in SB3's ContinuousCritic.
        with th.set_grad_enabled(th.is_grad_enabled() and not self.share_features_extractor):
            return self.extract_features(obs, self.features_extractor)

    def all_action_values(self, features: th.Tensor) -> th.Tensor:
        """
        :param features: Output of :meth:`features`, shape ``(batch, features_dim)``
        :return: ``Q(s, k)`` of every critic network, shape ``(n_critics, batch, n_actions)``; for several
            choices, of every joint action in :meth:`ChoiceLayout.joint_actions`'s order (as many as it
            enumerates)
        """
        if self.critic_input == "mixture":
            return self.q_networks(features)
        if self.discrete:
            table = th.eye(self.n_actions, dtype=features.dtype, device=features.device)
        else:
            table = self.layout.encode(self.layout.joint_actions(features.device), features.dtype)
        one_hots = table.unsqueeze(1).expand(-1, features.shape[0], -1)  # (|A|, batch, width)
        return self.action_values(features, one_hots).transpose(1, 2)

    def action_values(self, features: th.Tensor, actions: th.Tensor) -> th.Tensor:
        """
        Value of float actions (one-hot or relaxed, encoded by :class:`ChoiceLayout`) under every
        ``"concat"`` critic network.

        :param features: Shape ``(batch, features_dim)``
        :param actions: Shape ``(*leading, batch, n_actions)``
        :return: Shape ``(n_critics, *leading, batch)``
        """
        expanded = features.expand(*actions.shape[:-1], features.shape[-1])
        inputs = th.cat([expanded, actions], dim=-1).reshape(-1, features.shape[-1] + self.n_actions)
        return self.q_networks(inputs).reshape(self.n_critics, *actions.shape[:-1])

    def taken_action_values(self, obs: PyTorchObs, actions: th.Tensor) -> th.Tensor:
        """
        :param obs: Observation batch
        :param actions: The actions taken, as the replay buffer holds them: shape ``(batch, 1)`` for
            ``Discrete``, ``(batch, n_choices)`` otherwise
        :return: ``Q(s, a)`` of every critic network, shape ``(n_critics, batch, 1)``
        """
        if self.discrete:
            return self.select_taken(self(obs), actions)
        features = self.features(obs)
        return self.action_values(features, self.layout.encode(actions, features.dtype)).unsqueeze(-1)

    def select_taken(self, values: th.Tensor, actions: th.Tensor) -> th.Tensor:
        """
        :param values: ``Q(s, k)`` of every critic network and ``Discrete`` action, as :meth:`forward` returns
            them, shape ``(n_critics, batch, n_actions)``
        :param actions: The actions taken, shape ``(batch, 1)``
        :return: ``Q(s, a)`` of every critic network, shape ``(n_critics, batch, 1)``
        """
        return values.gather(2, actions.long().expand(self.n_critics, -1, -1))

    def forward(self, obs: PyTorchObs) -> th.Tensor:
        """
        :param obs: Observation batch
        :return: ``Q(s, k)`` of every critic network, shape ``(n_critics, batch, n_actions)``
        """
        return self.all_action_values(self.features(obs))


class GumbelACPolicy(BasePolicy):
    """
    Policy class (categorical actor, twin discrete critics and their targets) for GumbelAC.

    :param observation_space: Observation space
    :param action_space: Action space (``Discrete``, or ``MultiDiscrete`` or ``MultiBinary`` of one dimension)
    :param lr_schedule: Learning rate schedule (could be constant)
    :param net_arch: Hidden layers, a list shared by actor and critic or ``dict(pi=[...], qf=[...])``;
        ``dict(pi=[64, 64], qf=[128, 128])`` by default
    :param activation_fn: Activation function
    :param features_extractor_class: Features extractor to use
    :param features_extractor_kwargs: Keyword arguments to pass to the features extractor
    :param normalize_images: Whether to normalize images or not, dividing by 255.0
    :param optimizer_class: The optimizer to use, ``th.optim.Adam`` by default
    :param optimizer_kwargs: Additional keyword arguments, excluding the learning rate, for the optimizer;
        ``dict(fused=True)`` for the default Adam
    :param n_critics: Number of critic networks
    :param share_features_extractor: Whether actor and critic share the features extractor
    :param critic_input: How the critic reads an action: ``"mixture"`` or ``"concat"`` (see
        :class:`DiscreteCritic`; ``"concat"`` for several choices); set through ``GumbelAC(critic_input=...)``
    :param critic_layer_norm: Whether the critics' hidden layers are layer-normalised (Ba et al., 2016), which
        bounds the values they extrapolate to states the replay holds few of (Ball et al., 2023, "Efficient
        Online Reinforcement Learning with Offline Data", Sec. 4.2)
    """

    #: Whether a ``MultiDiscrete([N] * k)`` action is a slate of distinct items (:class:`TopKPolicy`)
    top_k: ClassVar[bool] = False
    action_space: FactorisedSpace
    actor: Actor
    critic: DiscreteCritic
    critic_target: DiscreteCritic

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: FactorisedSpace,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        features_extractor_class: type[BaseFeaturesExtractor] = FlattenExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        n_critics: int = 2,
        share_features_extractor: bool = False,
        critic_input: CriticInput = "mixture",
        critic_layer_norm: bool = False,
    ) -> None:
        if not isinstance(critic_layer_norm, bool):
            raise TypeError(f"critic_layer_norm must be a bool, got {critic_layer_norm!r}")
        if optimizer_kwargs is None and optimizer_class is th.optim.Adam:
            # One fused kernel per step instead of about ten per parameter tensor: on a CPU, torch's default
            # per-tensor loop takes about four times as long for these small networks.
            optimizer_kwargs = {"fused": True}
        super().__init__(
            observation_space,
            action_space,
            features_extractor_class,
            features_extractor_kwargs,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            normalize_images=normalize_images,
        )
        if net_arch is None:
            # The critic must resolve small differences between long-horizon action values (on CartPole, the
            # slow drift towards the edge of the track), so it is wider than the actor.
            net_arch = {"pi": [64, 64], "qf": [128, 128]}
        actor_arch, critic_arch = get_actor_critic_arch(net_arch)
        self.net_arch = net_arch
        self.activation_fn = activation_fn
        self.share_features_extractor = share_features_extractor
        self.critic_input = critic_input
        self.net_args: dict[str, Any] = {
            "observation_space": self.observation_space,
            "action_space": self.action_space,
            "net_arch": actor_arch,
            "activation_fn": self.activation_fn,
            "normalize_images": normalize_images,
            "top_k": self.top_k,
        }
        self.actor_kwargs = self.net_args.copy()
        self.critic_kwargs = self.net_args.copy()
        self.critic_kwargs.update(
            {
                "n_critics": n_critics,
                "net_arch": critic_arch,
                "share_features_extractor": share_features_extractor,
                "critic_input": critic_input,
                "layer_norm": critic_layer_norm,
            }
        )
        self._build(lr_schedule)

    def _build(self, lr_schedule: Schedule) -> None:
        self.actor = self.make_actor()
        self.actor.optimizer = self.optimizer_class(  # type: ignore[call-arg]
            self.actor.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )
        if self.share_features_extractor:
            self.critic = self.make_critic(features_extractor=self.actor.features_extractor)
            critic_parameters = [
                param for name, param in self.critic.named_parameters() if "features_extractor" not in name
            ]
        else:
            self.critic = self.make_critic(features_extractor=None)
            critic_parameters = list(self.critic.parameters())
        self.critic_target = self.make_critic(features_extractor=None)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic.optimizer = self.optimizer_class(  # type: ignore[call-arg]
            critic_parameters, lr=lr_schedule(1), **self.optimizer_kwargs
        )
        self.critic_target.set_training_mode(False)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            dict(
                net_arch=self.net_arch,
                activation_fn=self.net_args["activation_fn"],
                n_critics=self.critic_kwargs["n_critics"],
                share_features_extractor=self.share_features_extractor,
                critic_input=self.critic_input,
                critic_layer_norm=self.critic_kwargs["layer_norm"],
                lr_schedule=self._dummy_schedule,  # not needed to load the policy alone
                optimizer_class=self.optimizer_class,
                optimizer_kwargs=self.optimizer_kwargs,
                features_extractor_class=self.features_extractor_class,
                features_extractor_kwargs=self.features_extractor_kwargs,
            )
        )
        return data

    def make_actor(self, features_extractor: BaseFeaturesExtractor | None = None) -> Actor:
        actor_kwargs = self._update_features_extractor(self.actor_kwargs, features_extractor)
        return Actor(**actor_kwargs).to(self.device)

    def make_critic(self, features_extractor: BaseFeaturesExtractor | None = None) -> DiscreteCritic:
        critic_kwargs = self._update_features_extractor(self.critic_kwargs, features_extractor)
        return DiscreteCritic(**critic_kwargs).to(self.device)

    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        return self._predict(obs, deterministic=deterministic)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        return self.actor._predict(observation, deterministic)

    def set_training_mode(self, mode: bool) -> None:
        """
        Put the policy in either training or evaluation mode (affects batch norm and dropout).

        :param mode: if true, set to training mode, else set to evaluation mode
        """
        if mode == self.training:
            # SB3 calls this on every predict; walking the module tree each time costs ~10% of training.
            return
        self.actor.set_training_mode(mode)
        self.critic.set_training_mode(mode)
        self.training = mode


class TopKPolicy(GumbelACPolicy):
    """
    GumbelAC's policy for slates: ``k`` distinct items out of ``N`` in a ``MultiDiscrete([N] * k)`` space.

    The actor has one logit per item and draws a slate without replacement (the Plackett-Luce model, sampled
    by Gumbel-top-k: Kool, van Hoof and Welling, 2019, "Stochastic Beams and Where to Find Them: The
    Gumbel-Top-k Trick for Sampling Sequences Without Replacement"); ``predict(deterministic=True)`` gives the
    ``k`` highest-logit items, highest first. The critics read a slate as its k-hot over the items, so they
    value the set shown, not its order: right for environments whose reward ignores the order of the slots, as
    ``rlrelax/Slate-v0``'s does. A relaxed slate is ``soft_topk(l + G, k, tau)``, a k-hot relaxed through the
    same Gumbel noise that draws the sample (Xie and Ermon, 2019, "Reparameterizable Subset Sampling via
    Continuous Relaxations"). See :class:`rlrelax.agents.common.TopKLayout` for every estimator; a space other
    than a slate space is a ``ValueError`` naming it.

    Selected by name: ``GumbelAC("TopKPolicy", env)``; its arguments are :class:`GumbelACPolicy`'s.
    """

    top_k = True


MlpPolicy = GumbelACPolicy
