"""Q-networks. An encoder turns an observation into features, a linear head gives one Q-value per action.

The split is what lets a CNN encoder for pixel observations (MinAtar, Atari) slot in beside the MLP one:
:func:`build_q_network` picks the encoder from the observation shape.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}


def mlp_encoder(in_features: int, widths: Sequence[int], activation: str) -> nn.Sequential:
    """Flatten, then Linear + activation per hidden width."""
    layers: list[nn.Module] = [nn.Flatten()]
    for width in widths:
        layers += [nn.Linear(in_features, width), ACTIVATIONS[activation]()]
        in_features = width
    return nn.Sequential(*layers)


class QNetwork(nn.Module):
    """Q(s, .) = head(encoder(s)); ``feature_dim`` is the encoder's output width."""

    def __init__(self, encoder: nn.Module, feature_dim: int, n_actions: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(feature_dim, n_actions)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(obs))


def build_q_network(
    obs_shape: tuple[int, ...], n_actions: int, *, net_arch: Sequence[int], activation: str
) -> QNetwork:
    """A Q-network for vector observations (any shape is flattened)."""
    in_features = 1
    for dim in obs_shape:
        in_features *= dim
    encoder = mlp_encoder(in_features, net_arch, activation)
    return QNetwork(encoder, net_arch[-1], n_actions)
