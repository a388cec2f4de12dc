"""MLflow runs of a study: hierarchy, states matching Optuna, params, batched metrics, artifacts, links."""

from __future__ import annotations

from pathlib import Path

import mlflow
import optuna
import pytest
from click.testing import CliRunner

from dqnmap_auto.cli import main
from dqnmap_auto.tracking.mlflow_tracker import default_tracking_uri
from dqnmap_auto.tuning.spec import load_study_spec
from dqnmap_auto.tuning.storage import mask_password
from dqnmap_auto.tuning.study import StudyLocation, load_existing, run_study
from tests.tuning.helpers import smoke_spec

TrialState = optuna.trial.TrialState


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> tuple[optuna.Study, mlflow.MlflowClient, str]:
    """Three trials: the first complete, then pruned ones (threshold pruner on a high eval)."""
    tmp = tmp_path_factory.mktemp("tracked")
    spec = smoke_spec(tmp, n_trials=3, pruner={"name": "none"})
    location = StudyLocation(None, tmp / "project")
    run_study(load_study_spec(spec), location, progress=False)
    pruning = smoke_spec(tmp, n_trials=1, pruner={"name": "threshold", "args": {"lower": 1.0e6}})
    run_study(load_study_spec(pruning), location, progress=False)
    client = mlflow.MlflowClient(default_tracking_uri(location.directory))
    experiment = client.get_experiment_by_name("smoke")
    assert experiment is not None
    return load_existing(location, "smoke"), client, experiment.experiment_id


def test_one_child_run_per_trial_in_the_matching_state(tracked: tuple[optuna.Study, mlflow.MlflowClient, str]) -> None:
    study, client, experiment_id = tracked
    runs = client.search_runs([experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("dqnmap.role") == "study"]
    children = [r for r in runs if r.data.tags.get("dqnmap.role") == "trial"]
    assert len(parents) == 2  # one per `study run` invocation
    assert all(p.info.status == "FINISHED" for p in parents)
    expected = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "KILLED", TrialState.FAIL: "FAILED"}
    trials = study.get_trials()
    assert len(children) == len(trials) == 4
    by_id = {r.info.run_id: r for r in children}
    for trial in trials:
        run = by_id[trial.user_attrs["mlflow_run_id"]]  # Optuna -> MLflow
        pruned = " (pruned)" if trial.state == TrialState.PRUNED else ""  # KILLED looks like FAILED in MLflow's UI
        assert run.info.run_name == f"trial-{trial.number}{pruned}"
        assert run.data.tags["optuna.trial"] == str(trial.number)  # MLflow -> Optuna
        assert run.data.tags["optuna.study"] == "smoke"
        assert run.data.tags["optuna.state"] == trial.state.name
        assert run.info.status == expected[trial.state]
        assert run.data.tags["mlflow.parentRunId"] in {p.info.run_id for p in parents}
        assert float(run.data.params["agent.lr"]) == pytest.approx(trial.params["agent.lr"])
    assert TrialState.PRUNED in {t.state for t in trials}
    pruned = next(r for r in children if r.info.status == "KILLED")
    assert "pruned at step 500" in pruned.data.tags["prune_reason"]


def test_step_metrics_and_artifacts(tracked: tuple[optuna.Study, mlflow.MlflowClient, str]) -> None:
    study, client, exp_id = tracked
    trial = study.get_trials()[0]
    run_id = trial.user_attrs["mlflow_run_id"]
    history = client.get_metric_history(run_id, "hp/lr")
    assert [m.step for m in history] == [250, 500, 750, 1000, 1250, 1500]
    for key in ("episodic_return", "eval_return", "loss", "q_mean", "epsilon", "sps", "hypergrad/lr"):
        assert client.get_metric_history(run_id, key), key
    evals = client.get_metric_history(run_id, "eval_return")
    assert [m.value for m in evals] == [pytest.approx(trial.intermediate_values[m.step]) for m in evals]
    files = {a.path for a in client.list_artifacts(run_id)}
    assert {"config.yaml", "metrics.jsonl", "trial.log", "model.pt", "plots"} <= files
    plots = {Path(a.path).name for a in client.list_artifacts(run_id, "plots")}
    assert {"learning_curve.png", "loss_q.png", "hyperparameters.png", "hypergradients.png"} <= plots
    # an MLflow 3 logged model, the run's output: the Models column of the runs table
    (model,) = client.search_logged_models(filter_string=f"source_run_id = '{run_id}'", experiment_ids=[exp_id])
    assert str(model.status) == "READY"
    assert [output.model_id for output in client.get_run(run_id).outputs.model_outputs] == [model.model_id]
    assert "MLmodel" in {Path(a.path).name for a in client.list_logged_model_artifacts(model.model_id)}
    assert mlflow.pytorch.load_model(model.artifact_location) is not None


