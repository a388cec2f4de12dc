"""The ring replay buffer: wrap-around, sampling shapes, dtypes."""

from __future__ import annotations

import numpy as np
import torch

from dqnmap_auto.agent.replay import ReplayBuffer


def test_ring_overwrites_oldest_and_tracks_size() -> None:
    buffer = ReplayBuffer(5, (2,))
    for i in range(7):
        obs = np.full((1, 2), i, dtype=np.float32)
        buffer.add(obs, np.array([i % 2]), np.array([float(i)]), obs + 1, np.array([i == 6]))
    assert len(buffer) == 5
    assert sorted(buffer.rewards.tolist()) == [2.0, 3.0, 4.0, 5.0, 6.0]
    assert buffer.position == 2


def test_multi_env_add_and_stacked_sampling() -> None:
    buffer = ReplayBuffer(100, (3,))
    rng = np.random.default_rng(0)
    for _ in range(10):
        obs = rng.normal(size=(4, 3)).astype(np.float32)
        buffer.add(obs, rng.integers(0, 2, 4), rng.normal(size=4), obs * 2, np.zeros(4))
    assert len(buffer) == 40
    batch = buffer.sample(8, rng, n_batches=5)
    assert batch.obs.shape == (5, 8, 3) and batch.actions.shape == (5, 8)
    assert batch.obs.dtype == torch.float32 and batch.actions.dtype == torch.int64
    torch.testing.assert_close(batch.next_obs, batch.obs * 2)  # transitions stay aligned
    single = batch[2]
    assert single.obs.shape == (8, 3)


def test_uint8_storage_keeps_one_byte_per_value() -> None:
    buffer = ReplayBuffer(1000, (4, 10, 10), np.uint8)
    assert buffer.obs.dtype == np.uint8
    assert buffer.obs.nbytes == 1000 * 400
    frame = np.full((1, 4, 10, 10), 255, dtype=np.uint8)
    buffer.add(frame, np.array([0]), np.array([1.0]), frame, np.array([0.0]))
    batch = buffer.sample(2, np.random.default_rng(0)).to("cpu", torch.float32)
    assert batch.obs.dtype == torch.uint8 and batch.rewards.dtype == torch.float32


def test_sampling_is_reproducible_with_the_same_generator() -> None:
    buffer = ReplayBuffer(50, (1,))
    for i in range(50):
        buffer.add(np.array([[i]]), np.array([0]), np.array([0.0]), np.array([[i]]), np.array([0.0]))
    a = buffer.sample(10, np.random.default_rng(7)).obs
    b = buffer.sample(10, np.random.default_rng(7)).obs
    assert torch.equal(a, b)
