"""Env steps per second on CartPole-v1 with rl-zoo3's settings, everything side by side in one run.

    (a) this trainer, self-tuning off       (b) Stable-Baselines3 DQN, identical settings
    (c) this trainer, hd mode               (d) this trainer, meta mode (default interval)
    (e) the gradient steps alone: the same number of gradient steps as in (a), with no env, acting or
        logging, expressed as the env-steps/s bound they leave for any implementation.

Each variant runs ``--repeats`` times, interleaved (a b c d e a b c d e ...) so that load on this shared
machine hits all of them alike; each ratio is the median over rounds of the ratio within a round. Usage::

    python benchmarks/speed.py            # full: 20k env steps, 5 rounds
    python benchmarks/speed.py --quick    # 3k env steps, 1 repeat (smoke test)
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from _common import RESULTS, rl_zoo_cartpole, sb3_kwargs

from dqnmap_auto.trainer import Trainer


def run_trainer(mode: str | None, steps: int) -> float:
    trainer = Trainer(rl_zoo_cartpole(mode=mode, steps=steps))
    trainer.config.training.final_eval_episodes = 1
    started = time.perf_counter()
    trainer.run()
    return steps / (time.perf_counter() - started)


def run_sb3(steps: int) -> float:
    import gymnasium as gym
    from stable_baselines3 import DQN

    model = DQN("MlpPolicy", gym.make("CartPole-v1"), **sb3_kwargs(rl_zoo_cartpole(mode=None, steps=steps)))
    started = time.perf_counter()
    model.learn(total_timesteps=steps)
    return steps / (time.perf_counter() - started)


def gradient_steps_bound(steps: int) -> float:
    """Time only the training phases of (a): same phases, same gradient steps, no environment."""
    config = rl_zoo_cartpole(mode=None, steps=steps)
    trainer = Trainer(config)
    agent = config.agent
    obs, _ = trainer.envs.reset(seed=0)
    for _ in range(max(agent.learning_starts, agent.batch_size) + 1):  # fill replay with random play
        actions = trainer.envs.action_space.sample()
        next_obs, rewards, terminated, _, _ = trainer.envs.step(actions)
        trainer.replay.add(obs, actions, rewards, next_obs, terminated)
        obs = next_obs
    n_phases = (steps - agent.learning_starts) // agent.train_freq
    started = time.perf_counter()
    for _ in range(n_phases):
        trainer._train_phase()
    elapsed = time.perf_counter() - started
    trainer.close()
    return steps / elapsed


def paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median over rounds of the ratio within a round: load that hits one round hits both sides of it."""
    return statistics.median(x / y for x, y in zip(numerator, denominator, strict=True))


def speed_report(samples: dict[str, list[float]], *, steps: int) -> list[str]:
    """Markdown: every round's figures, the medians, and the paired ratios against the targets."""
    a, b, c, d, e = samples.values()
    ratios = [
        ("a/b (target >= 1.5)", paired_ratio(a, b)),
        ("c/a (target >= 0.95)", paired_ratio(c, a)),
        ("d/a (target >= 0.75)", paired_ratio(d, a)),
        ("a/e (share of the bound)", paired_ratio(a, e)),
    ]
    rounds = len(a)
    lines = [
        f"# Speed: CartPole-v1, rl-zoo3 settings, {steps} env steps, {rounds} interleaved rounds, 1 torch thread",
        "",
        "| variant | median env steps/s | every round |",
        "|---|---|---|",
    ]
    for name, values in samples.items():
        lines.append(f"| {name} | {statistics.median(values):.0f} | {', '.join(f'{v:.0f}' for v in values)} |")
    lines += ["", "| ratio (median of the per-round ratios) | value |", "|---|---|"]
    lines += [f"| {name} | {value:.2f} |" for name, value in ratios]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3k steps, 1 repeat")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    steps = args.steps or (3_000 if args.quick else 20_000)
    repeats = args.repeats or (1 if args.quick else 5)
    torch.set_num_threads(1)

    variants: dict[str, Callable[[], float]] = {
        "a: dqnmap-auto, fixed": lambda: run_trainer(None, steps),
        "b: stable-baselines3": lambda: run_sb3(steps),
        "c: dqnmap-auto, hd": lambda: run_trainer("hd", steps),
        "d: dqnmap-auto, meta": lambda: run_trainer("meta", steps),
        "e: gradient steps alone": lambda: gradient_steps_bound(steps),
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for repeat in range(repeats):
        for name, run in variants.items():
            samples[name].append(run())
            print(f"[{repeat + 1}/{repeats}] {name}: {samples[name][-1]:.0f} env steps/s", flush=True)
    report_lines = speed_report(samples, steps=steps)
    report = "\n".join(report_lines) + "\n"
    print(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / ("speed-quick.md" if args.quick else "speed.md")).write_text(report, encoding="utf-8")


if __name__ == "__main__":
    main()
