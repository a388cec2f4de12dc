"""Shared fixtures: small deterministic batches and agents in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dqnmap_auto.agent.replay import Batch


def random_batch(
    rng: np.random.Generator,
    *,
    batch_size: int = 32,
    obs_dim: int = 4,
    n_actions: int = 3,
    dtype: torch.dtype = torch.float64,
) -> Batch:
    """A batch with some terminal transitions and rewards of both signs."""
    return Batch(
        obs=torch.as_tensor(rng.normal(size=(batch_size, obs_dim)), dtype=dtype),
        actions=torch.as_tensor(rng.integers(0, n_actions, size=batch_size), dtype=torch.int64),
        rewards=torch.as_tensor(rng.normal(size=batch_size), dtype=dtype),
        next_obs=torch.as_tensor(rng.normal(size=(batch_size, obs_dim)), dtype=dtype),
        terminated=torch.as_tensor(rng.random(batch_size) < 0.2, dtype=dtype),
    )


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
