"""Studies end to end on the smoke spec: pruning, divergence, resume, worker processes, export -> train."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import optuna
import pytest
from click.testing import CliRunner

from dqnmap_auto.cli import main
from dqnmap_auto.tracking.mlflow_tracker import default_tracking_uri
from dqnmap_auto.tuning.objective import trajectory_of
from dqnmap_auto.tuning.spec import load_study_spec
from dqnmap_auto.tuning.study import StudyLocation, load_existing, run_study
from tests.tuning.helpers import many_short_trials_spec, smoke_spec

TrialState = optuna.trial.TrialState


def run(spec_path: Path, directory: Path, **kwargs: object) -> optuna.Study:
    location = StudyLocation(storage=None, directory=directory)
    spec = load_study_spec(spec_path)
    run_study(spec, location, progress=False, **kwargs)  # type: ignore[arg-type]
    return load_existing(location, spec.name)


def test_trials_report_intermediate_values_and_store_outcomes(tmp_path: Path) -> None:
    study = run(smoke_spec(tmp_path, n_trials=2, pruner={"name": "none"}), tmp_path / "p")
    assert study.metric_names == ["eval_return"]
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    for trial in trials:
        assert sorted(trial.intermediate_values) == [500, 1000, 1500]
        assert trial.value == trial.intermediate_values[1500]  # objective: last
        assert len(trial.user_attrs["seed_returns"]) == 1
        tuned = trial.user_attrs["tuned"]
        assert tuned and set(tuned) <= set(trial.user_attrs["hp_final"])
        assert trial.user_attrs["hp_initial"]["lr"] == pytest.approx(trial.params["agent.lr"])
        assert trajectory_of(trial)["lr"][0] == [0, pytest.approx(trial.params["agent.lr"])]
        assert "hp_trajectory" not in trial.user_attrs  # long data stays out of optuna-dashboard's attribute table
        assert max(len(json.dumps(value)) for value in trial.user_attrs.values()) < 200


def test_pruning_stops_a_trial_before_its_budget(tmp_path: Path) -> None:
    spec = smoke_spec(tmp_path, n_trials=2, pruner={"name": "threshold", "args": {"lower": 1.0e6}})
    study = run(spec, tmp_path / "p")
    for trial in study.get_trials():
        assert trial.state == TrialState.PRUNED
        assert trial.user_attrs["pruned_at_step"] == 500
        assert trial.user_attrs["env_steps"] == 500  # the other 1000 steps of the budget never ran
        assert list(trial.intermediate_values) == [500]


def test_divergence_prunes_with_reason_and_the_study_goes_on(tmp_path: Path) -> None:
    spec = smoke_spec(
        tmp_path,
        n_trials=2,
        pruner={"name": "none"},
        sampler={"name": "random", "args": {"seed": 0}},
        base={"self_tuning": {"enabled": False}},
        search_space={"agent.lr": {"type": "categorical", "choices": [1.0e12]}},
    )
    study = run(spec, tmp_path / "p")
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.PRUNED] * 2
    assert all("non-finite" in t.user_attrs["diverged"] for t in trials)


def test_seeds_are_interleaved_and_each_return_kept(tmp_path: Path) -> None:
    study = run(smoke_spec(tmp_path, n_trials=1, seeds=2, objective="auc", pruner={"name": "none"}), tmp_path / "p")
    (trial,) = study.get_trials()
    returns = trial.user_attrs["seed_returns"]
    assert len(returns) == 2 and trial.user_attrs["env_steps"] == 3000
    curve = [trial.intermediate_values[s] for s in (500, 1000, 1500)]
    assert trial.value == pytest.approx(sum(curve) / 3)
    assert curve[-1] == pytest.approx(sum(returns) / 2)


def test_a_seed_that_reaches_stop_at_return_stops_and_keeps_its_score(tmp_path: Path) -> None:
    spec = smoke_spec(
        tmp_path, n_trials=1, seeds=2, pruner={"name": "none"}, base={"training": {"stop_at_return": 0.0}}
    )
    (trial,) = run(spec, tmp_path / "p").get_trials()
    assert trial.state == TrialState.COMPLETE
    assert trial.user_attrs["solved_at"] == [500, 500]
    assert trial.user_attrs["env_steps"] == 1000  # both seeds stopped at their first evaluation, of 1500 steps
    assert sorted(trial.intermediate_values) == [500, 1000, 1500]  # later steps report the solved policy
    assert trial.value == pytest.approx(sum(trial.user_attrs["seed_returns"]) / 2)
    client = mlflow.MlflowClient(default_tracking_uri(tmp_path / "p"))
    assert client.get_run(trial.user_attrs["mlflow_run_id"]).data.tags["dqnmap.solved_at"] == "500,500"


def test_wilcoxon_gets_one_value_per_seed(tmp_path: Path) -> None:
    spec = smoke_spec(tmp_path, n_trials=1, seeds=2, pruner={"name": "wilcoxon", "args": {"p_threshold": 0.1}})
    (trial,) = run(spec, tmp_path / "p").get_trials()
    assert sorted(trial.intermediate_values) == [0, 1, 2, 3, 4, 5]  # 3 evaluations x 2 seeds


def sample_transformed(trial: optuna.Trial) -> dict[str, object]:
    """A space the flat search_space cannot express: 1 - gamma on a log scale, batch size as a power of two
    (module level: worker processes unpickle it)."""
    one_minus_gamma = trial.suggest_float("one_minus_gamma", 1e-3, 0.1, log=True)
    return {"agent.gamma": 1.0 - one_minus_gamma, "agent.batch_size": 2 ** trial.suggest_int("batch_pow", 3, 5)}


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_sample_function_replaces_the_search_space(tmp_path: Path, jobs: int) -> None:
    spec_path = smoke_spec(tmp_path, n_trials=2, pruner={"name": "none"}, base={"self_tuning": {"enabled": False}})
    study = run(spec_path, tmp_path / "p", jobs=jobs, tracking=False, sample=sample_transformed)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    for trial in trials:
        assert sorted(trial.params) == ["batch_pow", "one_minus_gamma"]  # the spec's agent.lr is not sampled
        gamma = trial.user_attrs["hp_initial"]["gamma"]
        assert gamma == pytest.approx(1.0 - trial.params["one_minus_gamma"], rel=1e-6)


def test_running_again_continues_the_study(tmp_path: Path) -> None:
    spec = smoke_spec(tmp_path, n_trials=2, pruner={"name": "none"})
    run(spec, tmp_path / "p")
    study = run(spec, tmp_path / "p")
    assert [t.number for t in study.get_trials()] == [0, 1, 2, 3]


def test_interrupted_study_resumes(tmp_path: Path) -> None:
    """Ctrl-C in the middle of a trial, then `study run` again: the study continues where it was."""
    spec = smoke_spec(
        tmp_path, n_trials=3, pruner={"name": "none"}, steps=20000, base={"training": {"total_steps": 20000}}
    )
    directory = tmp_path / "p"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dqnmap_auto.cli", "study", "run", str(spec), "--dir", str(directory), "--no-progress"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    location = StudyLocation(storage=None, directory=directory)
    # Generous: on a loaded 2-core CI machine the first evaluation can take minutes (imports, MLflow setup).
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not _has_intermediate_value(location):
        time.sleep(0.3)
    if proc.poll() is not None or not _has_intermediate_value(location):
        proc.kill()
        output = proc.communicate()[0].decode(errors="replace")
        pytest.fail(f"the study reported no evaluation before it was to be interrupted:\n{output[-2000:]}")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    first = load_existing(location, "smoke").get_trials()
    assert [t.state for t in first] == [TrialState.FAIL, TrialState.WAITING]  # its retry is queued
    assert first[0].intermediate_values and first[0].user_attrs["failure_reason"] == "interrupted"
    quick = smoke_spec(tmp_path, n_trials=2, pruner={"name": "none"})
    study = run(quick, directory)
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]


def _has_intermediate_value(location: StudyLocation) -> bool:
    try:
        trials = load_existing(location, "smoke").get_trials()
    except Exception:  # not created yet
        return False
    return any(t.intermediate_values for t in trials)


def test_two_worker_processes_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    spec = smoke_spec(tmp_path, n_trials=6)
    result = CliRunner().invoke(
        main, ["study", "run", str(spec), "--dir", str(tmp_path / "p"), "--jobs", "2", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    trials = load_existing(StudyLocation(None, tmp_path / "p"), "smoke").get_trials()
    assert sorted(t.number for t in trials) == list(range(6))
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 6  # workers did not repeat suggestions


def test_export_then_train_replays_the_schedule(tmp_path: Path) -> None:
    directory = tmp_path / "p"
    run(smoke_spec(tmp_path, n_trials=2, pruner={"name": "none"}), directory)
    runner = CliRunner()
    exported = tmp_path / "best.yaml"
    result = runner.invoke(main, ["study", "best", "smoke", "--dir", str(directory), "--export", str(exported)])
    assert result.exit_code == 0, result.output
    best = load_existing(StudyLocation(None, directory), "smoke").best_trial
    out = tmp_path / "replay"
    result = runner.invoke(main, ["train", str(exported), "--schedule", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    replayed = {int(r["step"]): r["hp/lr"] for r in records if "hp/lr" in r}
    schedule = dict((int(s), v) for s, v in trajectory_of(best)["lr"])
    # every phase uses the last scheduled value at or before its start: the logged values come from the schedule
    assert set(replayed.values()) <= set(schedule.values())
    assert len(set(replayed.values())) > 1
    plain = runner.invoke(main, ["train", str(exported), "--out", str(tmp_path / "again"), "--no-progress"])
    assert plain.exit_code == 0 and "self-tuned" in plain.output


class EnqueueFollowUp:
    """A trial callback (picklable, for worker processes): each finished trial that is not itself a follow-up
    gets one, with lr halfway (in log) to 1e-3, and appends its number to a file."""

    def __init__(self, record: Path) -> None:
        self.record = record

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        with self.record.open("a") as out:
            out.write(f"{trial.number}\n")
        if "follows" not in trial.user_attrs:
            params = {**trial.params, "agent.lr": (trial.params["agent.lr"] * 1e-3) ** 0.5}  # inside the space
            study.enqueue_trial(params, user_attrs={"follows": trial.number})


@pytest.mark.parametrize("jobs", [1, 2])
def test_trial_callbacks_run_after_each_trial_and_can_enqueue_its_follow_up(tmp_path: Path, jobs: int) -> None:
    record = tmp_path / "finished.txt"
    study = run(
        many_short_trials_spec(tmp_path, n_trials=4),
        tmp_path / "p",
        jobs=jobs,
        tracking=False,
        callbacks=[EnqueueFollowUp(record)],
    )
    finished = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
    assert len(finished) == 4
    assert sorted(int(n) for n in record.read_text().split()) == [t.number for t in finished]
    follow_ups = [t for t in finished if "follows" in t.user_attrs]
    assert follow_ups  # the queue is read before the sampler draws
    by_number = {t.number: t for t in study.get_trials()}
    for trial in follow_ups:
        parent = by_number[trial.user_attrs["follows"]]
        assert trial.params["agent.lr"] == pytest.approx((parent.params["agent.lr"] * 1e-3) ** 0.5)
        assert trial.params["self_tuning.mode"] == parent.params["self_tuning.mode"]
