"""Trials per hour with 1 and 2 study workers: local processes (``--jobs 2``) and a Dask LocalCluster (``--dask
local --jobs 2``), against 1 worker.

The same small study (studies/smoke.yaml, CartPole, 3k env steps per trial, tracking on, no pruning so every trial
costs the same) runs with each setup, in fresh project directories, interleaved over ``--rounds`` rounds; the
figures are the median trials per hour and the median of the per-round ratios to 1 worker. The ceiling is the
number of free cores (2 here, shared with whatever else runs). Usage::

    python benchmarks/workers.py            # 8 trials per setup, 3 rounds
    python benchmarks/workers.py --quick    # 4 trials, 1 round
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from _common import RESULTS, ROOT, command_line, results_name, write_report

from dqnmap_auto.tuning.spec import load_study_spec
from dqnmap_auto.tuning.study import StudyLocation, run_study

SETUPS = {"1 worker": (1, None), "2 processes": (2, None), "2 Dask workers": (2, "local")}


def trials_per_hour(n_trials: int, steps: int, jobs: int, dask: str | None, directory: Path) -> float:
    spec = load_study_spec(ROOT / "studies" / "smoke.yaml", overrides=[f"training.total_steps={steps}"])
    spec.study.steps = steps
    spec.study.eval_every = steps // 3
    spec.study.pruner.name = "none"
    spec.study.pruner.args = {}
    started = time.perf_counter()
    summary = run_study(spec, StudyLocation(None, directory), n_trials=n_trials, jobs=jobs, dask=dask, progress=False)
    elapsed = time.perf_counter() - started
    assert summary.n_new == n_trials and summary.complete == n_trials, summary
    return n_trials / elapsed * 3600


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--steps", type=int, default=3000)
    args = parser.parse_args()
    n_trials = args.trials or (4 if args.quick else 8)
    rounds = args.rounds or (1 if args.quick else 3)
    rates: dict[str, list[float]] = {name: [] for name in SETUPS}
    loads = []
    with tempfile.TemporaryDirectory(prefix="dqnmap-workers-") as tmp:
        for round_index in range(rounds):
            for name, (jobs, dask) in SETUPS.items():
                directory = Path(tmp) / f"{round_index}-{jobs}-{dask}"
                rates[name].append(trials_per_hour(n_trials, args.steps, jobs, dask, directory))
                loads.append(os.getloadavg()[0])
                print(f"[{round_index + 1}/{rounds}] {name}: {rates[name][-1]:.0f} trials/h", flush=True)
    lines = [
        f"# Study workers: trials per hour, {n_trials} trials x {args.steps} env steps per setup, {rounds} round(s)",
        "",
        f"Command: `{command_line()}`; machine: 2-core shared CPU "
        f"(1-min load average during the run: {min(loads):.1f}-{max(loads):.1f}).",
        "",
        "| setup | trials/hour (median) | every round | ratio to 1 worker (median of rounds) |",
        "|---|---|---|---|",
    ]
    for name, values in rates.items():
        ratios = [v / one for v, one in zip(values, rates["1 worker"], strict=True)]
        lines.append(
            f"| {name} | {statistics.median(values):.0f} | {', '.join(f'{v:.0f}' for v in values)} | "
            f"{statistics.median(ratios):.2f} |"
        )
    write_report(RESULTS / f"{results_name('workers', quick=args.quick)}.md", lines)


if __name__ == "__main__":
    main()
