"""The command vocabulary, shared by the CLI, the optuna-dashboard console and the notebook.

    set NAME=VALUE [NAME=VALUE ...]     lr, gamma, huber_delta, tau, epsilon
    freeze NAME [NAME ...]              hold a self-tuned value (or epsilon); its hypergradient is still logged
    unfreeze NAME [NAME ...]
    stop                                end the run now, with a final evaluation

``NAME=VALUE ...`` alone means ``set``. This module only parses and checks the syntax and the names; whether a value
fits a run's bounds is :mod:`dqnmap_auto.control.rules`' to say, against that run's hyperparameter space.
"""

from __future__ import annotations

import getpass
import math
import secrets
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dqnmap_auto.config import TUNABLE_PARAMS
from dqnmap_auto.errors import DqnmapError

VERBS = ("set", "freeze", "unfreeze", "stop")
#: Everything a command may name: the self-tunable hyperparameters and the exploration rate.
NAMES: tuple[str, ...] = (*TUNABLE_PARAMS, "epsilon")
USAGE = "set NAME=VALUE ... | freeze NAME ... | unfreeze NAME ... | stop   (NAME: " + ", ".join(NAMES) + ")"


class CommandError(DqnmapError):
    """A command that cannot be sent or applied; the message is one line and says why."""


def who() -> str:
    """``user@host`` of the sender, for the audit trail."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def new_id() -> str:
    """Time-ordered and unique across concurrent senders: nanoseconds, then random hex."""
    return f"{time.time_ns():x}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Command:
    """One command: ``values`` for ``set``, ``names`` for ``freeze``/``unfreeze`` (and the names ``set`` touches)."""

    verb: str
    names: tuple[str, ...] = ()
    values: Mapping[str, float] = field(default_factory=dict)
    id: str = field(default_factory=new_id)
    sent_at: float = field(default_factory=time.time)
    via: str = "api"
    by: str = field(default_factory=who)
    #: Why a received text could not even be parsed (the dashboard console); such a command is acknowledged as
    #: rejected with this reason, and ``raw`` is what was typed.
    invalid: str | None = None
    raw: str = ""

    def text(self) -> str:
        """The command as a user would type it (``set lr=0.0003 gamma=0.995``)."""
        if self.invalid is not None:
            return self.raw
        if self.verb == "set":
            return "set " + " ".join(f"{name}={self.values[name]:.6g}" for name in self.names)
        return " ".join((self.verb, *self.names))

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "verb": self.verb,
            "names": list(self.names),
            "values": dict(self.values),
            "sent_at": self.sent_at,
            "via": self.via,
            "by": self.by,
        }
        if self.invalid is not None:
            data.update(invalid=self.invalid, raw=self.raw)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Command:
        """Rebuild a stored command, checking it as if typed (a hand-edited store cannot smuggle anything in)."""
        try:
            verb, names = str(data["verb"]), tuple(str(n) for n in data.get("names", ()))
            values = {str(k): float(v) for k, v in dict(data.get("values", {})).items()}
            command = cls(
                verb=verb,
                names=names,
                values=values,
                id=str(data["id"]),
                sent_at=float(data.get("sent_at", 0.0)),
                via=str(data.get("via", "?")),
                by=str(data.get("by", "?")),
                invalid=None if data.get("invalid") is None else str(data["invalid"]),
                raw=str(data.get("raw", "")),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise CommandError(f"malformed stored command ({error})") from None
        if command.invalid is None:
            check_syntax(command)
        return command

    @classmethod
    def rejected(cls, raw: str, reason: str, **meta: Any) -> Command:
        """A received text that is not a command, kept so that its rejection is acknowledged like any command."""
        return cls(verb="invalid", invalid=reason, raw=raw, **meta)


def _number(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise CommandError(f"{name}={raw}: not a number") from None
    if not math.isfinite(value):
        raise CommandError(f"{name}={raw}: must be finite")
    return value


def _known(name: str) -> str:
    if name not in NAMES:
        raise CommandError(f"unknown hyperparameter {name!r}; known: {', '.join(NAMES)}")
    return name


def check_syntax(command: Command) -> None:
    """CommandError unless the verb, the names and (for ``set``) the values are well formed."""
    if command.verb not in VERBS:
        raise CommandError(f"unknown command {command.verb!r}; commands: {', '.join(VERBS)}")
    for name in command.names:
        _known(name)
    if len(set(command.names)) != len(command.names):
        raise CommandError(f"{command.text()}: a name appears twice")
    if command.verb == "stop":
        if command.names:
            raise CommandError("stop takes no names")
        return
    if not command.names:
        raise CommandError(f"{command.verb} needs at least one name ({USAGE})")
    if command.verb == "set" and set(command.values) != set(command.names):
        raise CommandError("set needs exactly one value per name")
    if command.verb != "set" and command.values:
        raise CommandError(f"{command.verb} takes names, not values")


def build(verb: str, args: Sequence[str], **meta: Any) -> Command:
    """A command from a verb and its arguments (``["lr=3e-4", "gamma=0.995"]`` or ``["lr"]``)."""
    verb = verb.strip().lower()
    if verb == "set":
        values: dict[str, float] = {}
        for arg in args:
            name, sep, raw = arg.partition("=")
            if not sep or not name.strip() or not raw.strip():
                raise CommandError(f"set: expected NAME=VALUE, got {arg!r}")
            name = _known(name.strip())
            if name in values:
                raise CommandError(f"set: {name} given twice")
            values[name] = _number(name, raw.strip())
        command = Command("set", tuple(values), values, **meta)
    else:
        command = Command(verb, tuple(a.strip() for a in args), {}, **meta)
    check_syntax(command)
    return command


def parse_or_reject(text: str, **meta: Any) -> Command:
    """:func:`parse`, or a :meth:`Command.rejected` carrying the reason (for texts nobody checked before)."""
    try:
        return parse(text, **meta)
    except CommandError as error:
        return Command.rejected(text.strip(), str(error), **meta)


def parse(text: str, **meta: Any) -> Command:
    """A command from one line of text (the dashboard console): ``set lr=3e-4``, ``lr=3e-4``, ``freeze gamma``,
    ``stop``. Commas also separate arguments."""
    words = text.replace(",", " ").split()
    if not words:
        raise CommandError(f"empty command ({USAGE})")
    if "=" in words[0]:
        return build("set", words, **meta)
    return build(words[0], words[1:], **meta)
