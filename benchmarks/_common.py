"""Helpers shared by the benchmark scripts: the rl-zoo3 settings as a TrainConfig and as SB3 kwargs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dqnmap_auto.config import TrainConfig, load_train_config

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"


def rl_zoo_cartpole(*, mode: str | None, steps: int, seed: int = 0) -> TrainConfig:
    """studies/cartpole.yaml (rl-zoo3's CartPole row) with self-tuning ``mode`` (None: off)."""
    overrides = [f"training.total_steps={steps}", f"training.seed={seed}", "training.eval_every=0"]
    overrides += ["self_tuning.enabled=false"] if mode is None else [f"self_tuning.mode={mode}"]
    return load_train_config(ROOT / "studies" / "cartpole.yaml", overrides=overrides)


def sb3_kwargs(config: TrainConfig) -> dict[str, Any]:
    """Stable-Baselines3 DQN arguments equal to ``config``'s agent settings."""
    agent = config.agent
    return {
        "learning_rate": agent.lr,
        "batch_size": agent.batch_size,
        "buffer_size": agent.buffer_size,
        "learning_starts": agent.learning_starts,
        "gamma": agent.gamma,
        "target_update_interval": agent.target_update_interval,
        "train_freq": agent.train_freq,
        "gradient_steps": agent.gradient_steps,
        "exploration_fraction": agent.exploration_fraction,
        "exploration_initial_eps": agent.exploration_initial_eps,
        "exploration_final_eps": agent.exploration_final_eps,
        "tau": agent.tau,
        "max_grad_norm": agent.max_grad_norm,
        "policy_kwargs": {"net_arch": list(agent.net_arch)},
        "seed": config.training.seed,
        "verbose": 0,
        "device": "cpu",
    }
