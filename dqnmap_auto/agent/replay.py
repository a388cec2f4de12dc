"""A preallocated numpy ring buffer of transitions, and the interface every replay memory offers the Trainer.

Observations keep the dtype of the observation space, and batches are gathered for several gradient steps at
once: one fancy-indexing pass and one tensor conversion per training phase instead of one per gradient step.
This buffer stores ``obs`` and ``next_obs`` per transition, which suits vector observations; image observations
go to ``frame_replay.FrameReplayBuffer``, which stores each frame once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch


@dataclass(frozen=True)
class Batch:
    """Transitions as tensors; the leading dims are (batch,) or (n_batches, batch)."""

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor

    def __getitem__(self, index: int) -> Batch:
        return Batch(
            self.obs[index],
            self.actions[index],
            self.rewards[index],
            self.next_obs[index],
            self.terminated[index],
        )

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> Batch:
        """Move to ``device``; ``dtype`` converts the float fields (observations stay as stored)."""

        def move(t: torch.Tensor, cast: bool) -> torch.Tensor:
            return t.to(device=device, dtype=dtype if cast and dtype is not None else t.dtype)

        floating = self.obs.is_floating_point()
        return Batch(
            move(self.obs, floating),
            self.actions.to(device),
            move(self.rewards, True),
            move(self.next_obs, floating),
            move(self.terminated, True),
        )


class Replay(Protocol):
    """What the Trainer and the checkpoints use of a replay memory."""

    def __len__(self) -> int: ...

    @property
    def nbytes(self) -> int: ...

    def add(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        *,
        done: np.ndarray | None = None,
    ) -> None: ...

    def sample(self, batch_size: int, rng: np.random.Generator, *, n_batches: int | None = None) -> Batch: ...

    def sample_observations(self, n: int, rng: np.random.Generator) -> np.ndarray: ...

    def state_dict(self, *, newest: int | None = None) -> dict[str, np.ndarray]: ...

    def load_state_dict(self, state: dict[str, object]) -> None: ...


class ReplayBuffer:
    """Fixed-capacity FIFO replay memory with uniform sampling.

    Args:
        capacity: number of transitions kept; the oldest are overwritten.
        obs_shape: shape of one observation.
        obs_dtype: numpy dtype used to store observations (uint8 keeps pixel memory at one byte per value).
    """

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], obs_dtype: np.dtype | type = np.float32) -> None:
        self.capacity = int(capacity)
        self.obs = np.zeros((self.capacity, *obs_shape), dtype=obs_dtype)
        self.next_obs = np.zeros((self.capacity, *obs_shape), dtype=obs_dtype)
        self.actions = np.zeros(self.capacity, dtype=np.int64)
        self.rewards = np.zeros(self.capacity, dtype=np.float32)
        self.terminated = np.zeros(self.capacity, dtype=np.float32)
        self.position = 0
        self.size = 0

    def __len__(self) -> int:
        return self.size

    @property
    def nbytes(self) -> int:
        """Memory held by the stored arrays, in bytes."""
        return sum(a.nbytes for a in (self.obs, self.next_obs, self.actions, self.rewards, self.terminated))

    def add(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        *,
        done: np.ndarray | None = None,
    ) -> None:
        """Store one transition per env (leading dim = number of envs).

        ``done`` (episode ended, by termination or truncation) is not needed here: every transition keeps its
        own ``next_obs``.
        """
        n = len(actions)
        index = (self.position + np.arange(n)) % self.capacity
        self.obs[index] = obs
        self.actions[index] = actions
        self.rewards[index] = rewards
        self.next_obs[index] = next_obs
        self.terminated[index] = terminated
        self.position = (self.position + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator, *, n_batches: int | None = None) -> Batch:
        """Uniform sample with replacement; ``n_batches`` stacks independent batches on a leading dim."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        shape = (batch_size,) if n_batches is None else (n_batches, batch_size)
        return self.gather(rng.integers(0, self.size, size=shape))

    def gather(self, index: np.ndarray) -> Batch:
        """The transitions in slots ``index`` (any shape) as a Batch: what a caller that picks its own slots
        (e.g. a benchmark drawing only finished episodes) shares with :meth:`sample`."""
        return Batch(
            obs=torch.from_numpy(self.obs[index]),
            actions=torch.from_numpy(self.actions[index]),
            rewards=torch.from_numpy(self.rewards[index]),
            next_obs=torch.from_numpy(self.next_obs[index]),
            terminated=torch.from_numpy(self.terminated[index]),
        )

    def sample_observations(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` stored observations drawn uniformly (a copy), e.g. the probe states of the policy figure."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        return self.obs[rng.integers(0, self.size, size=n)]

    def state_dict(self, *, newest: int | None = None) -> dict[str, np.ndarray]:
        """The ``newest`` transitions (all by default) in insertion order, for checkpoints."""
        keep = self.size if newest is None else min(newest, self.size)
        index = (self.position - keep + np.arange(keep)) % self.capacity
        return {name: getattr(self, name)[index] for name in ("obs", "actions", "rewards", "next_obs", "terminated")}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Refill from :meth:`state_dict` (arrays may arrive as tensors), oldest first."""
        arrays = {k: np.asarray(v) for k, v in state.items()}
        self.position = self.size = 0
        if len(arrays["actions"]):
            self.add(arrays["obs"], arrays["actions"], arrays["rewards"], arrays["next_obs"], arrays["terminated"])
