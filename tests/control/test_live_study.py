"""A real `study run` subprocess steered from the CLI while its trial runs, on the journal file and on
PostgreSQL: `set` shows in the metrics at the next training phase with its audit record (metrics, MLflow, note,
log), `freeze` holds to the end, `stop` completes the trial early with its value."""

from __future__ import annotations

import re
from pathlib import Path

import mlflow
import optuna
import pytest
from click.testing import CliRunner
from optuna_dashboard import get_note

from dqnmap_auto.cli import main
from dqnmap_auto.control.channels import ACK_PREFIX
from dqnmap_auto.logs import trial_log_dir
from dqnmap_auto.tracking.mlflow_tracker import default_tracking_uri
from dqnmap_auto.tuning.location import StudyLocation, load_existing
from tests.control.helpers import live_spec, records, start_study, wait_for, wait_until_steerable

pytestmark = pytest.mark.slow


def cli(location: StudyLocation, *argv: str) -> list[str]:
    storage = ["--storage", location.storage] if location.storage else []
    result = CliRunner().invoke(main, [*argv, "--dir", str(location.directory), *storage])
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()


@pytest.mark.parametrize("storage", ["journal", "postgresql"])
def test_set_freeze_stop_a_running_trial(tmp_path: Path, storage: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("postgres_url") if storage == "postgresql" else None
    location = StudyLocation(url, tmp_path / "project")
    tracked = url is None  # MLflow's side once (it does not depend on the storage): a leaner PostgreSQL run
    proc = start_study(live_spec(tmp_path), location, *([] if tracked else ["--no-tracking"]))
    try:
        wait_until_steerable(location, proc)
        out = cli(location, "trial", "set", "live", "0", "lr=4e-4", "gamma=0.97", "--wait", "60")
        assert "applied `set lr=0.0004 gamma=0.97` at step" in out[0] and "-> 0.0004" in out[0]
        out = cli(location, "trial", "freeze", "live", "0", "gamma", "--wait", "60")
        # held where self-tuning took it since the set (0.97 and whatever a few hundred steps added: timing)
        held_at = re.search(r"\(gamma held at ([0-9.]+)\)", out[0])
        assert held_at, out[0]
        metrics = trial_log_dir(location.directory, "live", 0) / "metrics.jsonl"
        frozen_at = next(r["step"] for r in records(metrics) if r.get("control/command") == "freeze gamma")
        wait_for(lambda: sum(r["step"] > frozen_at and "sps" in r for r in records(metrics)) >= 3, what="training")
        out = cli(location, "trial", "stop", "live", "0", "--wait", "180")
        assert "applied `stop`" in out[0] and "ended COMPLETE with value" in out[1]
        assert proc.wait(timeout=180) == 0
    finally:
        if proc.poll() is None:
            proc.kill()

    study = load_existing(location, "live")
    (done,) = study.get_trials()
    assert done.state == optuna.trial.TrialState.COMPLETE
    assert done.user_attrs["stopped_at_step"] < 200_000 and done.value == done.user_attrs["seed_returns"][0]
    assert [v["status"] for k, v in done.user_attrs.items() if k.startswith(ACK_PREFIX)] == ["applied"] * 3

    rows = records(trial_log_dir(location.directory, "live", 0) / "metrics.jsonl")
    set_record, freeze_record, stop_record = [r for r in rows if "control/status" in r]
    phase = 16  # smoke.yaml: train_freq 16 vector steps of one env
    # `set`: in the metrics at the phase boundary where it applied, about a second after it was sent
    assert set_record["step"] % phase == 0 and set_record["control/latency_s"] < 10
    assert set_record["hp/lr"] == pytest.approx(4e-4, rel=1e-6) and set_record["hp/gamma"] == pytest.approx(0.97)
    assert set_record["control/via"] == "cli" and "lr " in set_record["control/detail"]
    # `freeze`: gamma held from then to the end, while the others kept self-tuning
    held = [r["hp/gamma"] for r in rows if "sps" in r and r["step"] > freeze_record["step"]]
    assert len(held) >= 3 and set(held) == {freeze_record["control/gamma"]}
    assert float(held_at.group(1)) == pytest.approx(freeze_record["control/gamma"], abs=1e-6)
    assert done.user_attrs["hp_final"]["gamma"] == pytest.approx(freeze_record["control/gamma"], rel=1e-6)
    deltas = [r["hp/huber_delta"] for r in rows if "sps" in r and r["step"] > freeze_record["step"]]
    assert len(set(deltas)) > 1
    # `stop`: the run ended at the stop, with a final evaluation there
    assert rows[-1]["step"] == stop_record["step"] == done.user_attrs["stopped_at_step"] and "eval_return" in rows[-1]

    # the audit trail everywhere: the note, the log, the MLflow run (a tag per command, marker metrics)
    note = get_note(optuna.trial.Trial(study, done._trial_id))
    assert "#### Live control" in note and "`set lr=0.0004 gamma=0.97`" in note and "**applied**" in note
    log = (trial_log_dir(location.directory, "live", 0) / "trial.log").read_text()
    assert f"control applied: freeze gamma (gamma held at {held_at.group(1)}" in log
    if not tracked:
        return
    client = mlflow.MlflowClient(default_tracking_uri(location.directory))
    run = client.get_run(done.user_attrs["mlflow_run_id"])
    tags = [v for k, v in run.data.tags.items() if k.startswith("control/")]
    assert len(tags) == 3 and any("applied: set lr=0.0004 gamma=0.97" in t for t in tags)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "control/applied")] == [
        set_record["step"],
        freeze_record["step"],
        stop_record["step"],
    ]
    lr_points = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "hp/lr")}
    assert lr_points[set_record["step"]] == pytest.approx(4e-4, rel=1e-6)
