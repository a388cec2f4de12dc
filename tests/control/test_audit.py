"""How the acknowledgement records are rendered: the trajectory plot marks each change, the note's table, the log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dqnmap_auto.control.commands import build, parse_or_reject
from dqnmap_auto.control.records import control_record, markdown_table
from dqnmap_auto.control.rules import APPLIED, REJECTED, Outcome
from dqnmap_auto.logs import format_record
from dqnmap_auto.tracking import plots


def stream() -> list[dict[str, Any]]:
    """Training records every 100 steps, a set at 300, a rejected set at 400, a freeze at 500, a stop at 700."""
    rows: list[dict[str, Any]] = [
        {"step": s, "sps": 900.0, "hp/lr": 1e-3 if s < 300 else 4e-4, "hp/gamma": 0.99} for s in range(100, 800, 100)
    ]
    values = {"lr": 4e-4, "gamma": 0.99, "epsilon": 0.1}
    events = [
        (300, build("set", ["lr=4e-4"]), Outcome(APPLIED, "lr 0.001 -> 0.0004", {"lr": (1e-3, 4e-4)}), values),
        (400, build("set", ["lr=5"]), Outcome(REJECTED, "lr=5 is outside its self-tuning bounds"), None),
        (500, build("freeze", ["gamma"]), Outcome(APPLIED, "gamma held at 0.99", {"gamma": (0.99, 0.99)}), values),
        (700, build("stop", []), Outcome(APPLIED, "stopping at step 700"), None),
    ]
    for step, command, outcome, after in events:
        rows.append(
            control_record(command, outcome, step=step, at=command.sent_at + 0.5, latency_steps=40, values=after)
        )
    return sorted(rows, key=lambda r: r["step"])


def test_the_trajectory_plot_marks_each_applied_change(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or Path(path))
    plots.hyperparameter_trajectories(stream(), tmp_path / "hp.png")
    (figure,) = figures
    axes = {ax.get_ylabel(): ax for ax in figure.axes}
    marks = {
        name: [(ln.get_marker(), tuple(ln.get_xydata()[0])) for ln in ax.lines if ln.get_marker() != "None"]
        for name, ax in axes.items()
    }
    assert marks["lr"] == [("v", (300.0, 4e-4))]  # the set, at its new value; not the rejected one
    assert marks["gamma"] == [("s", (500.0, 0.99))]  # the freeze
    for ax in axes.values():  # the stop, on every panel
        assert any(ln.get_linestyle() == "-." and ln.get_xdata()[0] == 700 for ln in ax.lines)
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert sorted(legend) == ["freeze", "set", "stop"]


def test_the_note_table_and_the_log_lines() -> None:
    rows = stream()
    table = markdown_table(rows)
    assert table.startswith("#### Live control") and table.count("| `") == 4
    assert "| 400 | `set lr=5` | **rejected**: lr=5 is outside its self-tuning bounds |" in table
    assert markdown_table([r for r in rows if "control/status" not in r]) == ""
    controls = [r for r in rows if "control/status" in r]
    by = controls[0]["control/by"]
    assert (
        format_record(controls[0])
        == f"step      300  control applied: set lr=0.0004 (lr 0.001 -> 0.0004) via api by {by}"
    )
    invalid = parse_or_reject("set lr=fast", via="dashboard", by="optuna-dashboard")
    record = control_record(
        invalid, Outcome(REJECTED, invalid.invalid or ""), step=1, at=0.0, latency_steps=None, values=None
    )
    assert record["control/command"] == "set lr=fast" and "not a number" in str(record["control/detail"])
