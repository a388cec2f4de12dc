"""Shared fixtures: small deterministic batches and agents in float64."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from dqnmap_auto.agent.replay import Batch
from tests.servers.postgres import create_database, postgres_available, postgres_server


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


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """One PostgreSQL server on loopback for the session (skipped locally without PostgreSQL; CI has it)."""
    if not postgres_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed: .ci/run installs it")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    with postgres_server() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server_url: str) -> str:
    """A fresh, empty database on the session's PostgreSQL server."""
    return create_database(postgres_server_url)
