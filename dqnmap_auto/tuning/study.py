"""Running a study: create or continue it, start tracking, recover stale trials, run the trials in this
process or on N workers (local processes or a Dask cluster, see ``workers``), and summarise.
"""

from __future__ import annotations

import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import optuna
from optuna.trial import TrialState
from tqdm.auto import tqdm

from dqnmap_auto.control.console import register_console
from dqnmap_auto.errors import ConfigError
from dqnmap_auto.tuning.location import (
    SPEC_ATTR,
    StudyLocation,
    create_or_continue,
    fresh_seed,
    load_existing,
    sampler_seeds,
    seeded_sampler,
)
from dqnmap_auto.tuning.recovery import (
    INTERRUPTED,
    RETRY_OF_ATTR,
    RETRY_REASON_ATTR,
    StaleTrialHandler,
    StaleTrialWatch,
    recover_stale_trials,
)
from dqnmap_auto.tuning.spec import StudySpec, study_notes

if TYPE_CHECKING:  # the worker and tracking modules import torch and MLflow: loaded when a study runs
    from dqnmap_auto.tracking.trial_tracking import TrackingSettings
    from dqnmap_auto.tuning.objective import ParamSampler
    from dqnmap_auto.tuning.workers import WorkerPool

__all__ = [
    "SPEC_ATTR",
    "RunSummary",
    "StudyInterrupted",
    "StudyLocation",
    "create_or_continue",
    "load_existing",
    "run_study",
]

#: Seconds the invoking process gives its worker processes, after Ctrl-C, to mark their trials and exit.
INTERRUPT_GRACE = 30.0

Announce = Callable[[str], None]
#: Optuna's trial callback (``study.optimize(callbacks=...)``), called after each trial a worker finishes.
TrialCallback = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]


@dataclass
class RunSummary:
    """What one `study run` invocation did (``n_new`` and the state counts: its own trials only) and what the
    study holds afterwards (other invocations may have run on it meanwhile)."""

    study_name: str
    n_new: int
    complete: int
    pruned: int
    failed: int
    best_value: float | None
    best_number: int | None
    seconds: float
    study_trials: int = 0
    study_complete: int = 0
    study_pruned: int = 0
    sampler_seed: int | None = None


class StudyInterrupted(KeyboardInterrupt):
    """Ctrl-C ended a `study run`; ``trials`` are the numbers of the trials it marked FAIL ("interrupted")
    and queued again."""

    def __init__(self, trials: list[int]) -> None:
        super().__init__(trials)
        self.trials = trials


class TrialProgress:
    """Progress bar over the trials of this invocation: best value so far, pruned and failed counts."""

    def __init__(self, total: int | None, invocation: str, *, enabled: bool) -> None:
        self.invocation = invocation
        self.bar = tqdm(total=total, desc="trials", unit="trial", disable=not enabled, dynamic_ncols=True)

    def update(self, study: optuna.Study) -> None:
        from dqnmap_auto.tuning.workers import invocation_trials

        finished = [t for t in invocation_trials(study, self.invocation) if t.state.is_finished()]
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
    seed: int | None = None,
    announce: Announce | None = None,
    sample: ParamSampler | None = None,
    callbacks: Sequence[TrialCallback] = (),
) -> RunSummary:
    """Run ``n_trials`` more trials (or until ``timeout``) with ``jobs`` workers.

    ``jobs`` > 1 runs worker processes on this machine; ``dask`` (a scheduler address, or ``local``) runs
    ``jobs`` workers as tasks on a Dask cluster instead, each against the same storage.

    With ``tracking`` (the default), the invocation is a parent MLflow run (``tracking_uri``, default: SQLite in
    the project directory), every trial a child run, and every trial gets an optuna-dashboard note and its
    plots as Optuna artifacts in ``<dir>/artifacts``.

    ``seed`` makes the sampler's draws reproducible: the same seed on the same study state draws the same
    trials (one worker). Without it (and without ``study.sampler.args.seed``), every invocation draws a fresh
    seed, reported in the summary. ``announce`` gets one line per trial recovered or retried at the start.
    ``sample`` draws each trial's params in place of ``study.search_space``, for a space the spec's flat
    entries cannot express (see ``objective.ParamSampler``); the sampler and pruner are still the spec's.
    ``callbacks`` run after each trial in the worker that ran it (picklable, for worker processes): a hook for
    what reacts to a finished trial, e.g. enqueuing a follow-up (benchmarks/automl_cold.py's inheritance arm).
    Ctrl-C raises :class:`StudyInterrupted` once the running trials are marked FAIL and queued again.
    """
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    n_trials = n_trials if n_trials is not None else spec.study.n_trials
    timeout = timeout if timeout is not None else spec.study.timeout
    if n_trials is None and timeout is None:
        raise ConfigError("study.n_trials and study.timeout are both unset: the study would never end")
    from dqnmap_auto.tracking.mlflow_tracker import check_reachable, default_tracking_uri

    if dask not in (None, "local"):
        check_shared_stores(location, tracking=tracking, tracking_uri=tracking_uri)
    if tracking:  # before anything is written: a bad tracking URI must leave no study behind
        check_reachable(tracking_uri or default_tracking_uri(location.directory))
    from dqnmap_auto.tuning.workers import DaskPool, ProcessPool

    # Connected before anything is written too: a bad scheduler address must leave no study behind.
    pool: WorkerPool | None = DaskPool(dask, jobs) if dask is not None else ProcessPool() if jobs > 1 else None
    if seed is None:
        spec_seed = spec.study.sampler.args.get("seed")
        seed = int(spec_seed) if isinstance(spec_seed, int) else fresh_seed()
    run = _Invocation(
        spec, location, pool, name, n_trials, timeout, jobs, progress, seed, announce, sample, tuple(callbacks)
    )
    try:
        return run.execute(tracking, tracking_uri)
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


