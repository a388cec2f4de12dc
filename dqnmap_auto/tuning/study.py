"""Study lifecycle on top of Optuna: create or continue, run with N worker processes, inspect, delete.

Several workers are separate processes (``multiprocessing`` spawn) that each call ``study.optimize`` on the
same storage: Optuna coordinates them through the storage (the journal file by default), and the parent only
watches the storage to draw the progress bar.
"""

from __future__ import annotations

import multiprocessing
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
from tqdm.auto import tqdm

from dqnmap_auto.errors import ConfigError
from dqnmap_auto.tracking.dashboard_notes import artifact_dir
from dqnmap_auto.tracking.mlflow_tracker import (
    check_reachable,
    default_tracking_uri,
    finish_study_run,
    start_study_run,
)
from dqnmap_auto.tracking.trial_tracking import TrackingSettings
from dqnmap_auto.tuning.objective import TrialObjective
from dqnmap_auto.tuning.recovery import recover_stale_trials
from dqnmap_auto.tuning.spec import StudySpec, build_pruner, build_sampler, load_study_spec
from dqnmap_auto.tuning.storage import describe_storage, open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPEC_ATTR = "spec"  # the spec's YAML text, stored on the study so `best --export` and `enqueue` can use it


@dataclass(frozen=True)
class StudyLocation:
    """Where a study lives: a storage URL (None: the project's journal) and the project directory."""

    storage: str | None
    directory: Path

    def open(self, *, create: bool = False) -> optuna.storages.BaseStorage:
        return open_storage(self.storage, self.directory, create=create)

    def describe(self) -> str:
        return describe_storage(self.storage, self.directory)


def create_or_continue(
    spec: StudySpec, location: StudyLocation, *, name: str | None = None, worker: int = 0
) -> optuna.Study:
    """Create the study, or load it with the spec's sampler and pruner if it already exists."""
    sampler_seed = spec.base.training.seed + worker if "seed" not in spec.study.sampler.args else None
    sampler = build_sampler(spec.study.sampler, seed=sampler_seed)
    if worker and "seed" in spec.study.sampler.args:  # same seed in every worker would repeat suggestions
        sampler = build_sampler(
            spec.study.sampler.model_copy(
                update={"args": {**spec.study.sampler.args, "seed": spec.study.sampler.args["seed"] + worker}}
            )
        )
    study = optuna.create_study(
        study_name=name or spec.name,
        storage=location.open(create=True),
        sampler=sampler,
        pruner=build_pruner(spec.study.pruner),
        direction="maximize",
        load_if_exists=True,
    )
    if SPEC_ATTR not in study.user_attrs:  # a new study
        study.set_user_attr(SPEC_ATTR, Path(spec.source).read_text(encoding="utf-8"))
        with warnings.catch_warnings():  # experimental since Optuna 3.2, stable in practice
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([spec.study.metric_name])
        for params in spec.study.enqueue:
            study.enqueue_trial(params, skip_if_exists=True)
    return study


def load_existing(location: StudyLocation, name: str) -> optuna.Study:
    """Load a study that must exist; the error lists the ones that do."""
    storage = location.open(create=False)
    names = optuna.get_all_study_names(storage)
    if name not in names:
        known = ", ".join(sorted(names)) or "none"
        raise ConfigError(f"study {name!r} does not exist in {location.describe()} (studies: {known})")
    return optuna.load_study(study_name=name, storage=storage)


def _worker(
    tracking: TrackingSettings | None,
    spec_path: str,
    overrides: list[str],
    location: StudyLocation,
    name: str | None,
    n_trials: int | None,
    timeout: float | None,
    worker: int,
) -> None:
    """Body of one worker process."""
    spec = load_study_spec(spec_path, overrides=overrides)
    study = create_or_continue(spec, location, name=name, worker=worker)
    study.optimize(
        make_objective(spec, study, location, tracking),
        n_trials=n_trials,
        timeout=timeout,
        gc_after_trial=True,
    )


@dataclass
class RunSummary:
    study_name: str
    n_new: int
    complete: int
    pruned: int
    failed: int
    best_value: float | None
    best_number: int | None
    seconds: float


class TrialProgress:
    """Progress bar over the trials of this run: best value so far, pruned and failed counts."""

    def __init__(self, total: int | None, already: int, *, enabled: bool) -> None:
        self.already = already
        self.bar = tqdm(total=total, desc="trials", unit="trial", disable=not enabled, dynamic_ncols=True)

    def update(self, study: optuna.Study) -> None:
        trials = study.get_trials(deepcopy=False)[self.already :]
        finished = [t for t in trials if t.state.is_finished()]
        states = [t.state for t in finished]
        self.bar.n = len(finished)
        best = _best_value(study)
        self.bar.set_postfix(
            best=f"{best:.1f}" if best is not None else "-",
            pruned=states.count(optuna.trial.TrialState.PRUNED),
            failed=states.count(optuna.trial.TrialState.FAIL),
            refresh=False,
        )
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def _best_value(study: optuna.Study) -> float | None:
    try:
        return study.best_value
    except ValueError:
        return None


