"""On PostgreSQL, Optuna's own heartbeats find a trial whose worker stopped beating (on another machine, where
no pid can be checked), fail it, and the stale-trial handler enqueues its retry with the same parameters."""

from __future__ import annotations

import time
from pathlib import Path

import optuna

from dqnmap_auto.tuning.recovery import (
    RETRY_OF_ATTR,
    RETRY_REASON_ATTR,
    StaleTrialHandler,
    has_native_heartbeat,
    recover_stale_trials,
)
from dqnmap_auto.tuning.spec import load_study_spec
from dqnmap_auto.tuning.study import StudyLocation, create_or_continue, load_existing, run_study
from tests.tuning.helpers import smoke_spec

TrialState = optuna.trial.TrialState


def test_optuna_heartbeat_fails_and_retries_a_silent_trial(tmp_path: Path, postgres_url: str) -> None:
    spec = load_study_spec(smoke_spec(tmp_path, n_trials=1, stale_after=2, heartbeat_interval=1))
    location = StudyLocation(postgres_url, tmp_path / "project")
    study = create_or_continue(spec, location, stale_handler=StaleTrialHandler())
    assert has_native_heartbeat(study._storage)
    # A trial started elsewhere: it beat once, then its machine went silent (no host/pid we could check).
    silent = study.ask()
    silent.suggest_float("agent.lr", 1e-4, 1e-2, log=True)
    silent.suggest_categorical("self_tuning.mode", ["hd", "meta"])
    study._storage.record_heartbeat(silent._trial_id)  # type: ignore[attr-defined]
    assert recover_stale_trials(study, grace=2) == []  # no pid to check, and the timing is Optuna's job
    time.sleep(3.5)

    run_study(spec, location, n_trials=1, progress=False, tracking=False)

    first, retry = load_existing(location, "smoke").get_trials()
    assert first.state == TrialState.FAIL
    assert retry.state == TrialState.COMPLETE
    assert retry.user_attrs[RETRY_OF_ATTR] == 0
    assert "Optuna heartbeat" in retry.user_attrs[RETRY_REASON_ATTR]
    assert retry.params == first.params
