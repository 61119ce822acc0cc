"""How far apart two models' parameters are: the compiled updates' tests compare them to eager ones."""

import torch
from stable_baselines3.common.base_class import BaseAlgorithm


def flat_parameters(model: BaseAlgorithm) -> torch.Tensor:
    return torch.cat([param.detach().flatten() for param in model.policy.parameters()])


def relative_gap(model: BaseAlgorithm, reference: BaseAlgorithm) -> float:
    """The largest difference between two models' parameters, relative to the reference's largest one."""
    reached, expected = flat_parameters(model), flat_parameters(reference)
    return float((reached - expected).abs().max() / expected.abs().max())
