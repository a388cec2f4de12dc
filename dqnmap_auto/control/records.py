"""The acknowledgement of a command, as an ordinary record, and how each consumer renders it.

Every applied or rejected command leaves the Trainer as one record, so every record consumer logs it: the JSONL
writer as is, MLflow as a tag plus marker metrics at that step (``control/applied`` 1 or 0, ``control/<name>`` the
new value), the dashboard note as a table row, the live log as a line, the hyperparameter-trajectory plot as a
marker. Keys (text values are the only non-numbers among records):

    control/id, control/command, control/status (applied | rejected), control/detail (old -> new, or the reason),
    control/via (cli | dashboard | file | api), control/by, control/sent_at and control/at (UTC, ISO 8601),
    control/applied (1.0 | 0.0), control/latency_s, control/latency_steps, control/<name> (new value),
    and, for an applied change, every hp/<name> (and epsilon) as the run uses them from that step on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from dqnmap_auto.control.commands import NAMES, Command
from dqnmap_auto.control.rules import APPLIED, Outcome

STATUS = "control/status"


def utc(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).isoformat(timespec="milliseconds")


def control_record(
    command: Command,
    outcome: Outcome,
    *,
    step: int,
    at: float,
    latency_steps: float | None,
    values: Mapping[str, float] | None,
) -> dict[str, float | str]:
    """The record of ``command``'s ``outcome`` at env step ``step`` (wall time ``at``); ``values``: every
    hyperparameter after an applied change (None otherwise)."""
    record: dict[str, float | str] = {
        "step": step,
        "control/id": command.id,
        "control/command": command.text(),
        STATUS: outcome.status,
        "control/detail": outcome.detail,
        "control/via": command.via,
        "control/by": command.by,
        "control/sent_at": utc(command.sent_at),
        "control/at": utc(at),
        "control/applied": 1.0 if outcome.status == APPLIED else 0.0,
        "control/latency_s": max(0.0, at - command.sent_at),
    }
    if latency_steps is not None:
        record["control/latency_steps"] = latency_steps
    for name, (_, new) in outcome.changes.items():
        record[f"control/{name}"] = new
    if values is not None:
        for name, value in values.items():
            record["epsilon" if name == "epsilon" else f"hp/{name}"] = value
    return record


def is_control(record: Mapping[str, Any]) -> bool:
    return STATUS in record


def summary(record: Mapping[str, Any]) -> str:
    """One line: ``step 1200 applied: set lr=0.0003 (lr 0.001 -> 0.0003) via cli by ann@host``."""
    return (
        f"step {int(record['step'])} {record[STATUS]}: {record['control/command']} ({record['control/detail']}) "
        f"via {record['control/via']} by {record['control/by']}"
    )


def changed_names(record: Mapping[str, Any]) -> list[str]:
    """The hyperparameters an applied record changed (or froze / released)."""
    return [name for name in NAMES if f"control/{name}" in record]


def markdown_table(records: Iterable[Mapping[str, Any]]) -> str:
    """The audit trail as a markdown table (the trial's optuna-dashboard note); empty without commands."""
    rows = [r for r in records if is_control(r)]
    if not rows:
        return ""
    lines = [
        "#### Live control",
        "",
        "| at (UTC) | step | command | result | by |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        at = str(r["control/at"]).replace("T", " ")[:19]
        result = f"**{r[STATUS]}**: {r['control/detail']}"
        who = f"{r['control/via']} {r['control/by']}"
        lines.append(f"| {at} | {int(r['step'])} | `{r['control/command']}` | {result} | {who} |")
    return "\n".join(lines) + "\n"
