"""MinAtar and Atari (ALE) environments: lazy registration and the wrappers that turn their observations into
channels-first uint8 images.

- ``MinAtar/<Game>-v1`` (Young & Tian 2019) gives (10, 10, C) bool grids; :func:`minatar_to_uint8` makes them
  (C, 10, 10) uint8 in {0, 255}, so every pixel env reaches the network as uint8 scaled by 1/255.
- ``ALE/<Game>-v5`` gets the standard DQN preprocessing from gymnasium's own wrappers: the env is made with
  ``frameskip=1`` and ``AtariPreprocessing`` skips frames (max-pooling the last two), adds no-op starts,
  converts to grayscale and resizes; ``ClipReward`` clips training rewards; ``FrameStackObservation`` stacks
  frames on a new leading axis, giving (frame_stack, screen_size, screen_size) uint8.

Registration happens only when such an id is asked for: importing ``minatar`` or ``ale_py`` costs time and needs
the ``pixels`` extra, which CartPole users do not install.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import AtariPreprocessing, ClipReward, FrameStackObservation, TransformObservation

from dqnmap_auto.config import EnvConfig
from dqnmap_auto.errors import EnvCreationError

MINATAR_PREFIX = "MinAtar/"
ALE_PREFIX = "ALE/"

Wrapper = Callable[[gym.Env], gym.Wrapper]

_registered: set[str] = set()


def register_env_id(env_id: str) -> None:
    """Register the MinAtar or ALE envs with gymnasium if ``env_id`` belongs to one of them (once)."""
    if env_id.startswith(MINATAR_PREFIX) and "minatar" not in _registered:
        try:
            import minatar.gym
        except ImportError:
            raise EnvCreationError(f"env.id: {env_id} needs the minatar package: pip install -e '.[pixels]'") from None
        if not any(name.startswith(MINATAR_PREFIX) for name in gym.registry):
            minatar.gym.register_envs()
        _registered.add("minatar")
    elif env_id.startswith(ALE_PREFIX) and "ale" not in _registered:
        try:
            import ale_py
        except ImportError:
            raise EnvCreationError(f"env.id: {env_id} needs the ale-py package: pip install -e '.[pixels]'") from None
        gym.register_envs(ale_py)  # ale_py registers its ids on import; this only marks the import as used
        ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)  # no banner: a user error stays one line
        _registered.add("ale")


def is_atari(env_id: str) -> bool:
    return env_id.startswith(ALE_PREFIX)


def make_kwargs(config: EnvConfig) -> dict[str, Any]:
    """Keyword arguments for ``gym.make``: ALE envs are made with ``frameskip=1`` (AtariPreprocessing skips)."""
    if is_atari(config.id):
        return {"frameskip": 1, **config.kwargs}
    return dict(config.kwargs)


def minatar_to_uint8(env: gym.Env) -> gym.Wrapper:
    """(H, W, C) bool -> (C, H, W) uint8 in {0, 255}, contiguous."""
    height, width, channels = env.observation_space.shape  # type: ignore[misc]
    space = gym.spaces.Box(0, 255, (channels, height, width), np.uint8)

    def convert(obs: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.moveaxis(obs, -1, 0), dtype=np.uint8) * np.uint8(255)

    return TransformObservation(env, convert, space)


def wrappers(config: EnvConfig, *, training: bool) -> list[Wrapper]:
    """The observation (and, for training, reward) wrappers of ``config.id``, innermost first.

    Evaluation envs get neither reward clipping nor life-loss termination: they report whole-game scores.
    """
    if config.id.startswith(MINATAR_PREFIX):
        return [minatar_to_uint8]
    if not is_atari(config.id):
        return []
    atari = config.atari
    out: list[Wrapper] = [
        functools.partial(
            AtariPreprocessing,
            noop_max=atari.noop_max,
            frame_skip=atari.frame_skip,
            screen_size=atari.screen_size,
            terminal_on_life_loss=training and atari.terminal_on_life_loss,
            grayscale_obs=True,
            scale_obs=False,  # uint8 to the replay; the network scales
        )
    ]
    if training and atari.clip_rewards:
        out.append(functools.partial(ClipReward, min_reward=-1.0, max_reward=1.0))
    out.append(functools.partial(FrameStackObservation, stack_size=atari.frame_stack))
    return out


def frames_per_observation(config: EnvConfig) -> int:
    """How many frames one observation stacks on its leading axis (1: the observation is one frame)."""
    return config.atari.frame_stack if is_atari(config.id) else 1
