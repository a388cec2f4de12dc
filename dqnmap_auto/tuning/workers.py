"""Study workers: N processes that each run ``study.optimize`` against the shared storage.

Two pools, one contract: local processes (``multiprocessing`` spawn) for one machine, and tasks on a Dask
cluster (``dask.distributed``; ``local`` starts a LocalCluster on loopback) for many. Neither schedules trials:
Optuna coordinates the workers through the storage, and the invoking process only watches the storage for the
progress bar. A worker that dies mid-trial loses nothing: its trial is found stale when any worker starts or finishes a
trial (``recovery``), failed and retried from its checkpoint; Dask also reruns the dead worker's task.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import optuna
from optuna.trial import TrialState

from dqnmap_auto.errors import ConfigError
from dqnmap_auto.logs import LOGS_DIR
from dqnmap_auto.tracking.trial_tracking import TrackingSettings
from dqnmap_auto.tuning.location import StudyLocation, checkpoint_dir, create_or_continue
from dqnmap_auto.tuning.objective import INVOCATION_ATTR, ParamSampler, TrialObjective
from dqnmap_auto.tuning.recovery import StaleTrialHandler, StaleTrialWatch, recover_stale_trials
from dqnmap_auto.tuning.spec import StudySpec

COUNTED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


def make_objective(
    spec: StudySpec,
    study: optuna.Study,
    location: StudyLocation,
    tracking: TrackingSettings | None,
    invocation: str | None = None,
    sample: ParamSampler | None = None,
) -> TrialObjective:
    """The objective with checkpoints in ``<dir>/checkpoints/<study>/``, live logs in ``<dir>/logs/<study>/`` and
    tracking when enabled; ``sample`` replaces the spec's search space (see ``ParamSampler``)."""
    return TrialObjective(
        spec,
        observer_factory=tracking.observer if tracking is not None else None,
        checkpoint_dir=checkpoint_dir(location, study.study_name),
        invocation=invocation,
        log_dir=location.directory / LOGS_DIR / study.study_name,
        sample=sample,
    )


def invocation_trials(
    study: optuna.Study, invocation: str, states: Sequence[TrialState] | None = None
) -> list[optuna.trial.FrozenTrial]:
    """The trials one `study run` invocation ran (other invocations may run on the same study meanwhile)."""
    trials = study.get_trials(deepcopy=False, states=tuple(states) if states is not None else None)
    return [t for t in trials if t.system_attrs.get(INVOCATION_ATTR) == invocation]


class InvocationLimit:
    """A ``study.optimize`` callback: stop once the invocation has ``n_trials`` COMPLETE or PRUNED trials.

    Counted per invocation, not in the whole study: another invocation's trials on the same study do not end
    this one early, and a task that Dask reruns after its worker died does not run more than were asked for.
    """

    def __init__(self, invocation: str, n_trials: int) -> None:
        self.invocation = invocation
        self.n_trials = n_trials

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if len(invocation_trials(study, self.invocation, COUNTED_STATES)) >= self.n_trials:
            study.stop()


def on_stale(tracking: TrackingSettings | None) -> Callable[[optuna.trial.FrozenTrial, str], None] | None:
    return tracking.fail_stale_run if tracking is not None else None


@dataclass(frozen=True)
class WorkerTask:
    """Everything one worker needs, picklable (it crosses process and machine boundaries): the validated spec
    itself, so a worker on another machine needs no copy of the spec file.

    ``invocation``: the id of the `study run` invocation, stored on each trial it runs; ``stop_after``: the
    number of COMPLETE + PRUNED trials of the invocation at which every worker stops (see
    :class:`InvocationLimit`). ``sampler_seed``: this worker's (see ``location.sampler_seeds``).
    """

    spec: StudySpec
    location: StudyLocation
    name: str
    n_trials: int | None
    timeout: float | None
    worker: int
    tracking: TrackingSettings | None
    invocation: str
    stop_after: int | None
    sampler_seed: int | None
    sample: ParamSampler | None = None
    callbacks: tuple[Callable[[optuna.Study, optuna.trial.FrozenTrial], None], ...] = ()


def run_worker(task: WorkerTask) -> None:
    """Body of one worker: optimize until its share, the timeout or ``stop_after``.

    Ctrl-C (SIGINT, from the terminal or forwarded by the invoking process) ends the worker quietly with exit
    code 130, once the objective has marked its trial FAIL ("interrupted") and queued its retry.
    """
    try:
        _optimize_worker(task)
    except KeyboardInterrupt:
        sys.exit(130)


def _optimize_worker(task: WorkerTask) -> None:
    spec = task.spec
    handler = StaleTrialHandler(on_stale(task.tracking))
    study = create_or_continue(
        spec, task.location, name=task.name, sampler_seed=task.sampler_seed, stale_handler=handler
    )
    recover_stale_trials(study, grace=spec.study.stale_after, handler=handler)  # e.g. this task's previous run
    callbacks: list[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] = [
        StaleTrialWatch(grace=spec.study.stale_after, handler=handler)
    ]
    if task.stop_after is not None:
        callbacks.append(InvocationLimit(task.invocation, task.stop_after))
    callbacks += task.callbacks
    study.optimize(
        make_objective(spec, study, task.location, task.tracking, task.invocation, task.sample),
        n_trials=task.n_trials,
        timeout=task.timeout,
        callbacks=callbacks,
        gc_after_trial=True,
    )


