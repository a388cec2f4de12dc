"""4 worker processes on one study, ~40 short trials: nothing lost or duplicated, one MLflow run per trial."""

from __future__ import annotations

from pathlib import Path

import mlflow
import optuna
from click.testing import CliRunner

from dqnmap_auto.cli import main
from dqnmap_auto.tracking.mlflow_tracker import STATUS_OF_STATE, default_tracking_uri
from dqnmap_auto.tuning.study import StudyLocation, load_existing
from tests.tuning.helpers import many_short_trials_spec, smoke_spec

N_TRIALS = 40


def test_four_workers_forty_trials(tmp_path: Path) -> None:
    spec = many_short_trials_spec(tmp_path, N_TRIALS)
    project = tmp_path / "project"
    result = CliRunner().invoke(
        main, ["study", "run", str(spec), "--dir", str(project), "--jobs", "4", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert "locked" not in result.output.lower()
    trials = load_existing(StudyLocation(None, project), "smoke").get_trials()
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(N_TRIALS))  # none lost, none duplicated
    assert all(t.state.is_finished() for t in trials)
    states = {t.state for t in trials}
    assert states <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}

    client = mlflow.MlflowClient(default_tracking_uri(project))
    experiment = client.get_experiment_by_name("smoke")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    children = [r for r in runs if r.data.tags.get("dqnmap.role") == "trial"]
    assert len(children) == N_TRIALS
    by_trial: dict[str, list[mlflow.entities.Run]] = {}
    for run in children:
        by_trial.setdefault(run.data.tags["optuna.trial"], []).append(run)
    for trial in trials:
        (run,) = by_trial[str(trial.number)]  # exactly one child run per trial
        assert run.info.run_id == trial.user_attrs["mlflow_run_id"]
        assert run.info.status == STATUS_OF_STATE[trial.state]
    print(f"{len(trials)} trials, {len(children)} child runs, states {sorted(s.name for s in states)}")


def test_two_concurrent_runs_each_count_their_own_trials(tmp_path: Path) -> None:
    """Two `study run` on one study at once: each summary counts the trials it ran, and says what the study holds."""
    import os
    import subprocess
    import sys

    spec = smoke_spec(
        tmp_path, n_trials=2, steps=3000, pruner={"name": "none"}, base={"training": {"total_steps": 3000}}
    )
    project = tmp_path / "project"
    command = [sys.executable, "-m", "dqnmap_auto.cli", "study", "run", str(spec), "--dir", str(project)]
    command += ["--no-tracking", "--no-progress"]
    CliRunner().invoke(main, [*command[3:], "--n-trials", "1"])  # the study exists before both start
    procs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ})
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=600)[0].decode() for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    for output in outputs:
        assert "ran 2 trials" in output, output
        assert "(2 complete, 0 pruned, 0 failed;" in output, output
    holds = [line for output in outputs for line in output.splitlines() if line.startswith("the study holds")]
    assert len(holds) == 2 and any("the study holds 5 trials" in line for line in holds), holds  # the later one
    trials = load_existing(StudyLocation(None, project), "smoke").get_trials()
    assert len(trials) == 5
