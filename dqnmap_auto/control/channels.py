"""Where commands come from and where acknowledgements go: a trial's Optuna user attributes, a run directory's
control file, or memory.

**A trial** (:class:`TrialChannel`). Optuna user attributes, so it works across hosts on PostgreSQL exactly as on
the local journal file. Each command the CLI sends is its own attribute, ``dqnmap.control.cmd.<id>``: writers never
overwrite each other, so no command is lost however many are sent at once. The optuna-dashboard console
(:mod:`.console`) writes one attribute, ``control``, with the command's text; the trainer stores what it read
there as a ``dqnmap.control.cmd.<id>`` attribute too (so a retry finds it) and marks the console ``[received]``,
so the same text can be submitted again. (Between the trainer's check and that mark there is a window of a few
milliseconds in which a new console submission would be overwritten; the CLI has no such window.)
Acknowledgements go to ``dqnmap.control.ack.<id>`` (status, step, detail; one short attribute per command, as
optuna-dashboard draws each attribute on one line), which only the trial's worker writes, and to the trial's
optuna-dashboard note. The running trainer publishes its hyperparameter space
in ``dqnmap.control.space``, so a sender checks bounds without rebuilding the trial's config.

A retried trial (``dqnmap.retry_of``) also reads the commands of the trials it retries: commands that its
checkpoint had not yet seen are applied again, so none is lost across a worker crash.

**A run directory** (:class:`RunDirChannel`, ``dqnmap-auto train --out DIR``): senders append JSON lines to
``DIR/control.jsonl``; acknowledgements are appended to ``DIR/control-acks.jsonl``; ``DIR/control-live.json`` (pid,
host, space) exists while the run can take commands.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

import optuna

from dqnmap_auto.control.commands import Command, CommandError, parse, parse_or_reject
from dqnmap_auto.control.records import STATUS, markdown_table
from dqnmap_auto.control.rules import PublishedSpace

CMD_PREFIX = "dqnmap.control.cmd."
ACK_PREFIX = "dqnmap.control.ack."
SPACE_ATTR = "dqnmap.control.space"
CONSOLE_ATTR = "control"
RECEIVED = "[received]"
RETRY_OF_ATTR = "dqnmap.retry_of"  # (the same key as dqnmap_auto.tuning.recovery's; no import of tuning here)

COMMANDS_FILE = "control.jsonl"
ACKS_FILE = "control-acks.jsonl"
LIVE_FILE = "control-live.json"

Record = Mapping[str, Any]


class Channel(Protocol):
    """A source of commands and a sink of acknowledgements."""

    def open(self, space: PublishedSpace) -> None:
        """The run starts taking commands; ``space`` lets senders check theirs."""

    def read(self) -> list[Command]:
        """Every command received so far (the caller skips the ones it applied), in the order sent."""

    def acknowledge(self, command: Command, record: Record) -> None:
        """Publish the outcome (``record``: the control record the Trainer emitted)."""

    def close(self) -> None:
        """The run takes no more commands."""


def ack_summary(record: Record) -> dict[str, Any]:
    """What a sender waiting for the outcome needs."""
    return {
        "status": record[STATUS],
        "step": int(record["step"]),
        "at": record["control/at"],
        "detail": record["control/detail"],
        "command": record["control/command"],
    }


def _commands_from_attrs(attrs: Mapping[str, Any]) -> list[Command]:
    out = []
    for key, value in attrs.items():
        if not key.startswith(CMD_PREFIX):
            continue
        try:
            if not isinstance(value, Mapping):
                raise CommandError(f"not a command object: {value!r}")
            out.append(Command.from_json(value))
        except CommandError as error:
            out.append(Command.rejected(str(value)[:200], str(error), id=key[len(CMD_PREFIX) :], sent_at=0.0))
    return out


class TrialChannel:
    """Commands in a running trial's user attributes (see the module docstring)."""

    def __init__(
        self,
        storage: optuna.storages.BaseStorage,
        trial_id: int,
        *,
        note: Callable[[str], None] | None = None,
        retried_ids: Iterable[int] = (),
    ) -> None:
        """``note``: saves the trial's optuna-dashboard note (markdown); ``retried_ids``: trial ids of the trials
        this one retries, whose commands it takes over."""
        self.storage = storage
        self.trial_id = trial_id
        self.note = note
        self.retried_ids = list(retried_ids)
        self._inherited: list[Command] | None = None  # the retried trials' commands (finished: read once)
        self._acked_records: list[Record] = []

    @classmethod
    def for_trial(cls, trial: optuna.Trial) -> TrialChannel:
        """The channel of ``trial`` inside its objective, with the trials it retries and its dashboard note."""
        import optuna_dashboard

        storage, study_id = trial.storage, trial.study._study_id  # the objective's own trial: no public accessor
        retried: list[int] = []
        number = trial.user_attrs.get(RETRY_OF_ATTR)
        while number is not None and len(retried) < 100:
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, int(number))
            retried.append(trial_id)
            number = storage.get_trial(trial_id).user_attrs.get(RETRY_OF_ATTR)
        return cls(
            storage, trial._trial_id, note=lambda body: optuna_dashboard.save_note(trial, body), retried_ids=retried
        )

    def open(self, space: PublishedSpace) -> None:
        self.storage.set_trial_user_attr(self.trial_id, SPACE_ATTR, space.to_json())

    def read(self) -> list[Command]:
        if self._inherited is None:
            self._inherited = [c for tid in self.retried_ids for c in _commands_from_attrs(self._attrs(tid))]
        attrs = self._attrs(self.trial_id)
        console = attrs.get(CONSOLE_ATTR)
        if isinstance(console, str) and console.strip() and not console.startswith(RECEIVED):
            attrs = {**attrs, **self._take_console(console)}
        own = _commands_from_attrs(attrs)
        return sorted([*self._inherited, *own], key=lambda c: c.id)

    def _attrs(self, trial_id: int) -> dict[str, Any]:
        # Inside a study, an RDBStorage is wrapped in Optuna's cache, whose get_trial_user_attrs loads the whole
        # trial of a running trial (about six queries); the RDB storage itself reads the attributes (two).
        backend = getattr(self.storage, "_backend", None)
        reader = backend if isinstance(backend, optuna.storages.BaseStorage) else self.storage
        return reader.get_trial_user_attrs(trial_id)

    def _take_console(self, text: str) -> dict[str, Any]:
        """Store a console submission as a command attribute, then mark the console as received (unless a new
        submission arrived meanwhile)."""
        command = parse_or_reject(text, via="dashboard", by="optuna-dashboard")
        key = CMD_PREFIX + command.id
        self.storage.set_trial_user_attr(self.trial_id, key, command.to_json())
        if self._attrs(self.trial_id).get(CONSOLE_ATTR) == text:
            self.storage.set_trial_user_attr(self.trial_id, CONSOLE_ATTR, f"{RECEIVED} {text.strip()}")
        return {key: command.to_json()}

    def acknowledge(self, command: Command, record: Record) -> None:
        self._acked_records.append(record)
        self.storage.set_trial_user_attr(self.trial_id, ACK_PREFIX + command.id, ack_summary(record))
        if self.note is not None:
            self.note(live_note(self._acked_records))

    def close(self) -> None:
        """Nothing to release: the trial's state says whether it runs."""


