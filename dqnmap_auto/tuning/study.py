"""Running a study: create or continue it, start tracking, recover stale trials, run the trials in this
process or on N workers (local processes or a Dask cluster, see ``workers``), and summarise.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

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
from dqnmap_auto.tuning.location import SPEC_ATTR, StudyLocation, create_or_continue, load_existing
from dqnmap_auto.tuning.recovery import StaleTrialHandler, StaleTrialWatch, recover_stale_trials
from dqnmap_auto.tuning.spec import StudySpec
from dqnmap_auto.tuning.workers import (
    COUNTED_STATES,
    DaskPool,
    ProcessPool,
    WorkerPool,
    WorkerTask,
    make_objective,
    on_stale,
    run_pool,
    split_trials,
)

__all__ = ["SPEC_ATTR", "RunSummary", "StudyLocation", "create_or_continue", "load_existing", "run_study"]


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
    progress: bool = True,
    tracking: bool = True,
    tracking_uri: str | None = None,
    dask: str | None = None,
) -> RunSummary:
    """Run ``n_trials`` more trials (or until ``timeout``) with ``jobs`` workers.

    ``jobs`` > 1 runs worker processes on this machine; ``dask`` (a scheduler address, or ``local``) runs
    ``jobs`` workers as tasks on a Dask cluster instead, each against the same storage.

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
    if dask not in (None, "local"):
        check_shared_stores(location, tracking=tracking, tracking_uri=tracking_uri)
    if tracking:  # before anything is written: a bad tracking URI must leave no study behind
        check_reachable(tracking_uri or default_tracking_uri(location.directory))
    # Connected before anything is written too: a bad scheduler address must leave no study behind.
    pool: WorkerPool | None = DaskPool(dask, jobs) if dask is not None else ProcessPool() if jobs > 1 else None
    try:
        return _run(spec, location, pool, name, n_trials, timeout, jobs, progress, tracking, tracking_uri)
    finally:
        if pool is not None:
            pool.stop()


def check_shared_stores(location: StudyLocation, *, tracking: bool, tracking_uri: str | None) -> None:
    """Workers on other machines must reach the storage and the tracking store over the network: a local file
    would silently become a separate study (or tracking store) on each worker host."""
    storage = location.storage or ""
    if "://" not in storage or storage.startswith("sqlite"):
        raise ConfigError(
            f"--dask with a remote scheduler needs a database storage every worker reaches "
            f"(--storage postgresql+psycopg2://...), not the local file {location.describe()}"
        )
    if tracking and not (tracking_uri or "").startswith(("http://", "https://")):
        raise ConfigError(
            "--dask with a remote scheduler needs a tracking server every worker reaches "
            "(--tracking-uri http://host:5000) or --no-tracking"
        )


def _run(
    spec: StudySpec,
    location: StudyLocation,
    pool: WorkerPool | None,
    name: str | None,
    n_trials: int | None,
    timeout: float | None,
    jobs: int,
    progress: bool,
    tracking: bool,
    tracking_uri: str | None,
) -> RunSummary:
    handler = StaleTrialHandler()
    study = create_or_continue(spec, location, name=name, stale_handler=handler)
    settings = _start_tracking(spec, study, location, tracking_uri) if tracking else None
    handler.on_failed = on_stale(settings)
    # Trials that exist and are not waiting; waiting ones (enqueued) run in this invocation and count as new.
    already = len([t for t in study.get_trials(deepcopy=False) if t.state != optuna.trial.TrialState.WAITING])
    bar = TrialProgress(n_trials, already, enabled=progress)
    started = time.perf_counter()
    failed = True
    try:
        if pool is None:  # (each worker of a pool recovers stale trials when it starts)
            recover_stale_trials(study, grace=spec.study.stale_after, handler=handler)
            study.optimize(
                make_objective(spec, study, location, settings),
                n_trials=n_trials,
                timeout=timeout,
                callbacks=[
                    StaleTrialWatch(grace=spec.study.stale_after, handler=handler),
                    lambda s, _t: bar.update(s),
                ],
                gc_after_trial=True,
            )
        else:
            finished = len(study.get_trials(deepcopy=False, states=COUNTED_STATES))
            tasks = [
                WorkerTask(
                    spec=spec,
                    location=location,
                    name=study.study_name,
                    n_trials=share,
                    timeout=timeout,
                    worker=i,
                    tracking=settings,
                    stop_at=finished + n_trials if n_trials is not None else None,
                )
                for i, share in enumerate(split_trials(n_trials, jobs))
            ]
            run_pool(pool, tasks, on_tick=lambda: bar.update(study))
        failed = False
    finally:
        bar.close()
        if settings is not None and settings.mlflow is not None:
            finish_study_run(settings.mlflow, study, failed=failed)
    return summarize_run(study, already, time.perf_counter() - started)


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
