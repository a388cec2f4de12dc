"""Live control: what polling costs a trial, and how long a command takes to apply, on the journal and PostgreSQL.

**Overhead.** One trial (studies/cartpole.yaml base: rl-zoo3's settings, hd self-tuning, fixed seed) runs through
the Optuna objective with live control off and on, interleaved ``--repeats`` times per storage. Three figures: the
ratio of the median wall times (on / off: noisy on a shared machine); the time the training thread spends inside
the control callback (every phase-boundary check) as a share of the controlled trial's wall time; and the CPU time
of the reader thread (the storage read, at most once a second, off the training thread) as a share of the same wall
time: what it could take from training if both shared one core. Target: at most 1%.

**Latency.** A `dqnmap-auto study run` subprocess (one trial, a budget it never reaches) is steered from this
process with the library call behind `dqnmap-auto trial set`: ``--commands`` commands ``set lr=...`` (values
inside the bounds) at random intervals of 0.5-2.5 s, then ``stop``. Two trials: the CartPole one above (a training
phase is 256 env steps) and studies/smoke.yaml's (16 env steps). The trainer's control records give the latency
from the command being stored to it being applied, in seconds and in env steps; the sender's round trip (stored ->
acknowledgement read back from the storage, polled every 0.2 s) is given too.

PostgreSQL is a local server with its default (durable) settings, started with the tests' fixture. Each part
writes its own report (``control-overhead.md``, ``control-latency.md``). Usage::

    python benchmarks/control_overhead.py                  # both parts: 30k env steps x 3 repeats, 20 commands
    python benchmarks/control_overhead.py --only latency   # one part
    python benchmarks/control_overhead.py --quick          # 5k env steps, 1 repeat, 5 commands
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import yaml
from _common import RESULTS, ROOT, report_header, results_name, timed, write_report

from dqnmap_auto.control.callback import ControlCallback, Controller
from dqnmap_auto.control.channels import SPACE_ATTR
from dqnmap_auto.control.commands import build
from dqnmap_auto.control.send import send_to_trial
from dqnmap_auto.logs import trial_log_dir
from dqnmap_auto.tuning.location import StudyLocation, load_existing
from dqnmap_auto.tuning.objective import TrialObjective
from dqnmap_auto.tuning.spec import load_study_spec

sys.path.insert(0, str(ROOT))  # the PostgreSQL fixture of the tests
from tests.servers.postgres import create_database, postgres_available, postgres_server

optuna.logging.set_verbosity(optuna.logging.WARNING)
RL_ZOO = {"agent.lr": 2.3e-3, "agent.batch_size": 64, "agent.exploration_fraction": 0.16, "self_tuning.mode": "hd"}
#: The trials steered for the latency: spec, the enqueued parameters, env steps per training phase.
LATENCY_TRIALS = {
    "cartpole": ("cartpole.yaml", RL_ZOO, 256),
    "smoke": ("smoke.yaml", {"agent.lr": 1e-3, "self_tuning.mode": "hd"}, 16),
}
CONTROL_SECONDS = [0.0]
READER = [0.0, 0]  # CPU seconds of the reader thread, reads


# Everything live control does inside a trial: publishing the space at the start, every phase-boundary check
# (with its storage reads, at most once a second), and the end.
ControlCallback.on_start = timed(ControlCallback.on_start, CONTROL_SECONDS)  # type: ignore[method-assign]
ControlCallback.on_phase = timed(ControlCallback.on_phase, CONTROL_SECONDS)  # type: ignore[method-assign]
ControlCallback.on_end = timed(ControlCallback.on_end, CONTROL_SECONDS)  # type: ignore[method-assign]
_close = Controller.close


def _close_and_count(self: Controller) -> None:
    reading = self._thread is not None  # (closed twice: by the last seed's end and by the objective)
    _close(self)  # joins the reader thread: its CPU time is final
    if reading:
        READER[0] += self.read_seconds
        READER[1] += self.reads


Controller.close = _close_and_count  # type: ignore[method-assign]


@contextlib.contextmanager
def storages(directory: Path, with_postgres: bool) -> Iterator[dict[str, str]]:
    """name -> storage URL (a journal path, or a PostgreSQL database on a throwaway local server)."""
    found = {"journal": str(directory / "bench.journal")}
    if not with_postgres:
        yield found
        return
    with postgres_server(durable=True) as server:
        found["postgresql"] = create_database(server)
        yield found


def open_storage(url: str) -> optuna.storages.BaseStorage:
    if "://" in url:
        return optuna.storages.RDBStorage(url)
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(url))


def one_trial(url: str, steps: int, *, controlled: bool) -> tuple[float, float, float, int]:
    """(wall seconds, seconds inside the control callback, reader thread CPU seconds, reads) of one trial."""
    spec = load_study_spec(ROOT / "studies" / "cartpole.yaml", overrides=[f"training.total_steps={steps}"])
    spec.study.steps, spec.study.eval_every = steps, max(steps // 5, 1)
    study = optuna.create_study(
        storage=open_storage(url), study_name=f"bench-{controlled}-{time.time_ns()}", direction="maximize"
    )
    study.enqueue_trial(RL_ZOO)
    objective = TrialObjective(spec, live_control=controlled)
    CONTROL_SECONDS[0], READER[0], READER[1] = 0.0, 0.0, 0
    started = time.perf_counter()
    study.optimize(objective, n_trials=1)
    return time.perf_counter() - started, CONTROL_SECONDS[0], READER[0], int(READER[1])


def overhead(urls: dict[str, str], steps: int, repeats: int) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, url in urls.items():
        one_trial(url, 2_000, controlled=True)  # warm-up: imports, tables
        times: dict[bool, list[float]] = {False: [], True: []}
        shares, reader_shares, reads_per_second = [], [], []
        for repeat in range(repeats):
            for controlled in (False, True):
                wall, inside, reader, reads = one_trial(url, steps, controlled=controlled)
                times[controlled].append(wall)
                if controlled:
                    shares.append(inside / wall)
                    reader_shares.append(reader / wall)
                    reads_per_second.append(reads / wall)
                state = "on " if controlled else "off"
                print(f"[{name} {repeat + 1}/{repeats}] control {state}: {wall:.1f}s", flush=True)
        out[name] = {
            "off": statistics.median(times[False]),
            "on": statistics.median(times[True]),
            "share": statistics.median(shares),
            "shares": shares,
            "reader": statistics.median(reader_shares),
            "readers": reader_shares,
            "reads_per_second": statistics.median(reads_per_second),
        }
    return out


def latency_spec(directory: Path, trial: str) -> Path:
    spec, params, _ = LATENCY_TRIALS[trial]
    data = yaml.safe_load((ROOT / "studies" / spec).read_text())
    data["training"]["total_steps"] = 5_000_000
    data["study"].update(
        name=f"latency-{trial}",  # (the PostgreSQL database is shared by the runs)
        n_trials=1,
        steps=5_000_000,
        eval_every=1_000_000,
        pruner={"name": "none"},
        enqueue=[params],
    )
    path = directory / f"latency-{trial}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def latency(url: str, trial: str, directory: Path, n_commands: int, seed: int) -> dict[str, Any]:
    """Steer a `study run` subprocess with ``n_commands`` sets; the figures from its control records."""
    project = directory / f"latency-{time.time_ns()}"
    location = StudyLocation(url if "://" in url else None, project)
    storage = ["--storage", url] if "://" in url else []
    command = [sys.executable, "-m", "dqnmap_auto.cli", "study", "run", str(latency_spec(directory, trial))]
    proc = subprocess.Popen(
        [*command, "--dir", str(project), "--no-progress", "--no-tracking", *storage],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    rng = random.Random(seed)
    round_trips = []
    try:
        deadline = time.time() + 600
        while True:
            assert proc.poll() is None and time.time() < deadline, "the study run ended or did not start"
            with contextlib.suppress(Exception):
                trials = load_existing(location, f"latency-{trial}").get_trials()
                if trials and SPACE_ATTR in trials[0].user_attrs:
                    break
            time.sleep(0.5)
        time.sleep(3)  # past learning_starts: phases take their full time
        study = load_existing(location, f"latency-{trial}")
        for index in range(n_commands):
            time.sleep(rng.uniform(0.5, 2.5))
            command = build("set", [f"lr={(1e-3, 2e-3)[index % 2]}"], via="bench")
            started = time.perf_counter()
            delivery = send_to_trial(study, 0, command, wait=30)
            assert delivery.ack is not None and delivery.ack["status"] == "applied", delivery
            round_trips.append(time.perf_counter() - started)
        send_to_trial(study, 0, build("stop", [], via="bench"), wait=0)
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    metrics = trial_log_dir(project, f"latency-{trial}", 0) / "metrics.jsonl"
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    sets = [r for r in rows if r.get("control/via") == "bench" and r["control/command"].startswith("set")]
    sps = [r["sps"] for r in rows if "sps" in r and r["step"] >= sets[0]["step"]]  # while commands came
    return {
        "n": len(sets),
        "seconds": statistics.median(r["control/latency_s"] for r in sets),
        "seconds_max": max(r["control/latency_s"] for r in sets),
        "steps": statistics.median(r["control/latency_steps"] for r in sets if "control/latency_steps" in r),
        "round_trip": statistics.median(round_trips),
        "sps": statistics.median(sps),
    }


def overhead_report(cost: dict[str, dict[str, Any]], steps: int, repeats: int, quick: bool) -> None:
    lines = report_header(
        "Live control: polling overhead",
        quick=quick,
        notes=[
            f"One CartPole trial (rl-zoo3 settings, hd), {steps} env steps, median of {repeats}, live control off/on "
            "interleaved"
        ],
    )
    lines += [
        "| storage | trial off (s) | trial on (s) | on/off | training thread in live control "
        "| reader thread CPU | reads/s | target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in cost.items():
        rounds = ", ".join(f"{x * 100:.3f}%" for x in row["shares"])
        reader_rounds = ", ".join(f"{x * 100:.2f}%" for x in row["readers"])
        lines.append(
            f"| {name} | {row['off']:.1f} | {row['on']:.1f} | {(row['on'] / row['off'] - 1) * 100:+.1f}% "
            f"| **{row['share'] * 100:.3f}%** ({rounds}) | **{row['reader'] * 100:.2f}%** ({reader_rounds}) "
            f"| {row['reads_per_second']:.2f} | <= 1% |"
        )
    lines += [
        "",
        "on/off compares two wall times on a shared machine (mostly noise at this size); the two shares are measured "
        "within the controlled run itself (percent of its wall time). The reader thread reads once a second whatever "
        "the load, so its share is its CPU time per read (reader share / reads per second) per second of trial.",
    ]
    write_report(RESULTS / f"{results_name('control-overhead', quick=quick)}.md", lines)


def latency_report(lat: dict[tuple[str, str], dict[str, Any]], n_commands: int, quick: bool) -> None:
    lines = report_header(
        "Live control: command latency",
        quick=quick,
        notes=[f"{n_commands} `set lr` commands at random 0.5-2.5 s intervals to a running trial"],
    )
    lines += [
        "| trial (env steps per phase) | storage | commands | median latency (s) | max (s) "
        "| median latency (env steps) | sender round trip (s) | trainer env steps/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (trial, name), row in lat.items():
        lines.append(
            f"| {trial} ({LATENCY_TRIALS[trial][2]}) | {name} | {row['n']} | **{row['seconds']:.2f}** "
            f"| {row['seconds_max']:.2f} | **{row['steps']:.0f}** | {row['round_trip']:.2f} | {row['sps']:.0f} |"
        )
    lines += [
        "",
        "Latency: from the command being stored to the phase boundary where the trainer applied it. The worker reads "
        "at most once a second (on a background thread) and the trainer applies at its next training-phase "
        "boundary, so the latency is about half a second plus half a phase; env steps by interpolating the trainer's "
        "step over time. Sender round trip: from storing to reading the acknowledgement back (polled every 0.2 s).",
    ]
    write_report(RESULTS / f"{results_name('control-latency', quick=quick)}.md", lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=["overhead", "latency"], default=None, help="Run one part.")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--commands", type=int, default=None)
    parser.add_argument("--no-postgres", action="store_true", help="The journal file only.")
    args = parser.parse_args()
    steps = args.steps or (5_000 if args.quick else 30_000)
    repeats = args.repeats or (1 if args.quick else 3)
    n_commands = args.commands or (5 if args.quick else 20)
    with_postgres = postgres_available() and not args.no_postgres
    with tempfile.TemporaryDirectory() as tmp, storages(Path(tmp), with_postgres) as urls:
        if args.only in (None, "latency"):
            lat = {
                (trial, name): latency(url, trial, Path(tmp), n_commands, seed=1)
                for trial in LATENCY_TRIALS
                for name, url in urls.items()
            }
            latency_report(lat, n_commands, args.quick)
        if args.only in (None, "overhead"):
            overhead_report(overhead(urls, steps, repeats), steps, repeats, args.quick)


if __name__ == "__main__":
    main()
