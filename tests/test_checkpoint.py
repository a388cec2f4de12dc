"""Checkpoints: everything restored, atomic writes, resume continues from the saved step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dqnmap_auto import checkpoint
from dqnmap_auto.callbacks import RecordCollector
from dqnmap_auto.trainer import Trainer
from tests.test_trainer import small_config


@pytest.mark.parametrize("mode", ["hd", "meta"])
def test_checkpoint_restores_the_whole_learner(tmp_path: Path, mode: str) -> None:
    config = small_config(mode, steps=3000)
    config.training.checkpoint_every = 1000
    path = tmp_path / "ckpt.pt"
    first = Trainer(config, checkpoint_path=path)
    first.start()
    first.train_until(1500)  # checkpoint written at step 1000, then the run goes on to 1500
    saved = checkpoint.load(path)
    assert saved["step"] == 1000
    first.save_checkpoint(path)  # now at 1500: compare a fresh Trainer resumed from it with `first`
    second = Trainer(config)
    second.resume(path)
    assert second.step == first.step == 1500 and second.resumed_from_step == 1500
    for a, b in zip(first.agent.params, second.agent.params, strict=True):
        assert torch.equal(a, b)
    for a, b in zip(first.agent.target_net.parameters(), second.agent.target_net.parameters(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(first.tuner.space.z, second.tuner.space.z)
    assert second.agent.lr == first.agent.lr
    assert len(second.replay) == len(first.replay)
    np.testing.assert_array_equal(
        np.sort(second.replay.rewards[: len(second.replay)]), np.sort(first.replay.rewards[: len(first.replay)])
    )
    assert second.rng.integers(1 << 30) == first.rng.integers(1 << 30)
    assert second.eval_history == first.eval_history
    first.close()
    second.close()


def test_resumed_run_goes_on_from_the_checkpoint(tmp_path: Path) -> None:
    config = small_config("meta", steps=2500)
    config.training.checkpoint_every = 1000
    path = tmp_path / "ckpt.pt"
    crashed = Trainer(config, checkpoint_path=path)
    crashed.start()
    crashed.train_until(1700)  # "killed" here: steps 1000..1700 are lost
    crashed.close()
    collector = RecordCollector()
    resumed = Trainer(config, [collector], checkpoint_path=path)
    resumed.resume(path)
    result = resumed.run()
    assert result.steps == 2500
    assert min(r["step"] for r in collector.records) > 1000  # nothing before the checkpoint ran again
    assert [s for s, _ in result.eval_history] == [1000, 2000, 2500]


def test_a_crash_while_writing_leaves_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ckpt.pt"
    checkpoint.save_atomic({"step": 1, "weights": np.arange(3.0)}, path)

    def torn_write(obj: object, file: object) -> None:
        file.write(b"partial")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", torn_write)
    with pytest.raises(OSError):
        checkpoint.save_atomic({"step": 2}, path)
    monkeypatch.undo()
    state = checkpoint.load(path)
    assert state["step"] == 1 and torch.equal(state["weights"], torch.arange(3.0, dtype=torch.float64))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temporary file left behind
