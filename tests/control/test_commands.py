"""The command vocabulary: what parses, what is refused with which reason, and the round trip through storage."""

from __future__ import annotations

import pytest

from dqnmap_auto.control.commands import Command, CommandError, build, parse, parse_or_reject


@pytest.mark.parametrize(
    ("text", "verb", "values", "names"),
    [
        ("set lr=3e-4 gamma=0.995", "set", {"lr": 3e-4, "gamma": 0.995}, ("lr", "gamma")),
        ("lr=3e-4", "set", {"lr": 3e-4}, ("lr",)),
        ("  SET  epsilon=0.1 ", "set", {"epsilon": 0.1}, ("epsilon",)),
        ("set lr=1e-3, tau=0.5", "set", {"lr": 1e-3, "tau": 0.5}, ("lr", "tau")),
        ("freeze lr gamma", "freeze", {}, ("lr", "gamma")),
        ("unfreeze huber_delta", "unfreeze", {}, ("huber_delta",)),
        ("stop", "stop", {}, ()),
    ],
)
def test_texts_parse(text: str, verb: str, values: dict[str, float], names: tuple[str, ...]) -> None:
    command = parse(text, via="dashboard")
    assert (command.verb, dict(command.values), command.names, command.via) == (verb, values, names, "dashboard")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty command"),
        ("jump lr", "unknown command 'jump'"),
        ("set lr", "expected NAME=VALUE"),
        ("set momentum=0.9", "unknown hyperparameter 'momentum'"),
        ("set lr=abc", "lr=abc: not a number"),
        ("set lr=nan", "must be finite"),
        ("set lr=1e-3 lr=2e-3", "lr given twice"),
        ("freeze", "freeze needs at least one name"),
        ("freeze batch_size", "unknown hyperparameter 'batch_size'"),
        ("stop lr", "stop takes no names"),
    ],
)
def test_bad_texts_say_why(text: str, reason: str) -> None:
    with pytest.raises(CommandError, match=reason):
        parse(text)
    rejected = parse_or_reject(text, via="dashboard")
    assert rejected.invalid is not None and reason in rejected.invalid
    assert rejected.text() == text.strip()


def test_stored_commands_round_trip_and_are_checked_again() -> None:
    command = build("set", ["lr=3e-4", "epsilon=0.2"], via="cli", by="ann@host")
    again = Command.from_json(command.to_json())
    assert again == command and again.text() == "set lr=0.0003 epsilon=0.2"
    tampered = {**command.to_json(), "names": ["lr", "batch_size"], "values": {"lr": 1.0, "batch_size": 2}}
    with pytest.raises(CommandError, match="batch_size"):
        Command.from_json(tampered)
    with pytest.raises(CommandError, match="malformed"):
        Command.from_json({"verb": "set"})


def test_ids_are_unique_and_in_sending_order() -> None:
    ids = [build("stop", []).id for _ in range(200)]
    assert len(set(ids)) == 200 and ids == sorted(ids)
