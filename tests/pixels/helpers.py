"""A synthetic pixel env whose transitions can be told apart, and the Trainer's way of filling a replay."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers import FrameStackObservation

from dqnmap_auto.agent.replay import Replay
from dqnmap_auto.envs import final_observations

FRAME = (6, 6)


class NamedFramesEnv(gym.Env):
    """Random uint8 frames (all distinct in practice); episodes of 1-11 steps end by termination or truncation.

    The reward is a unique transition id, so a sampled transition can be looked up among the real ones.
    """

    observation_space = gym.spaces.Box(0, 255, FRAME, np.uint8)
    action_space = gym.spaces.Discrete(3)

    def __init__(self, index: int) -> None:
        self.index = index
        self.count = 0
        self.t = 0
        self.length = 1

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        self.length = int(self.np_random.integers(1, 12))
        return self._frame(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        self.count += 1
        end = self.t >= self.length
        terminated = bool(end and self.np_random.random() < 0.5)
        return self._frame(), float(self.index * 1_000_000 + self.count), terminated, end and not terminated, {}

    def _frame(self) -> np.ndarray:
        return self.np_random.integers(0, 256, size=FRAME, dtype=np.uint8)


def named_frames_envs(n_envs: int, stack: int, padding: str = "reset") -> gym.vector.SyncVectorEnv:
    """``n_envs`` NamedFramesEnv with FrameStackObservation (stack > 1), SAME_STEP autoreset as in training."""

    def make(index: int) -> gym.Env:
        env: gym.Env = NamedFramesEnv(index)
        return FrameStackObservation(env, stack, padding_type=padding) if stack > 1 else env

    return gym.vector.SyncVectorEnv(
        [lambda i=i: make(i) for i in range(n_envs)], autoreset_mode=AutoresetMode.SAME_STEP
    )


def fill(
    replay: Replay, envs: gym.vector.VectorEnv, steps: int, *, seed: int = 0
) -> dict[float, tuple[np.ndarray, int, np.ndarray, bool]]:
    """Step ``envs`` with random actions, adding to ``replay`` exactly as the Trainer does.

    Returns every transition the envs produced, by reward: (obs, action, true next obs, terminated).
    """
    truth = {}
    obs, _ = envs.reset(seed=seed)
    envs.action_space.seed(seed)
    for _ in range(steps):
        actions = envs.action_space.sample()
        next_obs, rewards, terminated, truncated, infos = envs.step(actions)
        done = terminated | truncated
        real_next = final_observations(next_obs, done, infos)
        replay.add(obs, actions, rewards, real_next, terminated, done=done)
        for i, reward in enumerate(rewards):
            truth[float(reward)] = (obs[i].copy(), int(actions[i]), real_next[i].copy(), bool(terminated[i]))
        obs = next_obs
    return truth
