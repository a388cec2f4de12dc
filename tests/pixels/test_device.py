"""Device handling: auto picks CUDA only when present; a training phase moves its data once, as uint8."""

from __future__ import annotations

import pytest
import torch

from dqnmap_auto.agent.replay import Batch
from dqnmap_auto.errors import ConfigError
from dqnmap_auto.trainer import Trainer, resolve_device
from tests.pixels.test_pixel_training import pixel_config


def test_auto_follows_cuda_availability(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match=r"agent\.device: cuda requested"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


@pytest.mark.parametrize("mode", ["hd", "meta"])
def test_a_training_phase_moves_its_batches_once_as_uint8(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    moves: list[Batch] = []
    original = Batch.to

    def spy(self: Batch, device: torch.device | str, dtype: torch.dtype | None = None) -> Batch:
        moves.append(self)
        return original(self, device, dtype)

    monkeypatch.setattr(Batch, "to", spy)
    config = pixel_config("MinAtar/Breakout-v1", mode, steps=400)
    trainer = Trainer(config)
    phases = 0
    original_phase = trainer._train_phase

    def counted_phase() -> tuple[torch.Tensor, torch.Tensor, int]:
        nonlocal phases
        phases += 1
        return original_phase()

    trainer._train_phase = counted_phase  # type: ignore[method-assign]
    trainer.start()
    trainer.train_until(400)
    trainer.close()
    assert phases == (400 - 100) // 4 and len(moves) == phases  # meta's outer batches travel with the phase
    assert all(batch.obs.dtype == torch.uint8 for batch in moves)
    # a meta-update every 4 gradient steps, 2 steps a phase (1 in 2 phases), each with an outer batch and, under
    # the held lookahead, a fresh batch for its second inner step
    extra = 2 if mode == "meta" else 0
    assert sum(batch.obs.shape[0] for batch in moves) == phases * 2 + extra * (phases + 1) // 2
