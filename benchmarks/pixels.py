"""DQN from pixels on the CPU: env steps/s with training, and replay memory, for MinAtar Breakout and Atari Pong.

Speed: the base configs of ``studies/minatar-breakout.yaml`` and ``studies/atari-pong.yaml`` (MinAtar CNN,
Nature-DQN CNN) on ``device: cpu`` with a short budget, learning from early on; self-tuning off (fixed), hd and
meta. Timed from the first step to the last (environment, acting, replay and gradient steps; no evaluation).

Memory: a frame replay filled to capacity by random play (random-play episodes are short, so the per-episode
overhead is at its largest), bytes per stored transition, against one frame and against a buffer that stores
``obs`` and ``next_obs`` per transition; the 1M-transition projection is bytes per transition x 1e6. Usage::

    python benchmarks/pixels.py                # full: MinAtar 20k steps, Pong 4k steps, 20k-frame replays
    python benchmarks/pixels.py --repeats 2    # two interleaved rounds, medians
    python benchmarks/pixels.py --quick        # MinAtar 4k steps, Pong 800 steps, 4k-frame replays
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch
from _common import RESULTS, ROOT

from dqnmap_auto.agent.build import build_replay
from dqnmap_auto.agent.frame_replay import FrameReplayBuffer
from dqnmap_auto.agent.replay import ReplayBuffer
from dqnmap_auto.config import load_train_config
from dqnmap_auto.envs import final_observations, make_vector_env
from dqnmap_auto.pixel_envs import frames_per_observation
from dqnmap_auto.trainer import Trainer

SPECS = {"MinAtar/Breakout-v1": "minatar-breakout.yaml", "ALE/Pong-v5": "atari-pong.yaml"}
MODES: dict[str, str | None] = {"fixed": None, "hd": "hd", "meta": "meta"}


@dataclass(frozen=True)
class Sizes:
    steps: dict[str, int]
    learning_starts: dict[str, int]
    replay_frames: int


QUICK = Sizes(
    {"MinAtar/Breakout-v1": 4_000, "ALE/Pong-v5": 800}, {"MinAtar/Breakout-v1": 1000, "ALE/Pong-v5": 200}, 4_000
)
FULL = Sizes(
    {"MinAtar/Breakout-v1": 20_000, "ALE/Pong-v5": 4_000}, {"MinAtar/Breakout-v1": 5000, "ALE/Pong-v5": 1000}, 20_000
)


@dataclass(frozen=True)
class Speed:
    wall: float  # env steps per second of wall-clock time
    cpu: float  # env steps per second of this process's CPU time (less sensitive to other load on the machine)
    gradient_steps: int


def steps_per_second(env_id: str, mode: str | None, *, steps: int, learning_starts: int) -> Speed:
    """Env steps/s of the spec's base config on the CPU, and the gradient steps it took."""
    overrides = [
        f"training.total_steps={steps}",
        f"agent.learning_starts={learning_starts}",
        "agent.buffer_size=20000",
        "agent.device=cpu",
        "training.eval_every=0",
        "training.final_eval_episodes=1",
        f"self_tuning.enabled={mode is not None}",
        f"self_tuning.mode={mode or 'hd'}",
    ]
    trainer = Trainer(load_train_config(ROOT / "studies" / SPECS[env_id], overrides=overrides))
    trainer.start()
    started, cpu_started = time.perf_counter(), time.process_time()
    trainer.train_until(steps)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    trainer.close()
    train_freq = trainer.config.agent.train_freq  # one env: phases at multiples of train_freq after the start
    phases = steps // train_freq - learning_starts // train_freq
    return Speed(steps / elapsed, steps / cpu, phases * trainer.config.agent.gradient_steps)


