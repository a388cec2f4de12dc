"""Deterministic greedy evaluation on a separate vector env: one episode per sub-env, all run in lockstep.

Running the n evaluation episodes side by side batches the Q-network forward passes (one per time step for
all episodes), and every evaluation replays the same episode seeds so successive scores are comparable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from dqnmap_auto.config import EnvConfig
from dqnmap_auto.envs import evaluation_seeds, make_vector_env


@dataclass(frozen=True)
class EvalResult:
    mean: float
    std: float
    returns: list[float]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class Evaluator:
    """Evaluates a greedy policy on ``n_episodes`` fixed-seed episodes of ``config.id``."""

    def __init__(self, config: EnvConfig, *, seed: int, n_episodes: int) -> None:
        self.seeds = evaluation_seeds(seed, n_episodes)
        self.envs = make_vector_env(config, n_episodes, training=False)

    def __call__(self, policy: Callable[[np.ndarray], np.ndarray]) -> EvalResult:
        obs, _ = self.envs.reset(seed=self.seeds)  # type: ignore[arg-type]  # a list seeds each sub-env
        n = len(self.seeds)
        returns = np.zeros(n, dtype=np.float64)
        running = np.ones(n, dtype=bool)
        while running.any():
            obs, rewards, terminated, truncated, _ = self.envs.step(policy(obs))
            returns += np.where(running, rewards, 0.0)
            running &= ~(terminated | truncated)
        return EvalResult(float(returns.mean()), float(returns.std()), returns.tolist())

    def close(self) -> None:
        self.envs.close()
