"""SIGKILL a worker mid-trial; the next `study run` fails the stale trial and resumes its retry from the
latest checkpoint (not from step 0), with the MLflow runs in matching states and linked: on the embedded journal
file and on PostgreSQL (where Optuna's own heartbeats run too)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import optuna
import pytest

from dqnmap_auto.tracking.mlflow_tracker import default_tracking_uri
from dqnmap_auto.tuning.recovery import RETRY_OF_ATTR, stale_reason
from dqnmap_auto.tuning.spec import load_study_spec
from dqnmap_auto.tuning.study import StudyLocation, load_existing, run_study
from tests.tuning.helpers import checkpointed_spec

TrialState = optuna.trial.TrialState


def _intermediate_steps(location: StudyLocation) -> list[int]:
    try:
        trials = load_existing(location, "smoke").get_trials()
    except Exception:
        return []
    return sorted(trials[0].intermediate_values) if trials else []


@pytest.mark.parametrize("storage", ["journal", "postgresql"])
def test_sigkill_mid_trial_then_resume_from_checkpoint(
    tmp_path: Path, storage: str, request: pytest.FixtureRequest
) -> None:
    spec = checkpointed_spec(tmp_path, n_trials=1, steps=8000)
    url = request.getfixturevalue("postgres_url") if storage == "postgresql" else None
    location = StudyLocation(url, tmp_path / "project")
    storage_args = ["--storage", url] if url else []
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dqnmap_auto.cli",
            "study",
            "run",
            str(spec),
            "--dir",
            str(location.directory),
            "--no-progress",
            *storage_args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.time() + 240
    while time.time() < deadline and (not _intermediate_steps(location) or max(_intermediate_steps(location)) < 3000):
        assert proc.poll() is None, "the worker ended before it could be killed"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    killed_after = max(_intermediate_steps(location))
    (dead,) = load_existing(location, "smoke").get_trials()
    assert dead.state == TrialState.RUNNING  # nobody could mark it: the process died at once
    assert stale_reason(dead, grace=3600) is not None  # its pid is gone: stale without waiting for the grace

    run_study(load_study_spec(spec), location, n_trials=1, progress=False)

    study = load_existing(location, "smoke")
    first, retry = study.get_trials()
    assert first.state == TrialState.FAIL and "stale: worker process" in first.user_attrs["failure_reason"]
    assert retry.state == TrialState.COMPLETE
    assert retry.user_attrs[RETRY_OF_ATTR] == 0
    assert retry.params == first.params
    resumed = retry.user_attrs["resumed_from_step"]
    assert resumed >= killed_after >= 3000  # at most one checkpoint interval lost, and not from step 0
    assert resumed - killed_after <= 1000
    for step, value in first.intermediate_values.items():  # the retry carries the earlier curve
        if step <= resumed:
            assert retry.intermediate_values[step] == pytest.approx(value)
    assert max(retry.intermediate_values) == 8000
    assert not (location.directory / "checkpoints" / "smoke" / "trial-1").exists()  # cleaned after success

    client = mlflow.MlflowClient(default_tracking_uri(location.directory))
    dead_run = client.get_run(first.user_attrs["mlflow_run_id"])
    retry_run = client.get_run(retry.user_attrs["mlflow_run_id"])
    assert dead_run.info.status == "FAILED" and "stale" in dead_run.data.tags["failure_reason"]
    assert retry_run.info.status == "FINISHED"
    assert retry_run.data.tags["dqnmap.retry_of_run"] == dead_run.info.run_id
    print(f"killed after step {killed_after}, resumed from step {resumed}")
