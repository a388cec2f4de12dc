"""Replay memory for image observations that stores every frame once.

A stacked Atari observation (4 x 84 x 84) shares three frames with the one before it, and ``next_obs`` of a
transition is ``obs`` of the next one: storing both stacks per transition costs 8 frames where 1 is new. Here
each env appends to its own ring of frames (several envs step interleaved, so one ring per env keeps each
env's frames contiguous), and every stack is rebuilt by index:

- an episode's first observation writes all ``stack`` frames of its stack (whatever padding the env used, zeros
  or repeats of the first frame, is stored as it came, so the rebuilt stacks are the env's stacks exactly);
- every step writes one frame, the newest frame of ``next_obs`` (the true final observation when the episode
  ended: SAME_STEP autoreset hands it over in the same step), with the action, reward and termination that
  led to it;
- transition j (a frame written by a step) rebuilds ``obs`` from frames j-stack .. j-1 and ``next_obs`` from
  frames j-stack+1 .. j. It is sampled only while all of them are still in the ring.

Memory per transition is one frame plus 13 bytes, plus ``stack`` frames per episode (< 1% for Atari games).
With ``stack == 1`` (MinAtar) an observation is one frame, and the ring still halves the memory of a buffer
that stores ``obs`` and ``next_obs``. Episode ends come from ``done`` (terminated or truncated), which the
Trainer passes to :meth:`add`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from dqnmap_auto.agent.replay import Batch


class FrameReplayBuffer:
    """Per-env frame rings with uniform sampling over the transitions whose frames are all still stored.

    Args:
        capacity: frames kept over all envs (about one per transition), split evenly between the envs.
        obs_shape: shape of one observation: (stack, *frame_shape) when ``stack > 1``, else the frame's shape.
        n_envs: number of envs that add a transition at every :meth:`add`.
        stack: frames per observation, stacked on the leading axis.
        obs_dtype: dtype of the frames (uint8 for pixels: one byte per value).
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        *,
        n_envs: int,
        stack: int = 1,
        obs_dtype: np.dtype | type = np.uint8,
    ) -> None:
        if stack < 1 or (stack > 1 and (len(obs_shape) < 2 or obs_shape[0] != stack)):
            raise ValueError(f"observations of shape {obs_shape} do not stack {stack} frames on their first axis")
        self.stack = stack
        self.n_envs = n_envs
        self.obs_shape = tuple(obs_shape)
        self.frame_shape = self.obs_shape[1:] if stack > 1 else self.obs_shape
        self.slots = max(math.ceil(capacity / n_envs), stack + 1)  # frames per env
        self.frames = np.zeros((n_envs, self.slots, *self.frame_shape), dtype=obs_dtype)
        # Per frame: its observation's step in the episode (<= 0: frames of the first observation), and for
        # frames written by a step (episode_step >= 1) the transition that led to it.
        self.episode_step = np.full((n_envs, self.slots), -1, dtype=np.int32)
        self.actions = np.zeros((n_envs, self.slots), dtype=np.int32)
        self.rewards = np.zeros((n_envs, self.slots), dtype=np.float32)
        self.terminated = np.zeros((n_envs, self.slots), dtype=bool)
        self.written = np.zeros(n_envs, dtype=np.int64)  # frames ever written, per env
        self._transitions = np.zeros(n_envs, dtype=np.int64)  # frames in the ring with episode_step >= 1
        self._step = np.zeros(n_envs, dtype=np.int64)  # episode step of each env's newest observation
        self._starting = np.ones(n_envs, dtype=bool)  # the env's next obs starts an episode
        self._env_index = np.arange(n_envs)

    # -- writing --------------------------------------------------------------------------------------------
    def _append(
        self,
        env: int,
        frames: np.ndarray,
        steps: np.ndarray,
        actions: np.ndarray | None = None,
        rewards: np.ndarray | None = None,
        terminated: np.ndarray | None = None,
    ) -> None:
        """Append consecutive frames (at most ``slots``) to one env's ring."""
        slots = (self.written[env] + np.arange(len(frames))) % self.slots
        self._transitions[env] -= np.count_nonzero(self.episode_step[env, slots] >= 1)
        self.frames[env, slots] = frames
        self.episode_step[env, slots] = steps
        self.actions[env, slots] = 0 if actions is None else actions
        self.rewards[env, slots] = 0.0 if rewards is None else rewards
        self.terminated[env, slots] = False if terminated is None else terminated
        self._transitions[env] += np.count_nonzero(np.asarray(steps) >= 1)
        self.written[env] += len(frames)

    def _frames_of(self, obs: np.ndarray) -> np.ndarray:
        """The frames of one observation, oldest first: (stack, *frame_shape)."""
        return obs if self.stack > 1 else obs[None]

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
        """Store one transition per env; ``next_obs`` holds true final observations where ``done``.

        ``obs`` is read only for envs whose episode starts with this step (their first observation); ``done``
        (terminated or truncated) says which envs start a new episode at the next call.
        """
        if done is None:
            raise ValueError("FrameReplayBuffer.add needs done (terminated | truncated) to find episode starts")
        if self._starting.any():
            for env in np.flatnonzero(self._starting):
                self._append(int(env), self._frames_of(obs[env]), np.arange(1 - self.stack, 1))
                self._step[env] = 0
            self._starting[:] = False
        envs = self._env_index
        slots = self.written % self.slots
        self._transitions -= self.episode_step[envs, slots] >= 1
        self._step += 1
        self.frames[envs, slots] = next_obs[:, -1] if self.stack > 1 else next_obs
        self.episode_step[envs, slots] = self._step
        self.actions[envs, slots] = actions
        self.rewards[envs, slots] = rewards
        self.terminated[envs, slots] = terminated
        self._transitions += 1
        self.written += 1
        self._starting |= np.asarray(done, dtype=bool)

    # -- reading --------------------------------------------------------------------------------------------
    def _filled(self) -> np.ndarray:
        return np.minimum(self.written, self.slots)

    def __len__(self) -> int:
        """Transitions that can be sampled (all their frames still stored)."""
        total = 0
        for env, filled in enumerate(self._filled()):
            oldest = (self.written[env] - filled + np.arange(min(self.stack, filled))) % self.slots
            total += self._transitions[env] - np.count_nonzero(self.episode_step[env, oldest] >= 1)
        return int(total)

    @property
    def nbytes(self) -> int:
        """Memory held by the stored arrays, in bytes."""
        arrays = (self.frames, self.episode_step, self.actions, self.rewards, self.terminated)
        return sum(a.nbytes for a in arrays)

    def _draw(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(env, slot) of ``n`` transitions drawn uniformly with replacement among the sampleable ones.

        Draws over all stored frames and redraws the few that are not transitions (frames of first
        observations, and the oldest ``stack`` frames of a full ring, whose stacks lost frames): uniform over
        the valid ones, and deterministic for a given generator.
        """
        if len(self) == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        filled = self._filled()
        ends = np.cumsum(filled)
        env_out = np.empty(n, dtype=np.int64)
        slot_out = np.empty(n, dtype=np.int64)
        todo = np.arange(n)
        while todo.size:
            draw = rng.integers(0, ends[-1], size=todo.size)
            env = np.searchsorted(ends, draw, side="right")
            age = ends[env] - 1 - draw  # 0: the env's newest frame
            slot = (self.written[env] - 1 - age) % self.slots
            ok = (self.episode_step[env, slot] >= 1) & (age <= filled[env] - 1 - self.stack)
            env_out[todo[ok]], slot_out[todo[ok]] = env[ok], slot[ok]
            todo = todo[~ok]
        return env_out, slot_out

    def _windows(self, env: np.ndarray, slot: np.ndarray, length: int) -> np.ndarray:
        """The ``length`` frames ending at ``slot`` for each (env, slot): (n, length, *frame_shape)."""
        index = (slot[:, None] + np.arange(1 - length, 1)) % self.slots
        return self.frames[env[:, None], index]

    def sample(self, batch_size: int, rng: np.random.Generator, *, n_batches: int | None = None) -> Batch:
        """Uniform sample with replacement; ``n_batches`` stacks independent batches on a leading dim.

        The stack+1 frames of a transition are gathered once; ``obs`` and ``next_obs`` are views into them.
        """
        shape = (batch_size,) if n_batches is None else (n_batches, batch_size)
        env, slot = self._draw(math.prod(shape), rng)
        window = self._windows(env, slot, self.stack + 1)
        if self.stack > 1:
            obs, next_obs = window[:, :-1], window[:, 1:]
        else:
            obs, next_obs = window[:, 0], window[:, 1]
        obs, next_obs = obs.reshape(*shape, *self.obs_shape), next_obs.reshape(*shape, *self.obs_shape)  # views
        return Batch(
            obs=torch.from_numpy(obs),
            actions=torch.from_numpy(self.actions[env, slot].astype(np.int64).reshape(shape)),
            rewards=torch.from_numpy(self.rewards[env, slot].reshape(shape)),
            next_obs=torch.from_numpy(next_obs),
            terminated=torch.from_numpy(self.terminated[env, slot].astype(np.float32).reshape(shape)),
        )

    def sample_observations(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` observations (``obs`` of uniformly drawn transitions), e.g. the probe states of the policy figure."""
        env, slot = self._draw(n, rng)
        window = self._windows(env, (slot - 1) % self.slots, self.stack)
        return window if self.stack > 1 else window[:, 0]

    # -- checkpoints ----------------------------------------------------------------------------------------
    def state_dict(self, *, newest: int | None = None) -> dict[str, np.ndarray]:
        """Each env's frames, oldest first, enough for its newest ``ceil(newest / n_envs)`` transitions (all by
        default); the envs' frames are concatenated, ``env`` says whose each one is."""
        keep = None if newest is None else math.ceil(newest / self.n_envs)
        rows: list[tuple[int, np.ndarray]] = []
        for env, filled in enumerate(self._filled()):
            slots = (self.written[env] - filled + np.arange(filled)) % self.slots
            positions = np.flatnonzero(self.episode_step[env, slots] >= 1)
            positions = positions[positions >= self.stack]  # transitions whose frames are all stored
            if keep is not None:
                if keep == 0 or positions.size == 0:
                    continue
                slots = slots[max(positions[-min(keep, positions.size)] - self.stack, 0) :]
            rows.append((env, slots))
        if not rows:
            rows = [(0, np.zeros(0, dtype=np.int64))]
        env_index = np.concatenate([np.full(len(s), e, dtype=np.int64) for e, s in rows])
        pick = (env_index, np.concatenate([s for _, s in rows]).astype(np.int64))
        return {
            "env": env_index,
            "frames": self.frames[pick],
            "episode_step": self.episode_step[pick],
            "actions": self.actions[pick],
            "rewards": self.rewards[pick],
            "terminated": self.terminated[pick],
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Refill from :meth:`state_dict` (arrays may arrive as tensors). Every env's next :meth:`add` starts
        a new episode: the envs are reset after a resume."""
        arrays = {k: np.asarray(v) for k, v in state.items()}
        if arrays["frames"].shape[1:] != self.frame_shape:
            raise ValueError(f"checkpoint frames {arrays['frames'].shape[1:]}, this buffer {self.frame_shape}")
        self.written[:] = 0
        self._transitions[:] = 0
        self.episode_step[:] = -1
        self._step[:] = 0
        self._starting[:] = True
        for env in np.unique(arrays["env"]):
            if env >= self.n_envs:
                raise ValueError(f"checkpoint holds frames of env {env}, this buffer has {self.n_envs} envs")
            rows = np.flatnonzero(arrays["env"] == env)[-self.slots :]
            self._append(
                int(env),
                arrays["frames"][rows],
                arrays["episode_step"][rows],
                arrays["actions"][rows],
                arrays["rewards"][rows],
                arrays["terminated"][rows],
            )
