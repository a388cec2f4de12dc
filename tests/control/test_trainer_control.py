"""Commands applied to a Trainer in-process: at phase boundaries, within bounds, held to the end, stopped with a
value, kept across a checkpoint; and the polling clock."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from dqnmap_auto.callbacks import RecordCollector
from dqnmap_auto.checkpoint import load as load_checkpoint
from dqnmap_auto.config import TrainConfig
from dqnmap_auto.control import Controller, MemoryChannel
from dqnmap_auto.control.rules import PublishedSpace
from dqnmap_auto.trainer import Trainer
from tests.test_trainer import small_config


def controlled(config: TrainConfig) -> tuple[Trainer, MemoryChannel, RecordCollector]:
    channel, collector = MemoryChannel(), RecordCollector()
    trainer = Trainer(config, [collector, Controller(channel, interval=0.0).callback()])
    return trainer, channel, collector


def control_records(collector: RecordCollector) -> list[dict]:
    return [r for r in collector.records if "control/status" in r]


def test_set_applies_at_the_next_phase_and_self_tuning_goes_on_from_it() -> None:
    config = small_config("meta", steps=1500)
    trainer, channel, collector = controlled(config)
    trainer.start()
    trainer.train_until(1000)
    sent_at = trainer.step
    command = channel.send("set lr=4e-4 gamma=0.97")
    trainer.train_until(1500)
    (record,) = control_records(collector)
    phase = config.agent.train_freq * config.env.n_envs
    assert record["control/status"] == "applied" and record["control/id"] == command.id
    assert sent_at < record["step"] <= sent_at + phase and record["step"] % phase == 0  # the next phase boundary
    assert record["hp/lr"] == pytest.approx(4e-4, rel=1e-6) and record["control/gamma"] == pytest.approx(0.97)
    assert re.search(r"\blr [0-9.e-]+ -> 0\.0004\b", record["control/detail"]), record["control/detail"]  # old -> new
    after = [r for r in collector.records if "sps" in r and r["step"] > record["step"]]
    lrs, gammas = [r["hp/lr"] for r in after], [r["hp/gamma"] for r in after]
    assert lrs[0] != pytest.approx(4e-4, rel=1e-9) and 4e-4 / 3 < lrs[0] < 4e-4 * 3  # moved on from the new value
    assert abs(gammas[0] - 0.97) < 0.01  # from 0.97, not from where gamma was
    assert channel.acks[command.id]["status"] == "applied"
    trainer.finish()


def test_out_of_bounds_and_untuned_freezes_are_rejected_whole() -> None:
    config = small_config("hd", steps=1200)  # hd mode tunes lr only: gamma is fixed
    trainer, channel, collector = controlled(config)
    trainer.start()
    trainer.train_until(600)
    before = trainer.tuner.space.current()
    channel.send("set lr=0.5 gamma=0.95")  # lr above its bound: gamma must not change either
    channel.send("freeze gamma")
    channel.send("set gamma=1.5")
    trainer.train_until(700)
    rejected = control_records(collector)
    assert [r["control/status"] for r in rejected] == ["rejected"] * 3
    assert "lr=0.5 is outside its self-tuning bounds [1e-05, 0.1]" in rejected[0]["control/detail"]
    assert "gamma does not self-tune in this run" in rejected[1]["control/detail"]
    assert "gamma=1.5: Input should be less than 1" in rejected[2]["control/detail"]
    assert trainer.tuner.space.current()["gamma"] == before["gamma"]
    channel.send("set gamma=0.95")  # a fixed value may be set within its config constraints
    trainer.train_until(800)
    assert trainer.tuner.gamma == pytest.approx(0.95) and control_records(collector)[-1]["control/applied"] == 1.0
    trainer.finish()


def test_freeze_holds_to_the_end_while_the_hypergradient_is_still_logged() -> None:
    config = small_config("meta", steps=1800)
    trainer, channel, collector = controlled(config)
    trainer.start()
    trainer.train_until(700)
    channel.send("freeze huber_delta")
    channel.send("freeze epsilon")
    trainer.train_until(1800)
    trainer.finish()
    frozen_at = control_records(collector)[0]["step"]
    later = [r for r in collector.records if "sps" in r and r["step"] > frozen_at]
    assert len({r["hp/huber_delta"] for r in later}) == 1 and len({r["epsilon"] for r in later}) == 1
    assert len({r["hypergrad/huber_delta"] for r in later}) > 1  # still computed, and logged
    assert len({r["hp/lr"] for r in later}) > 1  # the others still self-tune
    assert trainer.tuner.space.held() == ["huber_delta"]


def test_stop_ends_the_run_with_a_final_evaluation() -> None:
    config = small_config("hd", steps=4000)
    trainer, channel, collector = controlled(config)
    trainer.start()
    trainer.train_until(1200)
    channel.send("stop")
    trainer.train_until(4000)
    result = trainer.finish()
    assert result.stop_requested_at is not None and result.steps == result.stop_requested_at < 1400
    final = [r for r in collector.records if "eval_return" in r][-1]
    assert final["step"] == result.steps and final["eval_return"] == result.final_eval.mean
    assert len(result.final_eval.returns) == config.training.final_eval_episodes  # a real final evaluation


def test_epsilon_set_continues_the_decay_from_the_new_value() -> None:
    config = small_config(None, steps=1600)
    config.agent.exploration_fraction = 0.625  # decays until step 1000
    trainer, channel, collector = controlled(config)
    trainer.start()
    trainer.train_until(400)
    channel.send("set epsilon=0.8")
    trainer.train_until(1600)
    trainer.finish()
    applied_at = control_records(collector)[0]["step"]
    eps = dict(zip(*collector.series("epsilon"), strict=False))
    assert eps[applied_at] == pytest.approx(0.8)
    final = config.agent.exploration_final_eps
    # (a training record carries the epsilon its last step acted with: the one of step - 1)
    assert eps[750] == pytest.approx(0.8 + (final - 0.8) * (749 - applied_at) / (1000 - applied_at))
    assert eps[1500] == pytest.approx(final)


def test_a_checkpoint_keeps_the_changes_and_which_commands_were_applied(tmp_path: Path) -> None:
    config = small_config("meta", steps=2000)
    trainer, channel, _ = controlled(config)
    trainer.start()
    trainer.train_until(600)
    channel.send("set lr=5e-4")
    channel.send("freeze lr")
    channel.send("set epsilon=0.3")
    trainer.train_until(800)
    trainer.save_checkpoint(tmp_path / "seed-0.pt")
    values, held = trainer.tuner.space.current(), trainer.tuner.space.held()
    trainer.close()

    late = channel.send("set gamma=0.98")  # sent after the checkpoint: the resumed run must apply it (once)
    collector = RecordCollector()
    resumed = Trainer(config, [collector, Controller(channel, interval=0.0).callback()])
    resumed.load_state_dict(load_checkpoint(tmp_path / "seed-0.pt"))  # weights_only: plain data only
    assert resumed.tuner.space.current() == values and resumed.tuner.space.held() == held
    resumed.start()
    resumed.train_until(1200)
    resumed.finish()
    applied = control_records(collector)
    assert [r["control/id"] for r in applied] == [late.id]
    training = [r for r in collector.records if "sps" in r]
    assert all(r["hp/lr"] == pytest.approx(5e-4, rel=1e-6) for r in training)  # still frozen at the set value
    assert all(r["epsilon"] == pytest.approx(0.3) for r in training)


def test_a_replayed_schedule_cannot_be_set() -> None:
    config = small_config(None, steps=800)
    config.schedule = {"lr": [(0, 1e-3), (400, 5e-4)]}
    channel, collector = MemoryChannel(), RecordCollector()
    trainer = Trainer(config, [collector, Controller(channel, interval=0.0).callback()], use_schedule=True)
    trainer.start()
    trainer.train_until(300)
    channel.send("set lr=2e-3")
    channel.send("set tau=0.5")
    trainer.train_until(800)
    trainer.finish()
    lr, tau = control_records(collector)
    assert lr["control/status"] == "rejected" and "replayed schedule" in lr["control/detail"]
    assert tau["control/status"] == "applied" and trainer.tuner.tau == 0.5
    assert trainer.tuner.records()["hp/lr"] == 5e-4  # the schedule still rules lr


class CountingChannel(MemoryChannel):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def read(self) -> list:
        self.reads += 1
        return super().read()


def test_the_channel_is_read_at_most_once_per_interval() -> None:
    now = [0.0]
    channel = CountingChannel()
    controller = Controller(channel, interval=1.0, clock=lambda: now[0])
    controller.poll()
    assert channel.reads == 1
    for _ in range(50):  # many phase boundaries within one second
        now[0] += 0.019
        controller.poll()
    assert channel.reads == 1
    now[0] += 0.1
    controller.poll()
    assert channel.reads == 2


def test_background_reads_hand_commands_to_the_next_phase_boundary() -> None:
    channel = CountingChannel()
    controller = Controller(channel, interval=0.05, background=True)
    controller.open(PublishedSpace([], {}, {}))
    try:
        command = channel.send("stop")
        deadline = time.monotonic() + 10
        while not controller.commands and time.monotonic() < deadline:
            controller.poll()  # what a phase boundary does: no read on this thread
            time.sleep(0.01)
        assert [c.id for c in controller.commands] == [command.id]
        reads = channel.reads
        time.sleep(0.3)
        assert reads < channel.reads <= reads + 0.3 / 0.05 + 2  # the thread keeps reading, at its interval
    finally:
        controller.close()
    reads = channel.reads
    time.sleep(0.2)
    assert channel.reads == reads  # closed: no more reads


class FlakyChannel(MemoryChannel):
    """Fails its first read and its first acknowledgement, as a storage that blinks."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = {"read": 1, "acknowledge": 1}

    def _fail(self, what: str) -> None:
        if self.failures[what]:
            self.failures[what] -= 1
            raise OSError(f"storage unreachable during {what}")

    def read(self) -> list:
        self._fail("read")
        return super().read()

    def acknowledge(self, command: object, record: object) -> None:
        self._fail("acknowledge")
        super().acknowledge(command, record)  # type: ignore[arg-type]


def test_a_storage_hiccup_neither_ends_training_nor_loses_an_acknowledgement(
    caplog: pytest.LogCaptureFixture,
) -> None:
    channel, collector = FlakyChannel(), RecordCollector()
    trainer = Trainer(small_config("hd", steps=600), [collector, Controller(channel, interval=0.0).callback()])
    command = channel.send("set lr=5e-4")
    result = trainer.run()
    assert result.steps == 600
    assert [r["control/id"] for r in control_records(collector)] == [command.id]
    assert channel.acks[command.id]["status"] == "applied"  # published at a later poll
    assert "live control: cannot read commands (OSError: storage unreachable during read)" in caplog.text
