"""Q-networks. An encoder turns an observation into features, a linear head gives one Q-value per action.

The split is what lets a CNN encoder for pixel observations (MinAtar, Atari, see ``cnn.py``) slot in beside the
MLP one: :func:`build_q_network` picks the encoder from the observation shape and ``agent.network``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dqnmap_auto.agent.cnn import ToFloat, conv_encoder, default_preset, resolve_conv_spec
from dqnmap_auto.config import AgentConfig

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}


def mlp_encoder(in_features: int, widths: Sequence[int], activation: str, *, pixels: bool = False) -> nn.Sequential:
    """Flatten, then Linear + activation per hidden width (``pixels``: uint8 inputs scaled to [0, 1] first)."""
    layers: list[nn.Module] = [ToFloat()] if pixels else []
    layers.append(nn.Flatten())
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


def network_kind(config: AgentConfig, obs_shape: tuple[int, ...]) -> str:
    """mlp, nature_cnn or minatar_cnn: ``agent.network``, with ``auto`` resolved from the observation shape."""
    if config.network != "auto":
        return config.network
    return default_preset(obs_shape) if len(obs_shape) == 3 else "mlp"


def check_network(config: AgentConfig, obs_shape: tuple[int, ...]) -> str:
    """Raise ConfigError unless ``config`` describes a network for ``obs_shape``; returns the kind.

    ``agent.cnn`` is ignored by an MLP, so a study may search ``agent.network`` and the CNN layout together.
    """
    kind = network_kind(config, obs_shape)
    if kind != "mlp":
        cnn = config.cnn
        resolve_conv_spec(
            kind, obs_shape, channels=cnn.channels, kernels=cnn.kernels, strides=cnn.strides, hidden=cnn.hidden
        )
    return kind


def build_q_network(
    obs_shape: tuple[int, ...],
    n_actions: int,
    config: AgentConfig,
    *,
    pixels: bool = False,
) -> QNetwork:
    """The Q-network ``config`` asks for. ``pixels``: observations are uint8 images, scaled inside the network."""
    kind = check_network(config, obs_shape)
    if kind == "mlp":
        in_features = 1
        for dim in obs_shape:
            in_features *= dim
        encoder = mlp_encoder(in_features, config.net_arch, config.activation, pixels=pixels)
        return QNetwork(encoder, config.net_arch[-1], n_actions)
    cnn = config.cnn
    spec = resolve_conv_spec(
        kind, obs_shape, channels=cnn.channels, kernels=cnn.kernels, strides=cnn.strides, hidden=cnn.hidden
    )
    return QNetwork(conv_encoder(obs_shape, spec, ACTIVATIONS[config.activation]), spec.hidden, n_actions)