def split_trials(n_trials: int | None, jobs: int) -> list[int | None]:
    """Each worker's share of ``n_trials`` (None: unbounded, the timeout ends them); empty shares dropped."""
    if n_trials is None:
        return [None] * jobs
    return [share for i in range(jobs) if (share := n_trials // jobs + (i < n_trials % jobs))]


class WorkerPool(Protocol):
    """Runs worker tasks somewhere and says whether they are still running and how they ended."""

    def start(self, tasks: Sequence[WorkerTask]) -> None: ...
    def running(self) -> bool: ...
    def errors(self) -> list[str]: ...
    def interrupt(self, timeout: float) -> None: ...
    def stop(self) -> None: ...


class ProcessPool:
    """Worker processes on this machine (spawned: no inherited torch or storage state)."""

    def __init__(self) -> None:
        self.processes: list[multiprocessing.process.BaseProcess] = []

    def start(self, tasks: Sequence[WorkerTask]) -> None:
        context = multiprocessing.get_context("spawn")
        self.processes = [
            context.Process(target=run_worker, args=(task,), name=f"dqnmap-worker-{task.worker}") for task in tasks
        ]
        for process in self.processes:
            process.start()

    def running(self) -> bool:
        return any(p.is_alive() for p in self.processes)

    def errors(self) -> list[str]:
        return [f"{p.name} exited with code {p.exitcode}" for p in self.processes if p.exitcode not in (0, None)]

    def interrupt(self, timeout: float) -> None:
        """Ctrl-C: pass SIGINT on (a terminal sends it to the workers too; ``kill -INT`` only to this process)
        and give each worker ``timeout`` seconds to mark its trial and exit; ``stop`` then ends the rest."""
        for process in self.processes:
            if process.is_alive() and process.pid is not None:
                try:
                    os.kill(process.pid, signal.SIGINT)
                except ProcessLookupError:
                    continue
        deadline = time.monotonic() + timeout
        for process in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))

    def stop(self) -> None:
        for process in self.processes:
            if process.is_alive():
                process.terminate()
        for process in self.processes:
            process.join()


class DaskPool:
    """One task per study worker on a Dask cluster: ``address`` of a scheduler, or ``local`` for a LocalCluster
    of ``jobs`` single-threaded worker processes bound to 127.0.0.1."""

    def __init__(self, address: str, jobs: int) -> None:
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError("--dask needs dask.distributed: pip install 'dqnmap-auto[dask]'") from None
        # distributed logs comm shutdowns at INFO with a traceback: noise for a CLI user; warnings still show.
        logging.getLogger("distributed").setLevel(logging.WARNING)
        self.cluster: Any = None
        self.client: Any = None
        try:
            if address == "local":
                self.cluster = LocalCluster(
                    n_workers=jobs,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
                self.client = Client(self.cluster)
            else:
                self.client = Client(address, timeout=10)
        except (OSError, TimeoutError, ValueError) as error:
            self.close()
            raise ConfigError(f"--dask {address}: cannot connect to the scheduler ({error})") from None
        self.futures: list[Any] = []

    def start(self, tasks: Sequence[WorkerTask]) -> None:
        self.futures = [
            self.client.submit(run_worker, task, key=f"dqnmap-worker-{task.worker}-{time.time_ns()}", pure=False)
            for task in tasks
        ]

    def running(self) -> bool:
        return any(not future.done() for future in self.futures)

    def errors(self) -> list[str]:
        return [
            f"{future.key}: {type(error).__name__}: {error}".splitlines()[0]
            for future in self.futures
            if future.done() and (error := future.exception()) is not None
        ]

    def interrupt(self, timeout: float) -> None:
        """Running Dask tasks cannot be interrupted from here: ``stop`` cancels them (a LocalCluster's workers
        end with it), and the invoking process then fails and retries their trials as stale."""

    def stop(self) -> None:
        for future in self.futures:
            future.cancel()
        self.futures = []
        self.close()

    def close(self) -> None:
        """Idempotent: a failed connection closes what was opened, and the owner's ``stop`` closes it again."""
        client, cluster = self.client, self.cluster
        self.client, self.cluster = None, None
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()


def run_pool(pool: WorkerPool, tasks: Sequence[WorkerTask], on_tick: Callable[[], None]) -> None:
    """Start ``tasks`` on ``pool`` and call ``on_tick`` every second until all end. The pool's owner stops it
    (also on Ctrl-C or an error)."""
    pool.start(tasks)
    while pool.running():
        on_tick()
        time.sleep(1.0)
    on_tick()
    errors = pool.errors()
    if errors:
        raise RuntimeError(f"study worker(s) failed: {'; '.join(errors)}")
