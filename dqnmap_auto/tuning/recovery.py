"""Stale-trial detection and retry for every Optuna storage, on documented storage APIs.

Optuna's own heartbeats exist only in ``RDBStorage``, and the embedded default here is the journal file (the
store that takes several worker processes without "database is locked"). So each running trial carries, as
user attributes, the worker's host and pid and a heartbeat time that a daemon thread refreshes. A RUNNING trial
is stale when its worker process is gone (same host: checked at once) or its heartbeat is older than the grace
period (any host). Recovery marks it FAIL (``storage.set_trial_state_values``), records the reason, and
enqueues a retry with the same parameters and ``dqnmap.retry_of``: the retry resumes from the dead trial's
latest checkpoint.
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


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class Heartbeat:
    """Marks a running trial as alive: host, pid, and a timestamp refreshed every ``interval`` seconds."""

    def __init__(self, trial: optuna.Trial, *, interval: float) -> None:
        self.trial = trial
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{trial.number}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self.trial.set_user_attr(HOST_ATTR, socket.gethostname())
        self.trial.set_user_attr(PID_ATTR, os.getpid())
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
        self._thread.join(timeout=5)


def stale_reason(trial: FrozenTrial, *, grace: float, now: float | None = None) -> str | None:
    """Why a RUNNING trial is stale, or None if it may still be alive."""
    now = time.time() if now is None else now
    attrs = trial.user_attrs
    pid, host, beat = attrs.get(PID_ATTR), attrs.get(HOST_ATTR), attrs.get(HEARTBEAT_ATTR)
    if host == socket.gethostname() and isinstance(pid, int) and not pid_alive(pid):
        return f"worker process {pid} on {host} is gone"
    if beat is not None and now - float(beat) > grace:
        return f"no heartbeat for {now - float(beat):.0f}s (grace {grace:.0f}s)"
    if beat is None and trial.datetime_start is not None and now - trial.datetime_start.timestamp() > grace:
        return f"no heartbeat since it started {now - trial.datetime_start.timestamp():.0f}s ago"
    return None


def recover_stale_trials(
    study: optuna.Study, *, grace: float, on_failed: Callable[[FrozenTrial, str], None] | None = None
) -> list[int]:
    """FAIL every stale RUNNING trial and enqueue its retry; returns the failed trial numbers."""
    storage = study._storage  # the study's own storage object: Optuna exposes no public accessor
    recovered = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = stale_reason(trial, grace=grace)
        if reason is None:
            continue
        try:
            storage.set_trial_user_attr(trial._trial_id, "failure_reason", f"stale: {reason}")
            if not storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                continue
        except (RuntimeError, optuna.exceptions.UpdateFinishedTrialError):
            continue  # another worker recovered it first
        if on_failed is not None:
            on_failed(trial, reason)
        study.enqueue_trial(trial.params, user_attrs={RETRY_OF_ATTR: trial.number})
        recovered.append(trial.number)
    return recovered
