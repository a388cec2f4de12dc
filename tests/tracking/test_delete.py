"""`study delete` removes everything the study wrote (or keeps the MLflow experiment, renamed), says so in one
line, and a study made again under the same name starts clean."""

from __future__ import annotations

from pathlib import Path

import mlflow
import optuna
from click.testing import CliRunner
from mlflow.entities import ViewType

from dqnmap_auto.cli import main
from dqnmap_auto.tracking.mlflow_tracker import default_tracking_uri
from tests.tuning.helpers import smoke_spec


def _run(spec: Path, project: Path) -> None:
    result = CliRunner().invoke(main, ["study", "run", str(spec), "--dir", str(project), "--no-progress"])
    assert result.exit_code == 0, result.output


def _files(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()] if folder.exists() else []


def test_delete_removes_runs_artifacts_models_and_checkpoints(tmp_path: Path) -> None:
    project = tmp_path / "p"
    spec = smoke_spec(tmp_path, n_trials=1, pruner={"name": "none"})
    _run(spec, project)
    (project / "checkpoints" / "smoke" / "trial-9").mkdir(parents=True)  # as a failed trial leaves them
    client = mlflow.MlflowClient(default_tracking_uri(project))
    assert _files(project / "mlartifacts") and _files(project / "artifacts")

    result = CliRunner().invoke(main, ["study", "delete", "smoke", "--yes", "--dir", str(project)])
    assert result.exit_code == 0, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith("deleted study 'smoke' (1 trials), its MLflow experiment (2 runs, 1 models")
    assert "optuna-dashboard artifacts" in line and "checkpoints" in line
    journal = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(project / "optuna.journal"))
    )
    assert optuna.get_all_study_names(journal) == []
    assert client.get_experiment_by_name("smoke") is None
    assert not [e for e in client.search_experiments(view_type=ViewType.ALL) if e.name != "Default"]
    assert _files(project / "mlartifacts") == [] and _files(project / "artifacts") == []
    assert not (project / "checkpoints" / "smoke").exists()

    _run(spec, project)  # the same name again: a new experiment with one trial-0 run, not a second one
    experiment = client.get_experiment_by_name("smoke")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs if r.data.tags.get("dqnmap.role") == "trial") == ["trial-0"]


def test_delete_can_keep_the_mlflow_experiment(tmp_path: Path) -> None:
    project = tmp_path / "p"
    _run(smoke_spec(tmp_path, n_trials=1, pruner={"name": "none"}), project)
    result = CliRunner().invoke(main, ["study", "delete", "smoke", "--yes", "--keep-mlflow", "--dir", str(project)])
    assert result.exit_code == 0, result.output
    assert "kept its MLflow experiment (2 runs) as 'smoke (study deleted" in result.output
    client = mlflow.MlflowClient(default_tracking_uri(project))
    assert client.get_experiment_by_name("smoke") is None  # the name is free for a new study
    (kept,) = [e for e in client.search_experiments() if e.name.startswith("smoke (study deleted")]
    assert len(client.search_runs([kept.experiment_id])) == 2
