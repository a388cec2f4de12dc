"""The frame replay: sampled stacks are exactly the env's stacks, one frame per transition, checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dqnmap_auto import checkpoint
from dqnmap_auto.agent.frame_replay import FrameReplayBuffer
from dqnmap_auto.agent.replay import Batch, ReplayBuffer
from dqnmap_auto.config import EnvConfig
from dqnmap_auto.envs import make_vector_env
from tests.pixels.helpers import FRAME, fill, named_frames_envs


def assert_batch_is_real(batch: Batch, truth: dict) -> set[float]:
    """Every sampled transition equals the env's transition with the same id; returns the ids seen."""
    seen = set()
    flat = Batch(
        batch.obs.flatten(0, -1 - len(truth_shape(truth))),
        batch.actions.flatten(),
        batch.rewards.flatten(),
        batch.next_obs.flatten(0, -1 - len(truth_shape(truth))),
        batch.terminated.flatten(),
    )
    for i, reward in enumerate(flat.rewards.tolist()):
        obs, action, next_obs, terminated = truth[reward]
        np.testing.assert_array_equal(flat.obs[i].numpy(), obs)
        np.testing.assert_array_equal(flat.next_obs[i].numpy(), next_obs)
        assert int(flat.actions[i]) == action and bool(flat.terminated[i]) == terminated
        seen.add(reward)
    return seen


def truth_shape(truth: dict) -> tuple[int, ...]:
    return next(iter(truth.values()))[0].shape


@pytest.mark.parametrize("padding", ["reset", "zero"])
@pytest.mark.parametrize("n_envs", [1, 2])
def test_sampled_stacks_are_the_env_stacks_across_episode_ends_and_wraparound(n_envs: int, padding: str) -> None:
    stack = 4
    replay = FrameReplayBuffer(60, (stack, *FRAME), n_envs=n_envs, stack=stack)
    truth = fill(replay, named_frames_envs(n_envs, stack, padding), 200)  # many short episodes, ring wraps
    assert replay.written.min() > replay.slots  # the rings did wrap around
    batch = replay.sample(64, np.random.default_rng(0), n_batches=40)
    assert batch.obs.shape == (40, 64, stack, *FRAME) and batch.obs.dtype == torch.uint8
    assert batch.actions.dtype == torch.int64 and batch.terminated.dtype == torch.float32
    seen = assert_batch_is_real(batch, truth)
    # uniform over what is stored: 2560 draws reach every sampleable transition, and only recent ones
    assert len(seen) == len(replay)
    newest = {env: max(r for r in truth if int(r) // 1_000_000 == env) for env in range(n_envs)}
    assert all(newest[int(r) // 1_000_000] - r < replay.slots for r in seen)
    assert any(truth[r][3] for r in seen) and any(not truth[r][3] for r in seen)  # terminal ones included


def test_unstacked_observations_are_stored_once() -> None:
    replay = FrameReplayBuffer(50, FRAME, n_envs=2, stack=1)
    truth = fill(replay, named_frames_envs(2, stack=1), 120)
    seen = assert_batch_is_real(replay.sample(500, np.random.default_rng(1)), truth)
    assert len(seen) == len(replay)
    obs = replay.sample_observations(7, np.random.default_rng(2))
    assert obs.shape == (7, *FRAME) and obs.dtype == np.uint8
    every_obs = {o.tobytes() for o, *_ in truth.values()}
    assert all(o.tobytes() in every_obs for o in obs)


def test_bytes_per_transition_are_about_one_frame() -> None:
    """Real Atari frames (Pong, 4 stacked 84x84 frames, 100-step episodes, 2 envs), buffer filled past capacity."""
    envs = make_vector_env(EnvConfig(id="ALE/Pong-v5", kwargs={"max_num_frames_per_episode": 400}), 2, training=True)
    replay = FrameReplayBuffer(400, envs.single_observation_space.shape, n_envs=2, stack=4)
    fill(replay, envs, 260)
    envs.close()
    assert replay.written.min() > replay.slots  # full: the per-episode frames are in the figure
    per_transition = replay.nbytes / len(replay)
    assert per_transition < 1.2 * 84 * 84
    # a buffer storing obs and next_obs stacks per transition holds 8 frames each
    assert ReplayBuffer(1, (4, 84, 84), np.uint8).nbytes > 7.5 * per_transition


def test_empty_buffer_and_missing_done_are_errors() -> None:
    replay = FrameReplayBuffer(10, (2, *FRAME), n_envs=1, stack=2)
    with pytest.raises(ValueError, match="empty"):
        replay.sample(4, np.random.default_rng(0))
    frames = np.zeros((1, 2, *FRAME), np.uint8)
    with pytest.raises(ValueError, match="done"):
        replay.add(frames, np.zeros(1, int), np.zeros(1), frames, np.zeros(1))
    with pytest.raises(ValueError, match="stack"):
        FrameReplayBuffer(10, (3, *FRAME), n_envs=1, stack=2)


@pytest.mark.parametrize("newest", [None, 30])
def test_checkpoint_round_trip_keeps_the_transitions_and_goes_on(tmp_path: Path, newest: int | None) -> None:
    stack = 3
    replay = FrameReplayBuffer(80, (stack, *FRAME), n_envs=2, stack=stack)
    envs = named_frames_envs(2, stack)
    truth = fill(replay, envs, 150)
    checkpoint.save_atomic({"replay": replay.state_dict(newest=newest)}, tmp_path / "ckpt.pt")
    restored = FrameReplayBuffer(80, (stack, *FRAME), n_envs=2, stack=stack)
    restored.load_state_dict(checkpoint.load(tmp_path / "ckpt.pt")["replay"])
    before = assert_batch_is_real(replay.sample(1000, np.random.default_rng(0)), truth)
    after = assert_batch_is_real(restored.sample(1000, np.random.default_rng(0)), truth)
    if newest is None:
        assert after == before and len(restored) == len(replay)
    else:  # the newest 15 transitions of each env
        assert len(restored) == 30 and after <= before
        for env in range(2):
            ids = sorted(r for r in before if int(r) // 1_000_000 == env)
            assert sorted(r for r in after if int(r) // 1_000_000 == env) == ids[-15:]
    # after a resume the envs start new episodes; the restored buffer stays exact
    truth.update(fill(restored, envs, 40, seed=5))
    assert_batch_is_real(restored.sample(500, np.random.default_rng(3)), truth)
