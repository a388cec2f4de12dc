"""4 worker processes on one study, ~40 short trials: nothing lost or duplicated, one MLflow run per trial."""

from __future__ import annotations

from pathlib import Path

import mlflow
import optuna
from click.testing import CliRunner

from dqnmap_auto.cli import main
from dqnmap_auto.tracking.mlflow_tracker import STATUS_OF_STATE, default_tracking_uri
from dqnmap_auto.tuning.study import StudyLocation, load_existing
from tests.tuning.helpers import many_short_trials_spec

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
