"""Convolutional encoders for pixel observations: the Nature-DQN CNN (Atari) and the MinAtar CNN.

- ``nature_cnn`` (Mnih et al. 2015): conv 32 8x8/4, conv 64 4x4/2, conv 64 3x3/1, dense 512.
- ``minatar_cnn`` (Young & Tian 2019): conv 16 3x3/1, dense 128.

Both presets can be reshaped through ``agent.cnn`` (channels, kernels, strides, hidden width), so a study can
search the architecture. Observations arrive as uint8 (the replay stores one byte per value, and batches travel
to the device as uint8); :class:`ToFloat` turns them into floats in [0, 1] as the first layer, on the device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from dqnmap_auto.errors import ConfigError


@dataclass(frozen=True)
class ConvSpec:
    """One CNN layout: per conv layer (channels, kernel, stride), then one dense layer of ``hidden`` units."""

    channels: tuple[int, ...]
    kernels: tuple[int, ...]
    strides: tuple[int, ...]
    hidden: int


PRESETS: dict[str, ConvSpec] = {
    "nature_cnn": ConvSpec(channels=(32, 64, 64), kernels=(8, 4, 3), strides=(4, 2, 1), hidden=512),
    "minatar_cnn": ConvSpec(channels=(16,), kernels=(3,), strides=(1,), hidden=128),
}

#: ``auto`` picks nature_cnn when both sides are at least this large (the smallest input it fits), else minatar.
NATURE_MIN_SIDE = 36


class ToFloat(nn.Module):
    """uint8 pixels -> floats in [0, 1] in the parameters' dtype; floating inputs pass unchanged.

    The dtype comes from a non-persistent buffer, so ``module.to(torch.float64)`` carries it along and saved
    state dicts do not change.
    """

    dtype_reference: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("dtype_reference", torch.zeros(()), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_floating_point():
            return x
        return x.to(self.dtype_reference.dtype) / 255.0


def default_preset(obs_shape: tuple[int, ...]) -> str:
    """The preset ``agent.network: auto`` uses for an image of shape (channels, height, width)."""
    return "nature_cnn" if min(obs_shape[1:]) >= NATURE_MIN_SIDE else "minatar_cnn"


def resolve_conv_spec(
    preset: str,
    obs_shape: tuple[int, ...],
    *,
    channels: Sequence[int] | None = None,
    kernels: Sequence[int] | None = None,
    strides: Sequence[int] | None = None,
    hidden: int | None = None,
) -> ConvSpec:
    """``preset`` with the given fields replaced, checked against ``obs_shape``; problems are ConfigErrors.

    A field left unset keeps the preset's value, so changing the number of layers needs channels, kernels and
    strides together.
    """
    if len(obs_shape) != 3:
        raise ConfigError(
            f"agent.network: {preset} needs image observations (channels, height, width), got shape {obs_shape}"
        )
    base = PRESETS[preset]
    spec = ConvSpec(
        channels=tuple(channels) if channels is not None else base.channels,
        kernels=tuple(kernels) if kernels is not None else base.kernels,
        strides=tuple(strides) if strides is not None else base.strides,
        hidden=hidden if hidden is not None else base.hidden,
    )
    lengths = {"channels": len(spec.channels), "kernels": len(spec.kernels), "strides": len(spec.strides)}
    if len(set(lengths.values())) > 1:
        raise ConfigError(
            f"agent.cnn: channels, kernels and strides need one entry per conv layer, got lengths {lengths} "
            f"(unset fields come from the {preset} preset)"
        )
    conv_output_shape(obs_shape, spec, where=f"agent.cnn ({preset} layout)")
    return spec


def conv_output_shape(obs_shape: tuple[int, ...], spec: ConvSpec, *, where: str = "agent.cnn") -> tuple[int, int, int]:
    """(channels, height, width) after the conv layers (no padding); ConfigError when a kernel does not fit."""
    channels, height, width = obs_shape
    for index, (out, kernel, stride) in enumerate(zip(spec.channels, spec.kernels, spec.strides, strict=True)):
        if kernel > height or kernel > width:
            raise ConfigError(
                f"{where}: conv layer {index + 1} (kernel {kernel}, stride {stride}) does not fit its "
                f"{height}x{width} input (observation shape {obs_shape})"
            )
        channels, height, width = out, (height - kernel) // stride + 1, (width - kernel) // stride + 1
    return channels, height, width


def conv_encoder(obs_shape: tuple[int, ...], spec: ConvSpec, activation: type[nn.Module]) -> nn.Sequential:
    """ToFloat, (Conv2d + activation) per layer, Flatten, Linear to ``spec.hidden`` + activation."""
    layers: list[nn.Module] = [ToFloat()]
    in_channels = obs_shape[0]
    for out, kernel, stride in zip(spec.channels, spec.kernels, spec.strides, strict=True):
        layers += [nn.Conv2d(in_channels, out, kernel, stride), activation()]
        in_channels = out
    channels, height, width = conv_output_shape(obs_shape, spec)
    layers += [nn.Flatten(), nn.Linear(channels * height * width, spec.hidden), activation()]
    return nn.Sequential(*layers)
