"""MinAtar and Atari env construction: observation format, DQN preprocessing, lazy registration, bad ids."""

from __future__ import annotations

import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.wrappers import AtariPreprocessing, ClipReward, FrameStackObservation

from dqnmap_auto.config import EnvConfig
from dqnmap_auto.envs import check_env, make_env
from dqnmap_auto.errors import ConfigError


def wrapper_chain(env: gym.Env) -> list[gym.Env]:
    chain = [env]
    while isinstance(chain[-1], gym.Wrapper):
        chain.append(chain[-1].env)
    return chain


def test_minatar_observations_are_channels_first_uint8() -> None:
    config = EnvConfig(id="MinAtar/Breakout-v1")
    space = check_env(config)
    assert space.shape == (4, 10, 10) and space.dtype == np.uint8
    env = make_env(config, training=True)
    raw = gym.make("MinAtar/Breakout-v1")
    obs, _ = env.reset(seed=3)
    raw_obs, _ = raw.reset(seed=3)
    for _ in range(5):
        assert obs.dtype == np.uint8 and obs.flags.c_contiguous
        np.testing.assert_array_equal(obs, np.moveaxis(raw_obs, -1, 0).astype(np.uint8) * 255)
        obs, *_ = env.step(1)
        raw_obs, *_ = raw.step(1)


def test_atari_gets_the_dqn_preprocessing() -> None:
    config = EnvConfig(id="ALE/Pong-v5", atari={"terminal_on_life_loss": True})
    train_env = make_env(config, training=True)
    obs, _ = train_env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    chain = wrapper_chain(train_env)
    assert train_env.unwrapped._frameskip == 1  # type: ignore[attr-defined]  # the wrapper skips, not the emulator
    pre = next(w for w in chain if isinstance(w, AtariPreprocessing))
    assert pre.frame_skip == 4 and pre.terminal_on_life_loss and pre.noop_max == 30
    assert any(isinstance(w, ClipReward) for w in chain) and isinstance(train_env, FrameStackObservation)
    eval_chain = wrapper_chain(make_env(config, training=False))  # game scores, whole games
    assert not any(isinstance(w, ClipReward) for w in eval_chain)
    assert not next(w for w in eval_chain if isinstance(w, AtariPreprocessing)).terminal_on_life_loss


def test_atari_settings_apply() -> None:
    config = EnvConfig(id="ALE/Pong-v5", atari={"frame_stack": 2, "screen_size": 42, "clip_rewards": False})
    env = make_env(config, training=True)
    assert env.observation_space.shape == (2, 42, 42)
    assert not any(isinstance(w, ClipReward) for w in wrapper_chain(env))


@pytest.mark.parametrize("env_id", ["MinAtar/Nope-v1", "ALE/Nope-v5"])
def test_unknown_pixel_ids_are_one_line_config_errors(env_id: str) -> None:
    with pytest.raises(ConfigError, match="unknown gymnasium environment") as error:
        check_env(EnvConfig(id=env_id))
    assert "\n" not in str(error.value)


def test_pixel_packages_load_only_when_asked_for() -> None:
    code = (
        "import sys\n"
        "from dqnmap_auto.config import EnvConfig\n"
        "from dqnmap_auto.envs import check_env\n"
        "import dqnmap_auto.trainer\n"
        "check_env(EnvConfig())\n"
        "assert 'minatar' not in sys.modules and 'ale_py' not in sys.modules, sorted(sys.modules)\n"
        "check_env(EnvConfig(id='MinAtar/Breakout-v1'))\n"
        "assert 'minatar' in sys.modules and 'ale_py' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
