"""Ctrl-C during `study run`: exit code 130, one line, the running trials FAIL ("interrupted") with their retries
queued, and the next `study run` says what it picks up and resumes them from their checkpoints; in one process and
with worker processes (SIGINT to the invoking process only, as `kill -INT` sends it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner

from dqnmap_auto.cli import main
from dqnmap_auto.tuning.recovery import RETRY_OF_ATTR, RETRY_REASON_ATTR
from dqnmap_auto.tuning.study import StudyLocation, load_existing
from tests.tuning.helpers import checkpointed_spec

TrialState = optuna.trial.TrialState


def _trials(location: StudyLocation) -> list[optuna.trial.FrozenTrial]:
    try:
        return load_existing(location, "smoke").get_trials()
    except Exception:  # not created yet
        return []


def _interrupt_when(proc: subprocess.Popen[bytes], ready: object, location: StudyLocation) -> str:
    deadline = time.time() + 300  # a loaded 2-core machine: imports and MLflow setup can take minutes
    while time.time() < deadline and proc.poll() is None and not ready(_trials(location)):  # type: ignore[operator]
        time.sleep(0.3)
    if proc.poll() is not None or not ready(_trials(location)):  # type: ignore[operator]
        proc.kill()
        pytest.fail(f"not ready to interrupt:\n{proc.communicate()[0].decode(errors='replace')[-3000:]}")
    proc.send_signal(signal.SIGINT)
    output = proc.communicate(timeout=300)[0].decode(errors="replace")  # workers finish their MLflow runs first
    assert proc.returncode == 130, output
    return output


@pytest.mark.parametrize("jobs", [1, 2])
def test_ctrl_c_marks_trials_interrupted_and_the_next_run_resumes_them(tmp_path: Path, jobs: int) -> None:
    spec = checkpointed_spec(tmp_path, n_trials=jobs, steps=30000)
    location = StudyLocation(None, tmp_path / "p")
    command = [sys.executable, "-m", "dqnmap_auto.cli", "study", "run", str(spec), "--dir", str(location.directory)]
    proc = subprocess.Popen(
        [*command, "--no-progress", "--jobs", str(jobs)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        # as from a terminal: Python's own SIGINT handler, even if this test process inherited SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )

    def every_worker_checkpointed(trials: list[optuna.trial.FrozenTrial]) -> bool:
        running = [t for t in trials if t.state == TrialState.RUNNING and t.intermediate_values]
        return len(running) == jobs

    output = _interrupt_when(proc, every_worker_checkpointed, location)
    assert "Traceback" not in output and "[W " not in output, output  # no raw Optuna warnings
    assert output.strip().splitlines()[-1].startswith("interrupted: trial(s) "), output

    trials = _trials(location)
    interrupted = [t for t in trials if t.state == TrialState.FAIL]
    retries = [t for t in trials if t.state == TrialState.WAITING]
    assert len(interrupted) == jobs and not [t for t in trials if t.state == TrialState.RUNNING]
    assert all(t.user_attrs["failure_reason"] == "interrupted" for t in interrupted)
    assert sorted(t.user_attrs[RETRY_OF_ATTR] for t in retries) == sorted(t.number for t in interrupted)
    assert all(t.user_attrs[RETRY_REASON_ATTR] == "interrupted" for t in retries)

    quick = checkpointed_spec(tmp_path, n_trials=jobs, steps=2000)  # the retries resume, with a short budget
    argv = ["study", "run", str(quick), "--dir", str(location.directory), "--no-progress", "--no-tracking"]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 0, result.output
    for retry in retries:
        assert f"trial {retry.number} retries trial {retry.user_attrs[RETRY_OF_ATTR]} (interrupted)" in result.output
    resumed = [t for t in _trials(location) if t.number in {r.number for r in retries}]
    assert all(t.user_attrs.get("resumed_from_step", 0) >= 1000 for t in resumed), [t.user_attrs for t in resumed]