def test_experiment_opens_in_the_model_training_view(tracked: tuple[optuna.Study, mlflow.MlflowClient, str]) -> None:
    _, client, experiment_id = tracked
    assert client.get_experiment(experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"


def test_parent_run_holds_spec_and_study_plots(tracked: tuple[optuna.Study, mlflow.MlflowClient, str]) -> None:
    _, client, experiment_id = tracked
    parent = next(
        r
        for r in client.search_runs([experiment_id])
        if r.data.tags.get("dqnmap.role") == "study" and r.data.tags.get("optuna.storage")
    )
    assert "study.search_space.agent.lr.low" in parent.data.params or any(
        k.startswith("study.search_space") for k in parent.data.params
    )
    assert any(a.path == "spec" for a in client.list_artifacts(parent.info.run_id))
    assert {"optimization_history.png", "intermediate_values.png"} <= {
        Path(a.path).name for a in client.list_artifacts(parent.info.run_id, "plots")
    }


def test_dashboard_note_and_artifacts_on_the_trial(tracked: tuple[optuna.Study, mlflow.MlflowClient, str]) -> None:
    import optuna_dashboard

    study, _, _ = tracked
    trial = study.get_trials()[0]
    note = optuna_dashboard.get_note(optuna.trial.Trial(study, trial._trial_id))
    assert "Final eval return" in note and trial.user_attrs["mlflow_run_id"] in note
    artifacts = optuna.artifacts.get_all_artifact_meta(trial, storage=study._storage)
    assert {"learning_curve.png", "hyperparameters.png", "hp_trajectory.json"} <= {a.filename for a in artifacts}
    # the spec's text is a study artifact; its user attribute (one table row in optuna-dashboard) only points there
    assert study.user_attrs["spec"] == "smoke.yaml (full text: study artifact spec.yaml)"
    assert "spec.yaml" in {a.filename for a in optuna.artifacts.get_all_artifact_meta(study)}


def test_note_links_the_mlflow_run_on_a_tracking_server() -> None:
    from dqnmap_auto.tracking.dashboard_notes import trial_note
    from dqnmap_auto.tracking.mlflow_tracker import TrackingContext

    context = TrackingContext("http://127.0.0.1:5000", "3", "parent", "smoke", "journal")
    url = context.run_url("abc")
    assert url == "http://127.0.0.1:5000/#/experiments/3/runs/abc"
    note = trial_note(
        number=0,
        state="COMPLETE",
        tuned=[],
        initial={},
        final={},
        final_eval=1.0,
        reason=None,
        mlflow_run_id="abc",
        mlflow_run_url=url,
    )
    assert "[`abc`](http://127.0.0.1:5000/#/experiments/3/runs/abc)" in note
    assert TrackingContext("sqlite:///x.db", "3", "p", "s", "j").run_url("abc") is None


def test_passwords_are_masked() -> None:
    assert mask_password("postgresql://user:s3cret@db:5432/x") == "postgresql://user:***@db:5432/x"
    assert mask_password("sqlite:///a.db") == "sqlite:///a.db"


def test_unreachable_tracking_server_is_a_one_line_error(tmp_path: Path) -> None:
    spec = smoke_spec(tmp_path)
    result = CliRunner().invoke(
        main,
        [
            "study",
            "run",
            str(spec),
            "--dir",
            str(tmp_path / "p"),
            "--tracking-uri",
            "http://127.0.0.1:9",
            "--no-progress",
        ],
    )
    assert result.exit_code == 2
    assert "unreachable" in result.output and len(result.output.strip().splitlines()) == 1


def test_a_running_trials_metrics_reach_mlflow_within_the_flush_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Live curves: training records (no evaluation among them) are written while the trial runs, once
    FLUSH_EVERY seconds have passed, not only at its end."""
    from dqnmap_auto.tracking import mlflow_tracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    context = mlflow_tracker.start_study_run(
        study_name="live", tracking_uri=uri, directory=tmp_path, storage="memory", spec_path=None, spec_params={}
    )
    trial = optuna.create_study().ask()
    run = mlflow_tracker.TrialRun(context, trial)
    clock = [1000.0]
    monkeypatch.setattr(mlflow_tracker.time, "monotonic", lambda: clock[0])
    run._flushed = clock[0]
    client = mlflow.MlflowClient(uri)
    run.add(0, {"step": 100, "loss": 0.5})
    clock[0] += mlflow_tracker.FLUSH_EVERY / 2
    run.add(0, {"step": 200, "loss": 0.4})
    assert client.get_metric_history(run.run_id, "loss") == []  # buffered: not due yet
    clock[0] += mlflow_tracker.FLUSH_EVERY / 2
    run.add(0, {"step": 300, "loss": 0.3})
    assert [m.step for m in client.get_metric_history(run.run_id, "loss")] == [100, 200, 300]
    assert mlflow_tracker.FLUSH_EVERY <= 30  # the bound on how old a live curve may be
