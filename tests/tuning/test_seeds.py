"""The seeds of one trial checkpoint together, so a retry can always resume them from one step."""

from __future__ import annotations

from pathlib import Path

import pytest

from dqnmap_auto.callbacks import Callback, Record
from dqnmap_auto.trainer import Trainer
from dqnmap_auto.tuning.seeds import advance_together, common_resume_step, load_consistent, value_at
from tests.test_trainer import small_config


class CrashAt(Callback):
    """Kills the run (as a dead worker would) once training passes ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_record(self, record: Record) -> None:
        if record["step"] > self.step:
            raise KeyboardInterrupt


def test_a_crash_mid_chunk_leaves_checkpoints_that_agree(tmp_path: Path) -> None:
    paths = [tmp_path / f"seed-{i}.pt" for i in range(2)]
    trainers = [
        Trainer(small_config(None, seed=0), checkpoint_path=paths[0]),
        Trainer(small_config(None, seed=1), [CrashAt(1200)], checkpoint_path=paths[1]),
    ]
    for trainer in trainers:
        trainer.start()
    saved: dict[int, int] = {}
    with pytest.raises(KeyboardInterrupt):  # seed 1 dies between 1000 and 1500, after seed 0 trained to 1500
        advance_together(trainers, 1500, checkpoint_every=500, saved=saved)
    assert trainers[0].step == 1500  # seeds are trained in turn: seed 0 went past the last common checkpoint
    states, found = load_consistent(paths)
    assert states is not None, found
    assert [state["step"] for state in states] == [1000, 1000]
    for trainer in trainers:
        trainer.close()


def test_checkpoints_that_disagree_or_are_missing_are_refused(tmp_path: Path) -> None:
    paths = [tmp_path / f"seed-{i}.pt" for i in range(2)]
    trainers = [Trainer(small_config(None, seed=i), checkpoint_path=paths[i]) for i in range(2)]
    for trainer in trainers:
        trainer.start()
    trainers[0].train_until(500)
    trainers[0].save_checkpoint()
    assert load_consistent(paths) == (None, "a seed has no checkpoint")
    trainers[1].train_until(250)
    trainers[1].save_checkpoint()
    states, found = load_consistent(paths)
    assert states is None and "disagree (steps [500, 250])" in found
    for trainer in trainers:
        trainer.close()


def test_a_solved_seed_may_be_behind_the_others() -> None:
    # A solved seed stops checkpointing: it may be behind, while seeds still training must agree.
    assert common_resume_step([(20000, True), (40000, False)]) == 40000
    assert common_resume_step([(40000, False), (20000, True), (40000, False)]) == 40000
    assert common_resume_step([(20000, True), (30000, True)]) == 30000
    assert common_resume_step([(20000, False), (40000, False)]) is None
    assert common_resume_step([(40000, True), (20000, False)]) is None  # an unsolved seed behind: inconsistent


def test_the_value_of_an_evaluation_step_per_seed() -> None:
    history = [(500, 10.0), (1000, 20.0), (1500, 30.0)]
    assert [value_at(history, step, 500) for step in (500, 1000, 1500)] == [10.0, 20.0, 30.0]
    assert value_at(history, 2500, 500) == 30.0  # a seed that stopped at 1500 (solved) keeps its last value
    assert value_at([(1002, 7.0)], 1000, 500) == 7.0  # vector envs: evaluated a few steps past the mark
    assert value_at(history[1:], 500, 500) is None  # nothing evaluated yet in that interval
