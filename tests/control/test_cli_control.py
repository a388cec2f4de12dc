"""`dqnmap-auto trial ...` and `study logs` without a worker process: bad commands exit 2 with one line and store
nothing (the journal file is byte for byte the same); good ones are stored for the trainer; a `train` output
directory is steered through its control file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from dqnmap_auto.callbacks import JsonlWriter
from dqnmap_auto.cli import main
from dqnmap_auto.control import Controller, RunDirChannel
from dqnmap_auto.control.channels import ACKS_FILE, CMD_PREFIX, SPACE_ATTR
from dqnmap_auto.control.rules import PublishedSpace
from dqnmap_auto.hypergrad.build import build_space
from dqnmap_auto.logs import RUN_LOG, LogWriter, trial_log_dir
from dqnmap_auto.run_dir import write_config
from dqnmap_auto.trainer import Trainer
from dqnmap_auto.tuning.location import StudyLocation, create_or_continue, load_existing
from dqnmap_auto.tuning.spec import load_study_spec
from tests.test_trainer import small_config
from tests.tuning.helpers import smoke_spec


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Study `smoke`: trial 0 COMPLETE (with a log), trial 1 RUNNING with a published space, as a worker leaves
    them."""
    tmp = tmp_path_factory.mktemp("cli-control")
    spec = load_study_spec(smoke_spec(tmp))
    location = StudyLocation(None, tmp / "project")
    study = create_or_continue(spec, location)
    study.tell(study.ask(), 12.5)
    running = study.ask()
    space = PublishedSpace.of(build_space(spec.trial_config({}, seed=0)))
    study._storage.set_trial_user_attr(running._trial_id, SPACE_ATTR, space.to_json())
    log = trial_log_dir(location.directory, "smoke", 0) / "trial.log"
    log.parent.mkdir(parents=True)
    log.write_text("".join(f"12:00:0{i}  step {i * 100}\n" for i in range(5)))
    return location.directory


def invoke(project: Path, *argv: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(main, [*argv, "--dir", str(project)])
    assert "Traceback" not in result.output
    return result.exit_code, result.output.strip().splitlines()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["trial", "set", "nope", "1", "lr=1e-3"], "study 'nope' does not exist"),
        (["trial", "set", "smoke", "7", "lr=1e-3"], "study 'smoke' has no trial 7 (trials: 0..1)"),
        (["trial", "set", "smoke", "0", "lr=1e-3"], "trial 0 is COMPLETE: a finished trial cannot be steered"),
        (["trial", "stop", "smoke", "0"], "trial 0 is COMPLETE"),
        (["trial", "set", "smoke", "1", "momentum=0.9"], "unknown hyperparameter 'momentum'"),
        (["trial", "freeze", "smoke", "1", "batch_size"], "unknown hyperparameter 'batch_size'"),
        (["trial", "set", "smoke", "1", "lr=5"], "lr=5 is outside its self-tuning bounds [1e-05, 0.1]"),
        (
            ["trial", "set", "smoke", "1", "huber_delta=500"],
            "huber_delta=500 is outside its self-tuning bounds [0.05, 100]",
        ),
        (["trial", "set", "smoke", "1", "epsilon=2"], "epsilon=2 is outside [0, 1]"),
        (["trial", "set", "smoke", "1", "lr=fast"], "lr=fast: not a number"),
        (["trial", "set", "smoke", "1"], "set needs at least one name"),
        (["trial", "unfreeze", "smoke", "x", "lr"], "the trial number after the study name 'smoke'"),
        (["trial", "stop", "smoke", "1", "lr"], "stop takes no names"),
        (["trial", "stop", "runs/none"], "runs/none: not a `dqnmap-auto train` output directory"),
        (["study", "logs", "smoke", "1"], "no log for trial 1"),
        (["study", "logs", "smoke", "9"], "has no trial 9"),
    ],
)
def test_bad_commands_exit_2_with_one_line_and_store_nothing(project: Path, argv: list[str], message: str) -> None:
    journal = project / "optuna.journal"
    before = journal.read_bytes()
    code, lines = invoke(project, *argv)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), lines
    assert message in lines[0]
    assert journal.read_bytes() == before


def test_a_good_command_is_stored_for_the_trainer(project: Path) -> None:
    code, lines = invoke(project, "trial", "set", "smoke", "1", "lr=3e-4", "gamma=0.995", "--wait", "0")
    assert code == 0 and lines[0].startswith("sent `set lr=0.0003 gamma=0.995` to trial 1 of study 'smoke'")
    attrs = load_existing(StudyLocation(None, project), "smoke").trials[1].user_attrs
    (stored,) = [v for k, v in attrs.items() if k.startswith(CMD_PREFIX)]
    assert stored["verb"] == "set" and stored["values"] == {"lr": 3e-4, "gamma": 0.995} and stored["via"] == "cli"
    code, lines = invoke(project, "trial", "freeze", "smoke", "1", "huber_delta", "--wait", "0.5")
    assert code == 0 and "not acknowledged within 0.5s" in lines[0]  # nobody runs trial 1 here


def test_study_logs_prints_the_end_of_a_trial_log(project: Path) -> None:
    code, lines = invoke(project, "study", "logs", "smoke", "0", "-n", "2")
    assert code == 0 and lines == ["12:00:03  step 300", "12:00:04  step 400"]
    code, lines = invoke(project, "study", "logs", "smoke", "--follow")  # trial 0 is finished: prints, then ends
    assert code == 0 and lines[-1] == "trial 0: COMPLETE with value 12.50"


def test_a_train_run_is_steered_through_its_output_directory(tmp_path: Path) -> None:
    config = small_config("hd", steps=1500)
    out = tmp_path / "run"
    out.mkdir()
    write_config(out, config)
    controller = Controller(RunDirChannel(out), interval=0.0)
    trainer = Trainer(config, [JsonlWriter(out / "metrics.jsonl"), LogWriter(out / RUN_LOG), controller.callback()])
    trainer.start()
    trainer.train_until(500)
    code, lines = invoke(tmp_path, "trial", "set", str(out), "lr=5e-4", "--wait", "0")
    assert code == 0 and lines[0].startswith(f"sent `set lr=0.0005` to run {out}")
    code, lines = invoke(tmp_path, "trial", "set", str(out), "lr=5")  # checked against the live file's space
    assert code == 2 and "lr=5 is outside its self-tuning bounds" in lines[0]
    code, lines = invoke(tmp_path, "trial", "freeze", str(out), "gamma")
    assert code == 2 and "gamma does not self-tune in this run" in lines[0]
    trainer.train_until(1000)
    (ack,) = [json.loads(line) for line in (out / ACKS_FILE).read_text().splitlines()]
    assert ack["status"] == "applied" and ack["detail"].endswith("-> 0.0005")
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    (control,) = [r for r in records if "control/status" in r]  # flushed at once: readable while training
    assert control["control/id"] == ack["id"] and control["hp/lr"] == pytest.approx(5e-4, rel=1e-6)
    code, lines = invoke(tmp_path, "study", "logs", str(out), "-n", "0")
    assert any("control applied: set lr=0.0005" in line for line in lines)
    trainer.train_until(1500)
    trainer.finish()
    controller.close()
    code, lines = invoke(tmp_path, "trial", "stop", str(out))
    assert code == 2 and "is not running" in lines[0]
