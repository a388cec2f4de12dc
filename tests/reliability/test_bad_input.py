"""A corpus of malformed specs and CLI invocations: each exits with code 2 and one line naming the problem,
with no traceback, and none leaves a study, trial or run behind (or changes one that exists)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner

from dqnmap_auto.cli import main
from dqnmap_auto.tuning.spec import load_study_spec
from dqnmap_auto.tuning.study import StudyLocation, load_existing, run_study
from tests.tuning.helpers import smoke_spec

Case = Callable[[Path, Path], list[str]]  # (tmp dir, project dir) -> argv


def spec_with(**changes: object) -> Case:
    return lambda tmp, project: ["study", "run", str(smoke_spec(tmp, **changes)), "--dir", str(project)]


def run_with(*extra: str) -> Case:
    return lambda tmp, project: ["study", "run", str(smoke_spec(tmp)), "--dir", str(project), *extra]


def raw_file(content: bytes) -> Case:
    def build(tmp: Path, project: Path) -> list[str]:
        path = tmp / "raw.yaml"
        path.write_bytes(content)
        return ["study", "run", str(path), "--dir", str(project)]

    return build


CORPUS: dict[str, tuple[Case, str]] = {
    "unknown env id": (spec_with(env="NoSuchEnv-v0"), "unknown gymnasium environment"),
    "unknown env id via --set": (run_with("--set", "env.id=Nope-v1"), "unknown gymnasium environment 'Nope-v1'"),
    "continuous actions": (run_with("--set", "env.id=Pendulum-v1"), "DQN needs Discrete actions"),
    "unknown hyperparameter": (
        spec_with(search_space={"agent.momentum": {"type": "float", "low": 0, "high": 1}}),
        "study.search_space.agent.momentum",
    ),
    "low > high": (spec_with(search_space={"agent.lr": {"type": "float", "low": 1, "high": 0.1}}), "need low < high"),
    "zero budget": (spec_with(steps=0), "study.steps"),
    "negative n_trials": (run_with("--n-trials", "-1"), "--n-trials must be >= 1"),
    "zero jobs": (run_with("--jobs", "0"), "--jobs must be >= 1"),
    "negative timeout": (run_with("--timeout", "-5"), "--timeout must be > 0"),
    "unknown sampler": (spec_with(sampler={"name": "bayes"}), "study.sampler.name"),
    "unknown pruner": (spec_with(pruner={"name": "early"}), "study.pruner.name"),
    "unknown pruner argument": (
        spec_with(pruner={"name": "median", "args": {"warmup": 3}}),
        "unknown argument(s) ['warmup']",
    ),
    "wrongly typed pruner argument": (
        spec_with(pruner={"name": "median", "args": {"n_warmup_steps": "ten"}}),
        "study.pruner.args (median).n_warmup_steps",
    ),
    "bad storage scheme": (run_with("--storage", "mongodb://x/y"), "unsupported scheme 'mongodb'"),
    "unreachable database": (run_with("--storage", "postgresql://user:s3cret@127.0.0.1:9/db"), "cannot open"),
    "unreachable tracking server": (run_with("--tracking-uri", "http://127.0.0.1:9"), "unreachable"),
    "remote Dask with a local journal": (run_with("--dask", "tcp://127.0.0.1:9"), "needs a database storage"),
    "remote Dask with local tracking": (
        lambda tmp, project: [
            *run_with("--dask", "tcp://127.0.0.1:9")(tmp, project),
            "--storage",
            "postgresql://u@127.0.0.1:9/db",
        ],
        "needs a tracking server",
    ),
    "unreachable Dask scheduler": (
        lambda tmp, project: [
            *run_with("--dask", "tcp://127.0.0.1:9", "--no-tracking")(tmp, project),
            "--storage",
            "postgresql://u@127.0.0.1:9/db",
        ],
        "--dask tcp://127.0.0.1:9: cannot connect",
    ),
    "malformed Dask address": (
        lambda tmp, project: [
            *run_with("--dask", "nonsense://x", "--no-tracking")(tmp, project),
            "--storage",
            "postgresql://u@127.0.0.1:9/db",
        ],
        "--dask nonsense://x",
    ),
    "undecodable YAML": (raw_file(b"\xff\xfe\x00bad"), "cannot read"),
    "invalid YAML": (raw_file(b"study: [unclosed"), "invalid YAML"),
    "empty YAML": (raw_file(b""), "file is empty"),
    "YAML list": (raw_file(b"- 1\n- 2\n"), "expected a mapping"),
    "missing file": (
        lambda tmp, project: ["study", "run", str(tmp / "nope.yaml"), "--dir", str(project)],
        "no such file",
    ),
    "wrong type": (run_with("--set", "agent.batch_size=big"), "agent.batch_size"),
    "--set unknown field": (run_with("--set", "agent.lrr=0.1"), "unknown field 'agent.lrr'"),
    "--set section": (run_with("--set", "agent=3"), "is a section"),
    "zero seeds": (spec_with(seeds=0), "study.seeds"),
    "unknown objective": (spec_with(objective="median"), "study.objective"),
    "unknown study field": (spec_with(trials=3), "study.trials: unknown field"),
    "enqueue outside space": (spec_with(enqueue=[{"agent.gamma": 0.9}]), "study.enqueue.0"),
    "status of missing study": (
        lambda tmp, project: ["study", "status", "nope", "--dir", str(project)],
        "no studies yet",
    ),
    "dashboard without studies": (
        lambda tmp, project: ["dashboard", "--dir", str(project), "--optuna-port", "0"],
        "--optuna-port 0: not a valid port",
    ),
    "train --schedule without schedule": (
        lambda tmp, project: ["train", str(smoke_spec(tmp)), "--schedule", "--out", str(project / "run")],
        "--schedule",
    ),
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_bad_input_exits_2_with_one_line_and_leaves_nothing(tmp_path: Path, name: str) -> None:
    build, message = CORPUS[name]
    project = tmp_path / "project"
    result = CliRunner().invoke(main, build(tmp_path, project))
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert message in lines[0]
    assert "Traceback" not in result.output and "s3cret" not in result.output
    journal = project / "optuna.journal"
    if journal.exists():
        assert (
            optuna.get_all_study_names(
                optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
            )
            == []
        )
    assert not (project / "mlflow.db").exists()
    assert not (project / "run" / "model.pt").exists()


@pytest.fixture(scope="module")
def existing(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("existing")
    location = StudyLocation(None, tmp / "project")
    run_study(
        load_study_spec(smoke_spec(tmp, n_trials=1, pruner={"name": "none"})), location, progress=False, tracking=False
    )
    return tmp, location.directory


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["study", "status", "nope"], "study 'nope' does not exist"),
        (["study", "best", "nope"], "study 'nope' does not exist"),
        (["study", "delete", "nope", "--yes"], "study 'nope' does not exist"),
        (["study", "enqueue", "smoke", "agent.gamma=0.9"], "not in the search space"),
        (["study", "enqueue", "smoke", "agent.lr"], "expected key=value"),
        (["study", "best", "smoke", "--export", "/proc/no/such/dir/best.yaml"], "cannot write"),
        (["study", "best", "smoke", "--export", "{file}"], "already exists; choose another file or pass --overwrite"),
        (["study", "enqueue", "smoke", "agent.lr=5"], "agent.lr=5: outside the search space [0.0001, 0.01]"),
        (["study", "enqueue", "smoke", "agent.lr=fast"], "agent.lr='fast': expected a number"),
        (["study", "enqueue", "smoke", "agent.lr=0.001", "self_tuning.mode=sgd"], "not one of the search space's"),
    ],
)
def test_bad_commands_on_an_existing_study_change_nothing(
    existing: tuple[Path, Path], argv: list[str], message: str
) -> None:
    tmp, project = existing
    location = StudyLocation(None, project)
    before = [(t.number, t.state, t.value) for t in load_existing(location, "smoke").get_trials()]
    kept = tmp / "kept.yaml"  # an existing file that `--export` must not replace
    kept.write_text("mine\n")
    result = CliRunner().invoke(main, [*(str(kept) if a == "{file}" else a for a in argv), "--dir", str(project)])
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and message in result.output
    after = [(t.number, t.state, t.value) for t in load_existing(location, "smoke").get_trials()]
    assert after == before  # no trial enqueued either
    assert kept.read_text() == "mine\n"


def test_port_in_use_is_reported(existing: tuple[Path, Path]) -> None:
    _, project = existing
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["dashboard", "--dir", str(project), "--optuna-port", str(port)])
    assert result.exit_code == 2
    assert f"--optuna-port {port}: already in use" in result.output


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) + 10 + 1 >= 25