def run_study(
    spec: StudySpec,
    location: StudyLocation,
    *,
    name: str | None = None,
    n_trials: int | None = None,
    timeout: float | None = None,
    jobs: int = 1,
    overrides: list[str] | tuple[str, ...] = (),
    progress: bool = True,
    tracking: bool = True,
    tracking_uri: str | None = None,
) -> RunSummary:
    """Run ``n_trials`` more trials (or until ``timeout``) with ``jobs`` worker processes.

    With ``tracking`` (the default), the invocation is a parent MLflow run (``tracking_uri``, default: SQLite in
    the project directory), every trial a child run, and every trial gets an optuna-dashboard note and its
    plots as Optuna artifacts in ``<dir>/artifacts``.
    """
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    n_trials = n_trials if n_trials is not None else spec.study.n_trials
    timeout = timeout if timeout is not None else spec.study.timeout
    if n_trials is None and timeout is None:
        raise ConfigError("study.n_trials and study.timeout are both unset: the study would never end")
    if tracking:  # before anything is written: a bad tracking URI must leave no study behind
        check_reachable(tracking_uri or default_tracking_uri(location.directory))
    study = create_or_continue(spec, location, name=name)
    settings = _start_tracking(spec, study, location, tracking_uri) if tracking else None
    # Trials that exist and are not waiting; waiting ones (enqueued) run in this invocation and count as new.
    already = len([t for t in study.get_trials(deepcopy=False) if t.state != optuna.trial.TrialState.WAITING])
    bar = TrialProgress(n_trials, already, enabled=progress)
    started = time.perf_counter()
    failed = True
    try:
        if jobs == 1:
            recover_stale_trials(study, grace=spec.study.stale_after, on_failed=_on_stale(settings))
            study.optimize(
                make_objective(spec, study, location, settings),
                n_trials=n_trials,
                timeout=timeout,
                callbacks=[lambda s, _t: bar.update(s)],
                gc_after_trial=True,
            )
        else:
            recover_stale_trials(study, grace=spec.study.stale_after, on_failed=_on_stale(settings))
            _run_workers(spec, location, study, name, n_trials, timeout, jobs, list(overrides), bar, settings)
        failed = False
    finally:
        bar.close()
        if settings is not None and settings.mlflow is not None:
            finish_study_run(settings.mlflow, study, failed=failed)
    return summarize_run(study, already, time.perf_counter() - started)


def make_objective(
    spec: StudySpec, study: optuna.Study, location: StudyLocation, tracking: TrackingSettings | None
) -> TrialObjective:
    """The objective with checkpoints in ``<dir>/checkpoints/<study>/`` and tracking when enabled."""
    return TrialObjective(
        spec,
        observer_factory=tracking.observer if tracking is not None else None,
        checkpoint_dir=location.directory / "checkpoints" / study.study_name,
        on_stale=_on_stale(tracking),
    )


def _on_stale(tracking: TrackingSettings | None) -> Callable[[optuna.trial.FrozenTrial, str], None] | None:
    return tracking.fail_stale_run if tracking is not None else None


def _start_tracking(
    spec: StudySpec, study: optuna.Study, location: StudyLocation, tracking_uri: str | None
) -> TrackingSettings:
    location.directory.mkdir(parents=True, exist_ok=True)
    context = start_study_run(
        study_name=study.study_name,
        tracking_uri=tracking_uri or default_tracking_uri(location.directory),
        directory=location.directory,
        storage=location.describe(),
        spec_path=spec.source,
        spec_params={"base": spec.base.model_dump(mode="json"), "study": spec.study.model_dump(mode="json")},
    )
    return TrackingSettings(mlflow=context, artifact_dir=artifact_dir(location.directory))


def _run_workers(
    spec: StudySpec,
    location: StudyLocation,
    study: optuna.Study,
    name: str | None,
    n_trials: int | None,
    timeout: float | None,
    jobs: int,
    overrides: list[str],
    bar: TrialProgress,
    tracking: TrackingSettings | None,
) -> None:
    shares = [None] * jobs if n_trials is None else [n_trials // jobs + (i < n_trials % jobs) for i in range(jobs)]
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(
            target=_worker,
            args=(tracking, spec.source, overrides, location, name or spec.name, share, timeout, i),
            name=f"dqnmap-worker-{i}",
        )
        for i, share in enumerate(shares)
        if share != 0
    ]
    for process in processes:
        process.start()
    try:
        while any(p.is_alive() for p in processes):
            bar.update(study)
            time.sleep(1.0)
    except KeyboardInterrupt:
        for process in processes:
            process.terminate()
        raise
    finally:
        for process in processes:
            process.join()
    bar.update(study)
    failed = [p.name for p in processes if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"worker process(es) {failed} exited with an error")


def summarize_run(study: optuna.Study, already: int, seconds: float) -> RunSummary:
    trials = study.get_trials(deepcopy=False)[already:]
    states = [t.state for t in trials]
    best = _best_value(study)
    return RunSummary(
        study_name=study.study_name,
        n_new=len(trials),
        complete=states.count(optuna.trial.TrialState.COMPLETE),
        pruned=states.count(optuna.trial.TrialState.PRUNED),
        failed=states.count(optuna.trial.TrialState.FAIL),
        best_value=best,
        best_number=study.best_trial.number if best is not None else None,
        seconds=seconds,
    )