@dataclass
class _Invocation:
    """One `study run` invocation: its id, marked on every trial it runs, and how it runs them."""

    spec: StudySpec
    location: StudyLocation
    pool: WorkerPool | None
    name: str | None
    n_trials: int | None
    timeout: float | None
    jobs: int
    progress: bool
    seed: int
    announce: Announce | None
    sample: ParamSampler | None = None
    callbacks: tuple[TrialCallback, ...] = ()

    def __post_init__(self) -> None:
        self.id = uuid.uuid4().hex[:12]

    def execute(self, tracking: bool, tracking_uri: str | None) -> RunSummary:
        from dqnmap_auto.tuning.workers import on_stale

        spec, location = self.spec, self.location
        handler = StaleTrialHandler(announce=self.announce)
        study = create_or_continue(spec, location, name=self.name, stale_handler=handler)
        register_console(study)  # the live-control form on every running trial in optuna-dashboard
        if self.announce is not None:  # once the storage opened: a bad --storage is the only line
            for note in study_notes(spec):
                self.announce(f"note: {note}")
        seeds = sampler_seeds(self.seed, len(study.get_trials(deepcopy=False)), self.jobs)
        study.sampler = seeded_sampler(spec, seeds[0])
        settings = _start_tracking(spec, study, location, tracking_uri, self.seed) if tracking else None
        handler.on_failed = on_stale(settings)
        self._recover(study, handler)
        bar = TrialProgress(self.n_trials, self.id, enabled=self.progress)
        started = time.perf_counter()
        failed = True
        try:
            self._optimize(study, settings, handler, seeds, bar)
            failed = False
        except KeyboardInterrupt:
            raise StudyInterrupted(self._interrupted(study)) from None
        finally:
            bar.close()
            if settings is not None and settings.mlflow is not None:
                from dqnmap_auto.tracking.mlflow_tracker import finish_study_run

                finish_study_run(settings.mlflow, study, failed=failed)
        return summarize_run(study, self.id, time.perf_counter() - started, sampler_seed=self.seed)

    def _recover(self, study: optuna.Study, handler: StaleTrialHandler) -> None:
        """Fail and queue again the trials of dead workers, and say which queued retries this run picks up."""
        waiting_before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))}
        recover_stale_trials(study, grace=self.spec.study.stale_after, handler=handler)
        if _has_native_heartbeat(study):  # Optuna's own check, at once rather than at the first trial
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
        if self.announce is None:
            return
        for trial in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            retry_of = trial.user_attrs.get(RETRY_OF_ATTR)
            if retry_of is not None and trial.number in waiting_before:
                reason = trial.user_attrs.get(RETRY_REASON_ATTR, "")
                self.announce(f"trial {trial.number} retries trial {retry_of} ({reason}), from its checkpoint")

    def _optimize(
        self,
        study: optuna.Study,
        settings: TrackingSettings | None,
        handler: StaleTrialHandler,
        seeds: list[int],
        bar: TrialProgress,
    ) -> None:
        from dqnmap_auto.tuning.workers import WorkerTask, make_objective, run_pool, split_trials

        spec, location = self.spec, self.location
        if self.pool is None:
            study.optimize(
                make_objective(spec, study, location, settings, self.id, self.sample),
                n_trials=self.n_trials,
                timeout=self.timeout,
                callbacks=[
                    StaleTrialWatch(grace=spec.study.stale_after, handler=handler),
                    lambda s, _t: bar.update(s),
                    *self.callbacks,
                ],
                gc_after_trial=True,
            )
            return
        tasks = [
            WorkerTask(
                spec=spec,
                location=location,
                name=study.study_name,
                n_trials=share,
                timeout=self.timeout,
                worker=i,
                tracking=settings,
                invocation=self.id,
                stop_after=self.n_trials,
                sampler_seed=seeds[i],
                sample=self.sample,
                callbacks=self.callbacks,
            )
            for i, share in enumerate(split_trials(self.n_trials, self.jobs))
        ]
        try:
            run_pool(self.pool, tasks, on_tick=lambda: bar.update(study))
        except KeyboardInterrupt:
            self.pool.interrupt(INTERRUPT_GRACE)
            self.pool.stop()
            # a worker that did not exit in time (or a Dask task) leaves a RUNNING trial: fail and queue it now
            recover_stale_trials(study, grace=spec.study.stale_after, handler=handler)
            raise

    def _interrupted(self, study: optuna.Study) -> list[int]:
        """The trials Ctrl-C stopped: failed as "interrupted" by their worker, or as stale by ``_optimize``."""
        from dqnmap_auto.tuning.workers import invocation_trials

        return [
            t.number
            for t in invocation_trials(study, self.id, (TrialState.FAIL,))
            if str(t.user_attrs.get("failure_reason", "")).startswith((INTERRUPTED, "stale:"))
        ]