def live_note(records: list[Record]) -> str:
    """The trial's note while it runs: the audit trail so far (the final note adds the outcome above it)."""
    return "### Running trial: live control\n\n" + markdown_table(records)


class RunDirChannel:
    """Commands for a ``dqnmap-auto train`` run, in files of its output directory (see the module docstring)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._size = -1
        self._commands: list[Command] = []

    @property
    def commands_path(self) -> Path:
        return self.directory / COMMANDS_FILE

    def open(self, space: PublishedSpace) -> None:
        live = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "space": space.to_json()}
        tmp = self.directory / f".{LIVE_FILE}.tmp"
        tmp.write_text(json.dumps(live), encoding="utf-8")
        os.replace(tmp, self.directory / LIVE_FILE)

    def read(self) -> list[Command]:
        try:
            size = self.commands_path.stat().st_size
        except FileNotFoundError:
            return []
        if size != self._size:  # one stat per poll while nothing new arrives
            self._size = size
            self._commands = list(_commands_from_lines(self.commands_path.read_text(encoding="utf-8")))
        return self._commands

    def acknowledge(self, command: Command, record: Record) -> None:
        with (self.directory / ACKS_FILE).open("a", encoding="utf-8") as out:
            out.write(json.dumps({"id": command.id, **ack_summary(record)}) + "\n")

    def close(self) -> None:
        (self.directory / LIVE_FILE).unlink(missing_ok=True)


def live_run(directory: Path) -> dict[str, Any] | None:
    """The live file of a run directory (pid, host, space) while its trainer takes commands, else None (no file,
    or its process is gone: a run killed without cleaning up)."""
    from dqnmap_auto.tuning.recovery import pid_alive

    try:
        data = json.loads((directory / LIVE_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if data.get("host") == socket.gethostname() and not pid_alive(int(data.get("pid", -1))):
        return None
    return dict(data)


def _commands_from_lines(text: str) -> Iterable[Command]:
    for number, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        try:
            yield Command.from_json(json.loads(line))
        except (json.JSONDecodeError, CommandError) as error:
            where = f"line {number + 1} of {COMMANDS_FILE}"
            yield Command.rejected(line[:200], f"{where}: {error}", id=f"line-{number + 1}")


class MemoryChannel:
    """Commands sent from the same process (notebooks, tests): :meth:`send` a text or a :class:`Command`."""

    def __init__(self) -> None:
        self.commands: list[Command] = []
        self.acks: dict[str, dict[str, Any]] = {}
        self.space: PublishedSpace | None = None

    def send(self, command: str | Command) -> Command:
        """Queue a command (a text is parsed here: CommandError at once when it is not one)."""
        sent = parse(command, via="api") if isinstance(command, str) else command
        self.commands.append(sent)
        return sent

    def open(self, space: PublishedSpace) -> None:
        self.space = space

    def read(self) -> list[Command]:
        return list(self.commands)

    def acknowledge(self, command: Command, record: Record) -> None:
        self.acks[command.id] = ack_summary(record)

    def close(self) -> None:
        pass
