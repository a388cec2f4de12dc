"""Stale-trial detection and retry for every Optuna storage, on documented storage APIs.

Optuna's own heartbeats exist only in ``RDBStorage``, and the embedded default here is the journal file (the
store that takes several worker processes without "database is locked"). So each running trial carries, as
user attributes, the worker's host and pid, and, where the storage has no heartbeat of its own, a heartbeat
time that a daemon thread refreshes. A RUNNING trial is stale when its worker process is gone (same host:
checked at once) or its heartbeat is older than the grace period (any host; Optuna's own check on RDB
storages). Recovery marks it FAIL (``storage.set_trial_state_values``), records the reason, and enqueues a
retry with the same parameters and ``dqnmap.retry_of``: the retry resumes from the dead trial's latest
checkpoint. On RDB storages Optuna fails the trial itself and calls ``StaleTrialHandler`` (its
``heartbeat_stale_trial_callback``), which does the rest.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType

import optuna
from optuna.trial import FrozenTrial, TrialState

HEARTBEAT_ATTR = "dqnmap.heartbeat"
HOST_ATTR = "dqnmap.host"
PID_ATTR = "dqnmap.pid"
RETRY_OF_ATTR = "dqnmap.retry_of"
RETRY_REASON_ATTR = "dqnmap.retry_reason"

INTERRUPTED = "interrupted"  # the failure reason of a trial stopped by Ctrl-C (SIGINT)

OnFailed = Callable[[FrozenTrial, str], None]
Announce = Callable[[str], None]


def enqueue_retry(study: optuna.Study, number: int, params: dict[str, object], reason: str) -> None:
    """Queue a retry of trial ``number`` with the same parameters; it resumes from that trial's checkpoints."""
    study.enqueue_trial(params, user_attrs={RETRY_OF_ATTR: number, RETRY_REASON_ATTR: reason})


def has_native_heartbeat(storage: optuna.storages.BaseStorage) -> bool:
    """Whether Optuna beats for this storage (an RDBStorage opened with a heartbeat interval).

    Duck-typed: ``create_study`` wraps RDB storages in a cache that forwards ``get_heartbeat_interval``.
    """
    getter = getattr(storage, "get_heartbeat_interval", None)
    return callable(getter) and getter() is not None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class Heartbeat:
    """Marks a running trial as alive: host, pid, and (``beat``) a timestamp refreshed every ``interval`` s.

    Without ``beat`` (the storage beats itself) only host and pid are written, for the same-host check.
    """

    def __init__(self, trial: optuna.Trial, *, interval: float, beat: bool = True) -> None:
        self.trial = trial
        self.interval = interval
        self.beat = beat
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{trial.number}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self.trial.set_user_attr(HOST_ATTR, socket.gethostname())
        self.trial.set_user_attr(PID_ATTR, os.getpid())
        if self.beat:
            self.trial.set_user_attr(HEARTBEAT_ATTR, time.time())
            self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.trial.set_user_attr(HEARTBEAT_ATTR, time.time())
            except Exception:  # the trial finished meanwhile, or the storage hiccuped: next beat retries
                continue

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


def stale_reason(trial: FrozenTrial, *, grace: float, now: float | None = None, timed: bool = True) -> str | None:
    """Why a RUNNING trial is stale, or None if it may still be alive.

    ``timed=False`` checks only whether the worker process is gone (the storage's own heartbeat times out).
    """
    now = time.time() if now is None else now
    attrs = trial.user_attrs
    pid, host, beat = attrs.get(PID_ATTR), attrs.get(HOST_ATTR), attrs.get(HEARTBEAT_ATTR)
    if host == socket.gethostname() and isinstance(pid, int) and not pid_alive(pid):
        return f"worker process {pid} on {host} is gone"
    if not timed:
        return None
    if beat is not None and now - float(beat) > grace:
        return f"no heartbeat for {now - float(beat):.0f}s (grace {grace:.0f}s)"
    if beat is None and trial.datetime_start is not None and now - trial.datetime_start.timestamp() > grace:
        return f"no heartbeat since it started {now - trial.datetime_start.timestamp():.0f}s ago"
    return None


class StaleTrialHandler:
    """What happens to a trial found stale: its MLflow run fails (``on_failed``) and a retry is enqueued.

    One per worker process; also Optuna's ``heartbeat_stale_trial_callback`` on RDB storages, where Optuna has
    already failed the trial (so the reason goes on the retry, not on the finished trial). ``on_failed`` is
    set once tracking has started, after the storage was opened.
    """

    def __init__(self, on_failed: OnFailed | None = None, announce: Announce | None = None) -> None:
        self.on_failed = on_failed
        self.announce = announce  # one line per recovered trial, for the user (None: silent, e.g. in workers)

    def retry(self, study: optuna.Study, trial: FrozenTrial, reason: str) -> None:
        if self.on_failed is not None:
            self.on_failed(trial, reason)
        enqueue_retry(study, trial.number, trial.params, reason)
        if self.announce is not None:
            self.announce(f"recovered trial {trial.number} (stale: {reason}): marked FAIL, retry queued")

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.retry(study, trial, "no Optuna heartbeat within the grace period")


def recover_stale_trials(study: optuna.Study, *, grace: float, handler: StaleTrialHandler | None = None) -> list[int]:
    """FAIL every stale RUNNING trial and enqueue its retry; returns the failed trial numbers."""
    storage = study._storage  # the study's own storage object: Optuna exposes no public accessor
    handler = handler or StaleTrialHandler()
    timed = not has_native_heartbeat(storage)
    recovered = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = stale_reason(trial, grace=grace, timed=timed)
        if reason is None:
            continue
        try:
            storage.set_trial_user_attr(trial._trial_id, "failure_reason", f"stale: {reason}")
            if not storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                continue
        except (RuntimeError, optuna.exceptions.UpdateFinishedTrialError):
            continue  # another worker recovered it first
        handler.retry(study, trial, reason)
        recovered.append(trial.number)
    return recovered


class StaleTrialWatch:
    """A ``study.optimize`` callback that recovers stale trials after every trial, so that their retries are
    waiting before the worker asks for its next trial (recovering inside the objective would come after the
    ask, and a worker near its trial budget could stop with a retry left waiting)."""

    def __init__(self, *, grace: float, handler: StaleTrialHandler) -> None:
        self.grace = grace
        self.handler = handler

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        recover_stale_trials(study, grace=self.grace, handler=self.handler)
