"""MinAtar and Atari through the Trainer: self-tuning on CNNs, determinism, exact stacks from real envs, resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from dqnmap_auto.agent.frame_replay import FrameReplayBuffer
from dqnmap_auto.callbacks import RecordCollector
from dqnmap_auto.config import EnvConfig, TrainConfig, validate_train_config
from dqnmap_auto.envs import make_vector_env
from dqnmap_auto.trainer import Trainer, train
from tests.pixels.helpers import fill


def pixel_config(env_id: str, mode: str | None, *, steps: int, n_envs: int = 1, seed: int = 0) -> TrainConfig:
    """Small and quick: short episodes, small batches, learning after 100 steps, one greedy evaluation."""
    minatar = env_id.startswith("MinAtar/")
    return validate_train_config(
        {
            "env": {
                "id": env_id,
                "n_envs": n_envs,
                # ends greedy evaluation episodes quickly (MinAtar: 200 steps; Atari: 400 frames = 100 steps)
                "kwargs": {"max_episode_steps": 200} if minatar else {"max_num_frames_per_episode": 400},
            },
            "agent": {
                "batch_size": 32 if minatar else 8,
                "buffer_size": 5000,
                "learning_starts": 100,
                "train_freq": 4,
                "gradient_steps": 2 if minatar else 1,
                "target_update_interval": 100,
                "device": "cpu",
            },
            "training": {
                "total_steps": steps,
                "seed": seed,
                "eval_every": 0,
                "final_eval_episodes": 1,
                "log_every": 100,
            },
            "self_tuning": {"enabled": mode is not None, "mode": mode or "hd", "interval": 4, "hd_interval": 2},
        }
    )


@pytest.mark.parametrize("env_id", ["MinAtar/Breakout-v1", "ALE/Pong-v5"])
@pytest.mark.parametrize("mode", ["hd", "meta"])
def test_self_tuning_trains_from_pixels(env_id: str, mode: str) -> None:
    steps = 600 if env_id.startswith("MinAtar/") else 240
    collector = RecordCollector()
    config = pixel_config(env_id, mode, steps=steps, n_envs=2)
    if mode == "meta":  # gamma opted in: a short pixel run's TD errors sit inside delta, where delta's gradient is 0
        config.self_tuning.params = ["lr", "gamma", "huber_delta"]
    trainer = Trainer(config, [collector])
    result = trainer.run()
    assert isinstance(trainer.replay, FrameReplayBuffer) and len(trainer.replay) == steps
    assert result.steps == steps and np.isfinite(result.final_eval.mean)
    losses = collector.series("loss")[1]
    assert losses and all(np.isfinite(losses))
    assert result.hyperparams["lr"] != result.initial_hyperparams["lr"]  # the learning rate self-tuned
    if mode == "meta":
        assert any(r.get("hypergrad/gamma", 0.0) != 0.0 for r in collector.records)  # through the CNN


def test_same_seed_same_records() -> None:
    runs = []
    for seed in (0, 0, 1):
        collector = RecordCollector()
        result = train(pixel_config("MinAtar/Breakout-v1", "hd", steps=500, seed=seed), [collector])
        runs.append(([{k: v for k, v in r.items() if k != "sps"} for r in collector.records], result.final_eval))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [("MinAtar/Breakout-v1", {"max_episode_steps": 30}), ("ALE/Pong-v5", {"max_num_frames_per_episode": 120})],
)
def test_stacks_from_real_envs_come_back_exactly(env_id: str, kwargs: dict) -> None:
    """Two envs whose 30-step episodes end within the run: every sampled (obs, next_obs) pair is one the envs
    made, and the sample reaches transitions that ended an episode."""
    envs = _RewardIds(make_vector_env(EnvConfig(id=env_id, kwargs=kwargs), 2, training=True))
    shape = envs.single_observation_space.shape
    replay = FrameReplayBuffer(150, shape, n_envs=2, stack=4 if env_id.startswith("ALE/") else 1)
    truth = fill(replay, envs, 100)  # the rings (75 frames per env) wrap around
    assert envs.episode_ends >= 4
    made = {(o.tobytes(), a, n.tobytes(), t) for o, a, n, t in truth.values()}
    batch = replay.sample(400, np.random.default_rng(0))
    sampled = {
        (batch.obs[i].numpy().tobytes(), int(batch.actions[i]), batch.next_obs[i].numpy().tobytes(), bool(t))
        for i, t in enumerate(batch.terminated.tolist())
    }
    assert sampled <= made
    assert envs.last_step_ids & set(batch.rewards.tolist())  # episode ends were sampled too
    envs.close()


class _RewardIds:
    """A vector env whose rewards are unique transition ids (``fill`` keys its record by reward); it also
    counts episode ends and remembers the ids of the last steps of episodes."""

    def __init__(self, envs: gym.vector.VectorEnv) -> None:
        self.envs = envs
        self.action_space = envs.action_space
        self.single_observation_space = envs.single_observation_space
        self.count = 0
        self.episode_ends = 0
        self.last_step_ids: set[float] = set()

    def reset(self, **kwargs: Any) -> Any:
        return self.envs.reset(**kwargs)

    def step(self, actions: np.ndarray) -> Any:
        next_obs, _, terminated, truncated, infos = self.envs.step(actions)
        ids = np.arange(self.count, self.count + len(actions), dtype=np.float32)
        self.count += len(actions)
        done = terminated | truncated
        self.episode_ends += int(done.sum())
        self.last_step_ids |= {float(i) for i in ids[done]}
        return next_obs, ids, terminated, truncated, infos

    def close(self) -> None:
        self.envs.close()


def test_resume_restores_the_frame_replay(tmp_path: Path) -> None:
    config = pixel_config("MinAtar/Breakout-v1", "meta", steps=800, n_envs=2)
    config.training.checkpoint_every = 400
    path = tmp_path / "ckpt.pt"
    first = Trainer(config, checkpoint_path=path)
    first.start()
    first.train_until(400)
    second = Trainer(config)
    second.resume(path)
    assert len(second.replay) == len(first.replay) == 400
    saved, restored = first.replay.state_dict(), second.replay.state_dict()
    assert saved.keys() == restored.keys()
    for name in saved:
        np.testing.assert_array_equal(saved[name], restored[name])
    result = second.run()  # goes on from step 400 with new episodes
    assert result.steps == 800 and len(second.replay) == 800
    first.close()
