"""``dqnmap-auto train``: the files it writes, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from dqnmap_auto.cli import main
from dqnmap_auto.config import load_train_config
from dqnmap_auto.run_dir import load_model_state

CARTPOLE = str(Path(__file__).resolve().parent.parent / "studies" / "cartpole.yaml")
FAST = [
    "--steps",
    "600",
    "--set",
    "agent.net_arch=[16]",
    "--set",
    "agent.learning_starts=100",
    "--set",
    "agent.train_freq=8",
    "--set",
    "agent.gradient_steps=4",
    "--set",
    "training.eval_every=300",
    "--set",
    "training.eval_episodes=2",
    "--set",
    "training.final_eval_episodes=2",
    "--set",
    "training.log_every=100",
    "--no-progress",
]


def test_train_writes_model_metrics_eval_and_config(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", CARTPOLE, "--seed", "3", "--out", str(out), *FAST])
    assert result.exit_code == 0, result.output
    assert "final eval" in result.output and "self-tuned: lr" in result.output
    state = load_model_state(out / "model.pt")
    assert "head.weight" in state
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("hp/gamma" in r for r in records) and any("eval_return" in r for r in records)
    evaluation = json.loads((out / "eval.json").read_text())
    assert {"mean", "std", "returns"} <= set(evaluation) and len(evaluation["returns"]) == 2
    assert "solved_at" not in evaluation and "stopped at step" not in result.output  # no stop_at_return set
    config = load_train_config(out / "config.yaml")
    assert config.training.seed == 3 and config.training.total_steps == 600 and config.agent.net_arch == [16]


def test_a_run_stopped_at_stop_at_return_says_where(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["train", CARTPOLE, "--out", str(out), *FAST, "--set", "training.stop_at_return=0"]
    result = CliRunner().invoke(main, args)  # every CartPole return is >= 0: the first evaluation ends the run
    assert result.exit_code == 0, result.output
    assert "stopped at step 300 of 600" in result.output
    assert json.loads((out / "eval.json").read_text())["solved_at"] == 300
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in records) == 300


def test_existing_run_is_not_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text("precious\n")
    result = CliRunner().invoke(main, ["train", CARTPOLE, "--out", str(out), *FAST])
    assert result.exit_code == 2
    assert "already holds a run" in result.output
    assert (out / "metrics.jsonl").read_text() == "precious\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "agent.lrr=1"], "unknown field 'agent.lrr'"),
        (["--set", "agent.lr=-1"], "agent.lr"),
        (["--set", "env.id=NoSuchEnv-v9"], "unknown gymnasium environment 'NoSuchEnv-v9'"),
        (["--set", "env.id=Pendulum-v1"], "DQN needs Discrete actions"),
        (["--steps", "0"], "training.total_steps"),
        (["--set", "self_tuning.params=[lr, beta]"], "unknown hyperparameter"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", CARTPOLE, "--out", str(out), *args, "--no-progress"])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (out / "model.pt").exists()


def test_missing_and_empty_files(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(main, ["train", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "no such file" in missing.output
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    result = runner.invoke(main, ["train", str(empty)])
    assert result.exit_code == 2 and "file is empty" in result.output


def test_console_script_reports_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"agent": {"gamma": 2}}))
    proc = subprocess.run(
        [sys.executable, "-m", "dqnmap_auto.cli", "train", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("error: agent.gamma")


def test_a_self_tuned_tau_of_1_is_announced_once(tmp_path: Path) -> None:
    """tau 1 (a hard copy) self-tunes from 0.999, its bound: the command says so, once. (tau self-tunes only
    under the polyak lookahead, the only one that gives it a gradient.)"""
    polyak = ["--set", "self_tuning.lookahead_target=polyak"]
    meta = [*FAST, *polyak, "--set", "self_tuning.mode=meta", "--set", "self_tuning.params=[gamma,tau]"]
    result = CliRunner().invoke(main, ["train", CARTPOLE, *meta, "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    notes = [line for line in result.output.splitlines() if line.startswith("note:")]
    assert notes == [
        "note: agent.tau 1 self-tunes within self_tuning.bounds.tau [0.01, 0.999], so it starts at 0.999: a Polyak "
        "update, not the hard copy tau 1 means (leave tau out of self_tuning.params to keep it)"
    ]
    untuned = [*FAST, "--set", "self_tuning.mode=meta", "--set", "self_tuning.params=[gamma]"]
    result = CliRunner().invoke(main, ["train", CARTPOLE, *untuned, "--out", str(tmp_path / "b")])
    assert result.exit_code == 0 and "note:" not in result.output, result.output


def test_study_run_announces_the_clamped_tau_once_not_per_trial(tmp_path: Path) -> None:
    from tests.tuning.helpers import smoke_spec

    tau_tuned = {"mode": "meta", "params": ["gamma", "tau"], "lookahead_target": "polyak"}
    spec = smoke_spec(
        tmp_path,
        n_trials=2,
        steps=300,
        eval_every=300,
        search_space={"agent.lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-2, "log": True}},  # both trials meta
        base={"training": {"total_steps": 300}, "self_tuning": tau_tuned},
    )
    argv = ["study", "run", str(spec), "--dir", str(tmp_path / "p"), "--no-tracking", "--no-progress"]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 0, result.output
    assert result.output.count("note: agent.tau 1 self-tunes") == 1


def test_the_progress_bar_ends_on_the_final_evaluation(tmp_path: Path) -> None:
    import io

    from dqnmap_auto.callbacks import ProgressBar
    from dqnmap_auto.config import load_train_config
    from dqnmap_auto.trainer import Trainer

    config = load_train_config(CARTPOLE, overrides=[*(a for a in FAST[2:-1] if a != "--set")], steps=600)
    screen = io.StringIO()
    result = Trainer(config, [ProgressBar(file=screen)]).run()
    last = screen.getvalue().replace("\r", "\n").strip().splitlines()[-1]
    assert f"eval={result.final_eval.mean:.1f}" in last, last
