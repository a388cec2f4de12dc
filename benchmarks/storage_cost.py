"""Storage cost per trial as a study grows to 1,000 trials: SQLite, the journal file, PostgreSQL.

Each simulated trial makes the storage traffic of a real dqnmap-auto trial without the training: the stale-trial
scan at its start, host/pid attributes, four suggested parameters, ten reported evaluations with a pruning check
each, and the outcome attributes (returns, hyperparameter trajectory). Sampler: random, pruner: median (it reads
the finished trials at every check). The table gives the wall time per trial over windows of the study's life,
the time to load the study and read all its trials at the end, and bytes per trial on disk. The backends grow
interleaved, 10% of the trials at a time, so all see the same machine load; PostgreSQL is a local server with its
default (durable) settings, started with the tests' fixture. Usage::

    python benchmarks/storage_cost.py              # 1,000 trials per backend
    python benchmarks/storage_cost.py --quick      # 100 trials
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
from _common import RESULTS, ROOT, command_line, results_name, write_report

from dqnmap_auto.tuning.recovery import recover_stale_trials
from dqnmap_auto.tuning.storage import open_storage

sys.path.insert(0, str(ROOT))  # the PostgreSQL fixture of the tests
from tests.servers.postgres import create_database, postgres_available, postgres_server

optuna.logging.set_verbosity(optuna.logging.WARNING)
EVALUATIONS = 10


def simulated_trial(trial: optuna.Trial) -> float:
    """The storage traffic of one dqnmap-auto trial (see TrialObjective and recovery.Heartbeat)."""
    recover_stale_trials(trial.study, grace=60)
    trial.set_user_attr("dqnmap.host", socket.gethostname())
    trial.set_user_attr("dqnmap.pid", 12345)
    lr = trial.suggest_float("agent.lr", 1e-5, 1e-2, log=True)
    trial.suggest_categorical("agent.batch_size", [32, 64, 128, 256])
    trial.suggest_float("agent.exploration_fraction", 0.05, 0.5)
    trial.suggest_categorical("self_tuning.mode", ["hd", "meta"])
    value = 0.0
    for index in range(EVALUATIONS):
        value = 500 * (1 - (1 - lr * 50) ** (index + 1)) if lr < 0.02 else 9.0
        trial.report(value, (index + 1) * 10_000)
        trial.should_prune()  # read, but every trial completes: the study grows to the full size
    trial.set_user_attr("seed_returns", [value])
    trial.set_user_attr("env_steps", 100_000)
    trial.set_user_attr("hp_initial", {"lr": lr, "gamma": 0.99})
    trial.set_user_attr("hp_final", {"lr": lr / 3, "gamma": 0.985})
    trial.set_user_attr("hp_trajectory", {"step": list(range(0, 100_000, 2_000)), "lr": [lr] * 50})
    return value


@contextlib.contextmanager
def backends(directory: Path, with_postgres: bool) -> Iterator[dict[str, tuple[str, Path | None]]]:
    """name -> (storage URL or journal path, file whose size is the store's size)."""
    found: dict[str, tuple[str, Path | None]] = {
        "sqlite": (f"sqlite:///{directory / 'optuna.db'}", directory / "optuna.db"),
        "journal file": (str(directory / "optuna.journal"), directory / "optuna.journal"),
    }
    if not with_postgres:
        yield found
        return
    with postgres_server(durable=True) as server:
        found["postgresql"] = (create_database(server), None)
        yield found


def postgres_bytes(url: str) -> int:
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    with engine.connect() as connection:
        size = connection.execute(sqlalchemy.text("SELECT pg_database_size(current_database())")).scalar()
    engine.dispose()
    return int(size or 0)


class Backend:
    """One storage under test: its study, the end time of every trial, and how to read its size."""

    def __init__(self, url: str, size_file: Path | None) -> None:
        self.url, self.size_file = url, size_file
        self.study = optuna.create_study(
            storage=open_storage(url, Path(".")),
            study_name="bench",
            direction="maximize",
            sampler=optuna.samplers.RandomSampler(seed=0),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=5),
        )
        self.empty_bytes = self.size()
        self.seconds: list[float] = []  # wall time of each trial, in order

    def size(self) -> int:
        if self.size_file is None:
            return postgres_bytes(self.url)
        return self.size_file.stat().st_size if self.size_file.exists() else 0

    def run(self, n_trials: int) -> None:
        last = [time.perf_counter()]

        def timed(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            now = time.perf_counter()
            self.seconds.append(now - last[0])
            last[0] = now

        self.study.optimize(simulated_trial, n_trials=n_trials, callbacks=[timed])

    def figures(self, windows: list[tuple[int, int]]) -> dict[str, float]:
        figures = {
            f"ms/trial {first}-{last}": sum(self.seconds[first - 1 : last]) / (last - first + 1) * 1000
            for first, last in windows
        }
        started = time.perf_counter()
        fresh = optuna.load_study(study_name="bench", storage=open_storage(self.url, Path(".")))
        n_trials = len(fresh.get_trials(deepcopy=False))
        figures[f"load + get_trials at {n_trials} (ms)"] = (time.perf_counter() - started) * 1000
        figures["bytes/trial"] = (self.size() - self.empty_bytes) / n_trials
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--trials", type=int, default=None)
    args = parser.parse_args()
    n_trials = args.trials or (100 if args.quick else 1000)
    windows = [
        (1, n_trials // 10),
        (n_trials // 2 - n_trials // 10 + 1, n_trials // 2),
        (n_trials - n_trials // 10 + 1, n_trials),
    ]
    with (
        tempfile.TemporaryDirectory(prefix="dqnmap-storage-") as tmp,
        backends(Path(tmp), postgres_available()) as found,
    ):
        under_test = {name: Backend(url, size_file) for name, (url, size_file) in found.items()}
        chunk = max(n_trials // 10, 1)
        for done in range(0, n_trials, chunk):  # interleaved in chunks: all backends see the same machine load
            for backend in under_test.values():
                backend.run(min(chunk, n_trials - done))
            print(f"{done + chunk}/{n_trials} trials per backend", flush=True)
        results = {name: backend.figures(windows) for name, backend in under_test.items()}
    columns = list(next(iter(results.values())))
    lines = [
        f"# Storage cost per trial, study grown to {n_trials} trials",
        "",
        f"Command: `{command_line()}`; machine: 2-core shared CPU, "
        "local disk; PostgreSQL 15 on loopback with default (durable) settings.",
        "",
        "| storage | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for name, figures in results.items():
        lines.append(
            f"| {name} | "
            + " | ".join(f"{figures[c]:.1f}" if "ms" in c else f"{figures[c]:.0f}" for c in columns)
            + " |"
        )
    sqlite = results["sqlite"][columns[2]]
    lines += [
        "",
        "Late-window cost relative to SQLite: "
        + ", ".join(f"{n} {f[columns[2]] / sqlite:.2f}" for n, f in results.items()),
    ]
    write_report(RESULTS / f"{results_name('storage-cost', quick=args.quick)}.md", lines)


if __name__ == "__main__":
    main()
