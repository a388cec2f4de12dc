"""The multi-host setup on real servers, all on loopback: Optuna on PostgreSQL, `mlflow server` backed by
PostgreSQL with proxied artifacts, and the study workers on a Dask LocalCluster of 2 worker processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import optuna
import pytest
from click.testing import CliRunner

from dqnmap_auto.cli import main
from dqnmap_auto.tracking.mlflow_tracker import STATUS_OF_STATE
from dqnmap_auto.tuning.recovery import PID_ATTR, RETRY_OF_ATTR
from dqnmap_auto.tuning.study import StudyLocation, load_existing
from tests.servers.mlflow_server import mlflow_server
from tests.servers.postgres import create_database
from tests.tuning.helpers import checkpointed_spec, many_short_trials_spec

TrialState = optuna.trial.TrialState
N_TRIALS = 12
SECRET = "s3cret-pw"  # the servers trust loopback: a password in the URL must still never be logged


@pytest.fixture(scope="module")
def tracking_server(postgres_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    database = create_database(postgres_server_url)
    with mlflow_server(database, tmp_path_factory.mktemp("mlflow") / "artifacts") as url:
        yield url


def _with_password(url: str) -> str:
    return url.replace("://dqnmap@", f"://dqnmap:{SECRET}@")


def test_twelve_trials_on_dask_postgres_and_mlflow_server(
    tmp_path: Path, postgres_url: str, tracking_server: str
) -> None:
    spec = many_short_trials_spec(tmp_path, N_TRIALS)
    storage = _with_password(postgres_url)
    args = ["study", "run", str(spec), "--storage", storage, "--dir", str(tmp_path / "project"), "--no-progress"]
    result = CliRunner().invoke(main, [*args, "--dask", "local", "--jobs", "2", "--tracking-uri", tracking_server])
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output

    study = load_existing(StudyLocation(postgres_url, tmp_path / "project"), "smoke")
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == list(range(N_TRIALS))  # exactly 12, none lost or duplicated
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert len({t.user_attrs[PID_ATTR] for t in trials}) == 2  # both Dask worker processes ran trials
    assert SECRET not in json.dumps([study.user_attrs, [t.user_attrs for t in trials]], default=str)

    client = mlflow.MlflowClient(tracking_server)
    experiment = client.get_experiment_by_name("smoke")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    children = {r.data.tags["optuna.trial"]: r for r in runs if r.data.tags.get("dqnmap.role") == "trial"}
    assert len(children) == len([r for r in runs if r.data.tags.get("dqnmap.role") == "trial"]) == N_TRIALS
    for trial in trials:
        run = children[str(trial.number)]
        assert run.info.run_id == trial.user_attrs["mlflow_run_id"]
        assert run.info.status == STATUS_OF_STATE[trial.state]
        assert "eval_return" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(children["0"].info.run_id)}  # through the server's proxy
    assert {"config.yaml", "metrics.jsonl", "trial.log", "model.pt", "plots"} <= artifacts
    run_id = children["0"].info.run_id  # the Q-network as a logged model, its files through the proxy too
    (model,) = client.search_logged_models([experiment.experiment_id], filter_string=f"source_run_id = '{run_id}'")
    assert "MLmodel" in {a.path for a in client.list_logged_model_artifacts(model.model_id)}
    plots = {a.path for a in client.list_artifacts(children["0"].info.run_id, "plots")}
    assert "plots/learning_curve.png" in plots
    parent = client.get_run(children["0"].data.tags["mlflow.parentRunId"])
    assert parent.info.status == "FINISHED"
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"spec"}
    for run in runs:
        logged = json.dumps([run.data.params, run.data.tags])
        assert SECRET not in logged
    print(f"{len(trials)} trials in PostgreSQL, {len(children)} child runs on {tracking_server}")


def _running_trial_pid(location: StudyLocation, min_step: int) -> int | None:
    try:
        trials = load_existing(location, "smoke").get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    except Exception:
        return None
    for trial in trials:
        if trial.intermediate_values and max(trial.intermediate_values) >= min_step and PID_ATTR in trial.user_attrs:
            return int(trial.user_attrs[PID_ATTR])
    return None


def test_dask_worker_killed_mid_trial_loses_no_trial(tmp_path: Path, postgres_url: str) -> None:
    spec = checkpointed_spec(tmp_path, n_trials=2, steps=3000)
    location = StudyLocation(postgres_url, tmp_path / "project")
    command = [sys.executable, "-m", "dqnmap_auto.cli", "study", "run", str(spec), "--storage", postgres_url]
    command += ["--dir", str(location.directory), "--dask", "local", "--jobs", "2", "--no-progress", "--no-tracking"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while (pid := _running_trial_pid(location, 1000)) is None:
        assert proc.poll() is None, proc.communicate()[0]
        assert time.time() < deadline, "no trial reached step 1000"
        time.sleep(0.3)
    os.kill(pid, signal.SIGKILL)  # the Dask worker process running that trial
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output
    assert "Traceback" not in output, output  # Dask's shutdown chatter stays out of the user's terminal

    trials = load_existing(location, "smoke").get_trials()
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 1 and failed[0].user_attrs[PID_ATTR] == pid
    (retry,) = [t for t in trials if t.user_attrs.get(RETRY_OF_ATTR) == failed[0].number]
    assert retry.state == TrialState.COMPLETE and retry.params == failed[0].params
    assert retry.user_attrs["resumed_from_step"] >= 1000  # from its checkpoint, not from step 0
    assert len([t for t in trials if t.state == TrialState.COMPLETE]) == 2  # the 2 asked for, none lost
    assert all(t.state.is_finished() for t in trials)