def replay_memory(env_id: str, capacity: int) -> dict[str, float]:
    """Fill a frame replay of ``capacity`` frames by random play; bytes per stored transition and references."""
    config = load_train_config(ROOT / "studies" / SPECS[env_id]).env
    envs = make_vector_env(config, 1, training=True)
    space = envs.single_observation_space
    replay = build_replay(capacity, space, n_envs=1, frame_stack=frames_per_observation(config))
    assert isinstance(replay, FrameReplayBuffer)
    obs, _ = envs.reset(seed=0)
    envs.action_space.seed(0)
    episodes = 0
    while replay.written[0] < replay.slots + replay.stack:
        actions = envs.action_space.sample()
        next_obs, rewards, terminated, truncated, infos = envs.step(actions)
        done = terminated | truncated
        replay.add(obs, actions, rewards, final_observations(next_obs, done, infos), terminated, done=done)
        episodes += int(done.sum())
        obs = next_obs
    envs.close()
    per_transition = replay.nbytes / len(replay)
    return {
        "frame": float(math.prod(replay.frame_shape)),
        "per_transition": per_transition,
        "naive": float(ReplayBuffer(1, tuple(space.shape or ()), np.uint8).nbytes),
        "transitions": float(len(replay)),
        "episodes": float(episodes),
    }


def report(speeds: dict[str, dict[str, list[Speed]]], memory: dict[str, dict[str, float]], sizes: Sizes) -> str:
    rounds = len(next(iter(next(iter(speeds.values())).values())))
    lines = [
        f"# Pixels: MinAtar Breakout and Atari Pong on the CPU ({os.cpu_count()}-core {platform.machine()} CPU, "
        "shared; 1 torch thread; no GPU)",
        "",
        "Env steps/s with training (env, acting, replay, gradient steps; no evaluation), base configs of the specs "
        f"on `device: cpu`, {rounds} interleaved round(s); medians, per wall-clock second and per CPU second of "
        "the process (the CPU figure is less sensitive to other load on the machine):",
        "",
        "| env | env steps | learning from | gradient steps | self-tuning | env steps/s (wall) | every round | "
        "env steps per CPU s | vs fixed (CPU) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for env_id, by_mode in speeds.items():
        fixed_cpu = statistics.median(s.cpu for s in by_mode["fixed"])
        for mode, runs in by_mode.items():
            cpu = statistics.median(s.cpu for s in runs)
            lines.append(
                f"| {env_id} | {sizes.steps[env_id]} | {sizes.learning_starts[env_id]} | {runs[0].gradient_steps} | "
                f"{mode} | {statistics.median(s.wall for s in runs):.0f} | {', '.join(f'{s.wall:.0f}' for s in runs)} "
                f"| {cpu:.0f} | {cpu / fixed_cpu:.2f} |"
            )
    lines += [
        "",
        f"Replay memory, frame replay of {sizes.replay_frames} frames filled by random play:",
        "",
        "| env | one frame (B) | bytes / transition | x frame | obs + next_obs layout (B) | 1M transitions |",
        "|---|---|---|---|---|---|",
    ]
    for env_id, m in memory.items():
        lines.append(
            f"| {env_id} | {m['frame']:.0f} | {m['per_transition']:.0f} | {m['per_transition'] / m['frame']:.3f} | "
            f"{m['naive']:.0f} | {m['per_transition'] * 1e6 / 1e9:.2f} GB (obs + next_obs: "
            f"{m['naive'] * 1e6 / 1e9:.1f} GB) |"
        )
    lines += [
        "",
        "Random play: "
        + ", ".join(
            f"{e} {m['episodes']:.0f} episodes in {m['transitions']:.0f} transitions" for e, m in memory.items()
        )
        + ".",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    parser.add_argument("--repeats", type=int, default=1, help="rounds of all variants, interleaved")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    torch.set_num_threads(1)
    memory = {env_id: replay_memory(env_id, sizes.replay_frames) for env_id in SPECS}
    for env_id, m in memory.items():
        print(f"{env_id}: {m['per_transition']:.0f} bytes per transition ({m['frame']:.0f} per frame)", flush=True)
    speeds: dict[str, dict[str, list[Speed]]] = {env_id: {name: [] for name in MODES} for env_id in SPECS}
    for repeat in range(args.repeats):
        for env_id in SPECS:
            for name, mode in MODES.items():
                speed = steps_per_second(
                    env_id, mode, steps=sizes.steps[env_id], learning_starts=sizes.learning_starts[env_id]
                )
                speeds[env_id][name].append(speed)
                print(f"[{repeat + 1}/{args.repeats}] {env_id} {name}: {speed.wall:.0f} env steps/s", flush=True)
    text = report(speeds, memory, sizes)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pixels.md").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
