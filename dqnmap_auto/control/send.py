"""The sender side, behind ``dqnmap-auto trial ...`` and usable from Python: check a command, store it, and
optionally wait for the trainer's acknowledgement.

A command is refused here, before anything is stored, when its target cannot take it: an unknown study or trial,
a trial that is not running, a run directory without a live trainer, an unknown name, or a value outside what the
running trainer published as its space (bounds, self-tuned names). The trainer checks again and has the last word.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from dqnmap_auto.control.channels import (
    ACK_PREFIX,
    ACKS_FILE,
    CMD_PREFIX,
    COMMANDS_FILE,
    LIVE_FILE,
    RETRY_OF_ATTR,
    SPACE_ATTR,
    live_run,
)
from dqnmap_auto.control.commands import Command, CommandError
from dqnmap_auto.control.rules import PublishedSpace, check

WAIT_POLL = 0.2


@dataclass
class Delivery:
    """What happened to a sent command: ``ack`` (status, step, detail) once the trainer answered; for a ``stop``
    that was waited for, the trial's final state and value."""

    command: Command
    target: str
    ack: dict[str, Any] | None = None
    final_state: str | None = None
    value: float | None = None


def is_run_dir(path: str | Path) -> bool:
    """Whether ``path`` is a ``dqnmap-auto train`` output directory."""
    return Path(path).is_dir() and (Path(path) / "config.yaml").is_file()


def _check_space(command: Command, space: Any, what: str) -> None:
    if not isinstance(space, dict):
        return  # the trainer has not published its space yet: it will check the command itself
    published = PublishedSpace.from_json(space)
    problems = check(command, published, replayed=published.replayed)
    if problems:
        raise CommandError(f"{what}: {'; '.join(problems)}")


# -- trials -----------------------------------------------------------------------------------------------
def running_trial(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    """The trial ``number`` of ``study`` if it is running; CommandError saying why not otherwise."""
    trials = study.get_trials(deepcopy=False)
    if not 0 <= number < len(trials):
        last = f"0..{len(trials) - 1}" if trials else "none yet"
        raise CommandError(f"study {study.study_name!r} has no trial {number} (trials: {last})")
    trial = trials[number]
    if trial.state == TrialState.RUNNING:
        return trial
    if trial.state == TrialState.WAITING:
        raise CommandError(f"trial {number} has not started yet (WAITING): send the command once it runs")
    retries = [t.number for t in trials if t.user_attrs.get(RETRY_OF_ATTR) == number]
    hint = f"; it was retried as trial {retries[-1]}" if retries else ""
    raise CommandError(f"trial {number} is {trial.state.name}: a finished trial cannot be steered{hint}")


def send_to_trial(study: optuna.Study, number: int, command: Command, *, wait: float = 0.0) -> Delivery:
    """Store ``command`` on the running trial ``number``; wait up to ``wait`` seconds for its acknowledgement."""
    trial = running_trial(study, number)
    what = f"trial {number}"
    _check_space(command, trial.user_attrs.get(SPACE_ATTR), what)
    storage = study._storage  # Optuna exposes no public accessor of a study's storage
    command = dataclasses.replace(command, sent_at=time.time())  # latency counts from here, not from typing
    try:
        storage.set_trial_user_attr(trial._trial_id, CMD_PREFIX + command.id, command.to_json())
    except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError):
        raise CommandError(f"trial {number} finished before the command could be stored") from None
    delivery = Delivery(command, f"trial {number} of study {study.study_name!r}")
    if wait > 0:
        _wait_trial(storage, trial._trial_id, delivery, deadline=time.monotonic() + wait)
    return delivery


def _wait_trial(storage: optuna.storages.BaseStorage, trial_id: int, delivery: Delivery, *, deadline: float) -> None:
    stopping = delivery.command.verb == "stop"
    while True:
        trial = storage.get_trial(trial_id)
        delivery.ack = delivery.ack or trial.user_attrs.get(ACK_PREFIX + delivery.command.id)
        if trial.state.is_finished():
            delivery.final_state, delivery.value = trial.state.name, trial.value
            return
        waiting_for_end = stopping and delivery.ack is not None and delivery.ack["status"] == "applied"
        if (delivery.ack is not None and not waiting_for_end) or time.monotonic() >= deadline:
            return
        time.sleep(WAIT_POLL)


# -- run directories --------------------------------------------------------------------------------------
def _live_run(directory: Path) -> dict[str, Any]:
    if not is_run_dir(directory):
        raise CommandError(f"{directory}: not a `dqnmap-auto train` output directory (no config.yaml)")
    data = live_run(directory)
    if data is None:
        state = "has finished" if (directory / "eval.json").exists() else "is not running"
        raise CommandError(f"the run in {directory} {state}: nothing to steer")
    return data


def send_to_run(directory: str | Path, command: Command, *, wait: float = 0.0) -> Delivery:
    """Append ``command`` to a running ``train`` run's control file; wait up to ``wait`` s for its acknowledgement."""
    directory = Path(directory)
    live = _live_run(directory)
    _check_space(command, live.get("space"), f"run {directory}")
    command = dataclasses.replace(command, sent_at=time.time())
    with (directory / COMMANDS_FILE).open("a", encoding="utf-8") as out:
        fcntl.flock(out, fcntl.LOCK_EX)  # one whole line per command, whoever else appends
        out.write(json.dumps(command.to_json()) + "\n")
        out.flush()
        fcntl.flock(out, fcntl.LOCK_UN)
    delivery = Delivery(command, f"run {directory}")
    deadline = time.monotonic() + wait
    while wait > 0:
        delivery.ack = _run_ack(directory, command.id)
        if delivery.ack is not None or time.monotonic() >= deadline or not (directory / LIVE_FILE).exists():
            break
        time.sleep(WAIT_POLL)
    return delivery


def _run_ack(directory: Path, command_id: str) -> dict[str, Any] | None:
    path = directory / ACKS_FILE
    if not path.exists():
        return None
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            ack = json.loads(line)
        except json.JSONDecodeError:
            continue
        if ack.get("id") == command_id:
            return dict(ack)
    return None
