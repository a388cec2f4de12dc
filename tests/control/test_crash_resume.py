"""No command is lost across a worker crash: SIGKILL the worker right after a `set` and a `freeze` were applied
(after its last checkpoint), then the retry resumes from that checkpoint and applies them again; had the
checkpoint already held them, it would keep them without applying them twice."""

from __future__ import annotations

import signal
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner

from dqnmap_auto.cli import main
from dqnmap_auto.logs import trial_log_dir
from dqnmap_auto.tuning.location import StudyLocation, load_existing
from dqnmap_auto.tuning.recovery import RETRY_OF_ATTR
from dqnmap_auto.tuning.spec import load_study_spec
from dqnmap_auto.tuning.study import run_study
from tests.control.helpers import live_spec, records, start_study, wait_for, wait_until_steerable

pytestmark = pytest.mark.slow
STEPS, CHECKPOINT_EVERY = 8000, 4000  # the commands land just after the checkpoint at 4000; the next is the end


def test_commands_survive_a_worker_crash(tmp_path: Path) -> None:
    spec = live_spec(tmp_path, steps=STEPS, checkpoint_every=CHECKPOINT_EVERY)
    location = StudyLocation(None, tmp_path / "project")
    proc = start_study(spec, location, "--no-tracking")
    first_log = trial_log_dir(location.directory, "live", 0) / "metrics.jsonl"
    try:
        wait_until_steerable(location, proc)
        wait_for(lambda: any(r["step"] >= CHECKPOINT_EVERY for r in records(first_log)), what="the checkpoint")
        for argv in (["set", "lr=4e-4"], ["freeze", "lr"]):
            result = CliRunner().invoke(
                main, ["trial", argv[0], "live", "0", argv[1], "--wait", "0", "--dir", str(location.directory)]
            )
            assert result.exit_code == 0 and "sent" in result.output, result.output
        wait_for(lambda: sum("control/status" in r for r in records(first_log)) == 2, what="both applied")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    applied = [r for r in records(first_log) if "control/status" in r]
    assert [r["control/command"] for r in applied] == ["set lr=0.0004", "freeze lr"]
    assert all(r["step"] < 2 * CHECKPOINT_EVERY for r in applied)  # killed before a checkpoint could hold them

    run_study(load_study_spec(spec), location, n_trials=1, progress=False, tracking=False)

    first, retry = load_existing(location, "live").get_trials()
    assert first.state == optuna.trial.TrialState.FAIL and retry.state == optuna.trial.TrialState.COMPLETE
    assert retry.user_attrs[RETRY_OF_ATTR] == 0
    resumed = retry.user_attrs["resumed_from_step"]
    assert CHECKPOINT_EVERY <= resumed < applied[0]["step"]  # from the checkpoint before the commands
    rows = records(trial_log_dir(location.directory, "live", 1) / "metrics.jsonl")
    again = [r for r in rows if "control/status" in r]
    assert [r["control/id"] for r in again] == [r["control/id"] for r in applied]  # each once, nothing lost
    assert again[0]["step"] <= resumed + 16 * 4  # at the retry's first phase boundaries
    training = [r for r in rows if "sps" in r]
    assert training[-1]["step"] == STEPS
    assert all(r["hp/lr"] == pytest.approx(4e-4, rel=1e-6) for r in training)  # set and frozen through the end
    assert retry.user_attrs["hp_final"]["lr"] == pytest.approx(4e-4, rel=1e-6)
