"""Wall-time overhead of tracking (MLflow child run + optuna-dashboard note/artifacts) on one trial.

The same trial (studies/cartpole.yaml base, rl-zoo3 settings, fixed seed, meta self-tuning) runs through the
Optuna objective with tracking off and on, interleaved ``--repeats`` times. Two figures: the ratio of the median
wall times (noisy on a shared machine), and the time spent inside the tracking code (run creation, per-record
buffering and batched sends, final artifacts/plots/model/note) as a share of the tracked trial's wall time,
measured within the same run. Target: at most 3%. Usage::

    python benchmarks/tracking_overhead.py            # 50k env steps per trial, 3 repeats
    python benchmarks/tracking_overhead.py --quick    # 5k env steps, 1 repeat
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import optuna
from _common import RESULTS, ROOT, timed

from dqnmap_auto.tracking.dashboard_notes import artifact_dir
from dqnmap_auto.tracking.mlflow_tracker import TrialRun, default_tracking_uri, finish_study_run, start_study_run
from dqnmap_auto.tracking.trial_tracking import TrackingSettings, TrialTracking
from dqnmap_auto.tuning.objective import TrialObjective
from dqnmap_auto.tuning.spec import load_study_spec

TRACKING_SECONDS = [0.0]


# Every place where a trial spends time on tracking: run creation, each record, the final upload.
TrialRun.__init__ = timed(TrialRun.__init__, TRACKING_SECONDS)  # type: ignore[method-assign]
TrialRun.add = timed(TrialRun.add, TRACKING_SECONDS)  # type: ignore[method-assign]
TrialTracking.finish = timed(TrialTracking.finish, TRACKING_SECONDS)  # type: ignore[method-assign]


def one_trial(steps: int, *, tracked: bool, directory: Path) -> float:
    spec = load_study_spec(ROOT / "studies" / "cartpole.yaml", overrides=[f"training.total_steps={steps}"])
    spec.study.steps = steps
    spec.study.eval_every = max(steps // 5, 1)
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(directory / "j.log")))
    study = optuna.create_study(
        storage=storage,
        study_name=f"bench-{tracked}-{time.time()}",
        direction="maximize",
        pruner=optuna.pruners.NopPruner(),
    )
    study.enqueue_trial(
        {
            "agent.lr": 2.3e-3,
            "agent.batch_size": 64,
            "agent.exploration_fraction": 0.16,
            "self_tuning.params": "lr,gamma,huber_delta",
            "self_tuning.mode": "meta",
            "self_tuning.meta_lr": 0.01,
        }
    )
    settings = None
    if tracked:
        context = start_study_run(
            study_name=study.study_name,
            tracking_uri=default_tracking_uri(directory),
            directory=directory,
            storage=str(directory / "j.log"),
            spec_path=spec.source,
            spec_params={"study": spec.study.model_dump(mode="json")},
        )
        settings = TrackingSettings(mlflow=context, artifact_dir=artifact_dir(directory))
    objective = TrialObjective(spec, observer_factory=settings.observer if settings else None)
    TRACKING_SECONDS[0] = 0.0
    started = time.perf_counter()
    study.optimize(objective, n_trials=1)
    elapsed = time.perf_counter() - started
    if tracked:
        SHARES.append(TRACKING_SECONDS[0] / elapsed)
    if settings is not None and settings.mlflow is not None:
        finish_study_run(settings.mlflow, study)
    return elapsed


SHARES: list[float] = []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    steps = args.steps or (5_000 if args.quick else 50_000)
    repeats = args.repeats or (1 if args.quick else 3)
    times: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        one_trial(2_000, tracked=True, directory=Path(tmp))  # warm-up: imports, MLflow store creation
        for repeat in range(repeats):
            for tracked in (False, True):
                times[tracked].append(one_trial(steps, tracked=tracked, directory=Path(tmp)))
                print(
                    f"[{repeat + 1}/{repeats}] tracking {'on ' if tracked else 'off'}: {times[tracked][-1]:.1f}s",
                    flush=True,
                )
    off, on = statistics.median(times[False]), statistics.median(times[True])
    report = (
        f"# Tracking overhead: one CartPole trial, {steps} env steps, median of {repeats}\n\n"
        "| tracking | trial wall time (s) |\n|---|---|\n"
        f"| off | {off:.1f} |\n| on (MLflow + optuna-dashboard) | {on:.1f} |\n\n"
        f"Wall-time difference on/off: {(on / off - 1) * 100:+.1f}% (two noisy wall times: mostly noise here)\n\n"
        f"Time inside the tracking code, as a share of the tracked trial's wall time (same run, so not "
        f"affected by machine load): **{statistics.median(SHARES[1:]) * 100:.2f}%** "
        f"(rounds: {', '.join(f'{x * 100:.2f}%' for x in SHARES[1:])}; target <= 3%)\n"
    )
    print(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / ("tracking-overhead-quick.md" if args.quick else "tracking-overhead.md")).write_text(report)


if __name__ == "__main__":
    main()
