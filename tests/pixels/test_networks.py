"""CNN Q-networks: presets, shapes and dtypes, uint8 scaling, layouts from the config, bad layouts, meta-gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dqnmap_auto.agent.cnn import ToFloat
from dqnmap_auto.agent.dqn import DQNAgent
from dqnmap_auto.agent.networks import build_q_network, network_kind
from dqnmap_auto.agent.replay import Batch
from dqnmap_auto.config import AgentConfig, TrainConfig, validate_train_config
from dqnmap_auto.errors import ConfigError
from dqnmap_auto.hypergrad.build import build_tuner

ATARI = (4, 84, 84)
MINATAR = (4, 10, 10)


def convs(net: nn.Module) -> list[tuple[int, int, int]]:
    return [(m.out_channels, m.kernel_size[0], m.stride[0]) for m in net.modules() if isinstance(m, nn.Conv2d)]


def linears(net: nn.Module) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in net.modules() if isinstance(m, nn.Linear)]


@pytest.mark.parametrize(
    ("shape", "kind", "layers", "dense"),
    [
        (ATARI, "nature_cnn", [(32, 8, 4), (64, 4, 2), (64, 3, 1)], [(3136, 512), (512, 6)]),
        (MINATAR, "minatar_cnn", [(16, 3, 1)], [(1024, 128), (128, 6)]),
    ],
)
def test_presets_by_observation_shape(shape: tuple[int, ...], kind: str, layers: list, dense: list) -> None:
    config = AgentConfig()
    assert network_kind(config, shape) == kind
    net = build_q_network(shape, 6, config, pixels=True)
    assert convs(net) == layers and linears(net) == dense
    q = net(torch.randint(0, 256, (5, *shape), dtype=torch.uint8))
    assert q.shape == (5, 6) and q.dtype == torch.float32


def test_uint8_pixels_are_scaled_inside_the_network() -> None:
    net = build_q_network(MINATAR, 3, AgentConfig(), pixels=True).double()
    pixels = torch.randint(0, 256, (4, *MINATAR), dtype=torch.uint8)
    q = net(pixels)
    assert q.dtype == torch.float64  # the scaling follows the parameters' dtype
    torch.testing.assert_close(q, net(pixels.double() / 255.0))
    assert not any("dtype_reference" in k for k in net.state_dict())  # saved models are unchanged


def test_an_mlp_on_pixels_scales_them_too() -> None:
    net = build_q_network(MINATAR, 3, AgentConfig(network="mlp", net_arch=[8]), pixels=True)
    assert linears(net) == [(400, 8), (8, 3)] and not convs(net)
    pixels = torch.randint(0, 256, (2, *MINATAR), dtype=torch.uint8)
    torch.testing.assert_close(net(pixels), net(pixels.float() / 255.0))


def test_vector_observations_keep_the_mlp() -> None:
    net = build_q_network((4,), 2, AgentConfig(net_arch=[8]), pixels=False)
    assert not any(isinstance(m, ToFloat | nn.Conv2d) for m in net.modules())
    assert linears(net) == [(4, 8), (8, 2)]


def test_layout_from_config_accepts_search_space_strings() -> None:
    config = validate_train_config(
        {"agent": {"network": "nature_cnn", "cnn": {"channels": "16,32", "kernels": "8,4", "strides": [4, 2]}}}
    )
    assert config.agent.cnn.channels == [16, 32]
    net = build_q_network(ATARI, 4, config.agent, pixels=True)
    assert convs(net) == [(16, 8, 4), (32, 4, 2)]
    assert linears(net)[0] == (32 * 9 * 9, 512)  # hidden from the preset
    hidden = validate_train_config({"agent": {"cnn": {"hidden": 64, "channels": 8}}}).agent
    assert convs(build_q_network(MINATAR, 4, hidden, pixels=True)) == [(8, 3, 1)]
    assert linears(build_q_network(MINATAR, 4, hidden, pixels=True))[0] == (8 * 8 * 8, 64)


@pytest.mark.parametrize(
    ("agent", "shape", "message"),
    [
        ({"network": "nature_cnn"}, (4,), "needs image observations"),
        ({"network": "nature_cnn"}, MINATAR, "does not fit"),
        ({"cnn": {"channels": [16, 32]}}, MINATAR, "one entry per conv layer"),
    ],
)
def test_bad_layouts_are_one_line_config_errors(agent: dict, shape: tuple[int, ...], message: str) -> None:
    config = validate_train_config({"agent": agent}).agent
    with pytest.raises(ConfigError, match=message) as error:
        build_q_network(shape, 2, config, pixels=True)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("agent", "field"),
    [
        ({"network": "resnet"}, "agent.network"),
        ({"cnn": {"channels": [16, 32], "kernels": [3]}}, "agent.cnn"),
        ({"cnn": {"strides": [0]}}, "agent.cnn.strides"),
    ],
)
def test_bad_settings_fail_validation(agent: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field) as error:
        validate_train_config({"agent": agent})
    assert "\n" not in str(error.value)


def test_meta_gradients_flow_through_the_cnn() -> None:
    config = TrainConfig()
    config.self_tuning.mode = "meta"
    agent = DQNAgent(MINATAR, 3, config.agent, dtype=torch.float64, pixels=True)
    tuner = build_tuner(config, agent)
    rng = np.random.default_rng(0)

    def batch() -> Batch:
        pixels = torch.from_numpy(rng.integers(0, 2, size=(2, 16, *MINATAR), dtype=np.uint8) * np.uint8(255))
        return Batch(
            pixels[0],
            torch.from_numpy(rng.integers(0, 3, 16)),
            torch.from_numpy(rng.normal(size=16)),
            pixels[1],
            torch.from_numpy((rng.random(16) < 0.2).astype(np.float64)),
        )

    for _ in range(3):  # give Adam some state
        tuner.gradient_step(batch(), batch)
    hypergrad = tuner.hypergradient(batch(), batch())  # type: ignore[attr-defined]
    assert tuner.space.names == ["lr", "huber_delta"]  # the default's tuned values
    assert hypergrad.shape == (2,) and torch.isfinite(hypergrad).all() and (hypergrad != 0).all()
