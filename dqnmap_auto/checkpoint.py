"""Atomic, safely loadable training checkpoints.

A checkpoint holds everything a Trainer needs to go on: online and target networks, the optimizer, the
self-tuning state (z, meta-optimizer, hd direction), step counters, the evaluation history, the RNG states
(numpy, torch, Python) and the replay buffer (its newest ``training.checkpoint_replay`` transitions: a
documented bound, all of them by default). The environments are not serialisable: on resume they are reset
with a seed derived from the step, so the episode in progress at the checkpoint is lost.

Writes go to a temporary file in the same directory, are fsynced, then renamed over the previous checkpoint:
a crash while writing leaves the previous one intact. Loading uses ``torch.load(weights_only=True)``; numpy
arrays travel as tensors for that reason.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch


def to_safe(value: Any) -> Any:
    """numpy arrays -> tensors, recursively, so that ``weights_only`` loading accepts the checkpoint."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, dict):
        return {k: to_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(to_safe(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def save_atomic(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` to ``path`` so that readers see either the old or the new file, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(to_safe(state), file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def load(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_atomic` (``weights_only=True``: no pickled code runs)."""
    return torch.load(path, map_location="cpu", weights_only=True)
