"""Pick the replay memory for an observation space."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from dqnmap_auto.agent.frame_replay import FrameReplayBuffer
from dqnmap_auto.agent.replay import Replay, ReplayBuffer


def is_image(space: gym.Space) -> bool:
    """uint8 observations of shape (channels or stacked frames, height, width): the pixel envs' format."""
    return space.dtype == np.uint8 and len(space.shape or ()) == 3


def build_replay(capacity: int, space: gym.Space, *, n_envs: int, frame_stack: int) -> Replay:
    """A :class:`FrameReplayBuffer` for images (each frame stored once, uint8), a :class:`ReplayBuffer` otherwise.

    ``frame_stack``: frames an observation stacks on its leading axis (1: the observation is one frame).
    """
    shape = tuple(space.shape or ())
    if is_image(space):
        return FrameReplayBuffer(capacity, shape, n_envs=n_envs, stack=frame_stack, obs_dtype=np.uint8)
    return ReplayBuffer(capacity, shape, space.dtype or np.float32)