def _has_native_heartbeat(study: optuna.Study) -> bool:
    from dqnmap_auto.tuning.recovery import has_native_heartbeat

    return has_native_heartbeat(study._storage)


def _start_tracking(
    spec: StudySpec, study: optuna.Study, location: StudyLocation, tracking_uri: str | None, seed: int
) -> TrackingSettings:
    from dqnmap_auto.tracking.dashboard_notes import artifact_dir, publish_spec
    from dqnmap_auto.tracking.mlflow_tracker import default_tracking_uri, start_study_run
    from dqnmap_auto.tracking.trial_tracking import TrackingSettings

    location.directory.mkdir(parents=True, exist_ok=True)
    context = start_study_run(
        study_name=study.study_name,
        tracking_uri=tracking_uri or default_tracking_uri(location.directory),
        directory=location.directory,
        storage=location.describe(),
        spec_path=spec.source,
        spec_params={"base": spec.base.model_dump(mode="json"), "study": spec.study.model_dump(mode="json")},
        sampler_seed=seed,
    )
    publish_spec(study, artifact_dir(location.directory))
    return TrackingSettings(mlflow=context, artifact_dir=artifact_dir(location.directory))


def summarize_run(study: optuna.Study, invocation: str, seconds: float, *, sampler_seed: int | None) -> RunSummary:
    from dqnmap_auto.tuning.workers import invocation_trials

    states = [t.state for t in invocation_trials(study, invocation)]
    everything = [t.state for t in study.get_trials(deepcopy=False)]
    best = _best_value(study)
    return RunSummary(
        study_name=study.study_name,
        n_new=len(states),
        complete=states.count(TrialState.COMPLETE),
        pruned=states.count(TrialState.PRUNED),
        failed=states.count(TrialState.FAIL),
        best_value=best,
        best_number=study.best_trial.number if best is not None else None,
        seconds=seconds,
        study_trials=len(everything),
        study_complete=everything.count(TrialState.COMPLETE),
        study_pruned=everything.count(TrialState.PRUNED),
        sampler_seed=sampler_seed,
    )
