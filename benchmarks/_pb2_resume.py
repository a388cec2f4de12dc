"""Resuming a killed PB2 population from its last complete round (automl_cold.py's arm (d)).

Why not Ray Tune's own restore: Tune saves no scheduler state (PB2's GP data and its synchronous clock; a
restored PB2 can leave every member paused, Ray PR #48616, unmerged), and a restored trial resumes from the
checkpoint the last experiment snapshot held, so the chunks it reported after that count twice. A synchronous
population has a natural restart point instead: the last round that every member finished. So each member keeps
its own record outside Ray (``MemberLog``: one JSON line per chunk and its trainer state at its last two
chunk ends), and the scheduler keeps its data (``ResumablePB2`` rewrites PB2's GP data, by slot, each time it
changes). A resumed run is a new Tuner whose members start from their states at that round and first report
it again, so PB2 makes that round's exploit-and-explore decision again, from its data up to the round before.
What was trained past the round is dropped (not counted) and trained again.

A member's *slot* is its seat in the population: an exploited member takes over another's config and weights,
never its slot, so the slot names one line of chunks from the first round to the last.

Ray is imported at the top: only ``_pb2.py`` imports this module, and only inside functions (Ray Tune is the
benchmark-only ``pb2`` extra).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from _pb2_explore import ExploringPB2

from dqnmap_auto.checkpoint import save_atomic

SLOT = "slot"
#: A resumed member's first config carries the round it restarts from: it loads its state there and reports it.
RESUME_STEP = "resume_step"
DATA_FILE = "pb2-data.json"
KEEP_STATES = 2  # a member is at most one round ahead of the slowest, so the common round is among its last two


@dataclass(frozen=True)
class MemberLog:
    """One slot's record in ``folder``: ``slot-<n>.jsonl`` (a line per chunk) and ``slot-<n>/<step>.pt``."""

    folder: Path
    slot: int

    @property
    def rows_path(self) -> Path:
        return self.folder / f"slot-{self.slot}.jsonl"

    def state_path(self, step: int) -> Path:
        return self.folder / f"slot-{self.slot}" / f"{step}.pt"

    def save_state(self, state: dict[str, Any], step: int) -> None:
        """Write the trainer state at ``step``; keep the last ``KEEP_STATES``."""
        path = self.state_path(step)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_atomic(state, path)
        older = sorted((p for p in path.parent.glob("*.pt") if p.stem.isdigit()), key=lambda p: int(p.stem))
        for stale in older[:-KEEP_STATES]:
            stale.unlink(missing_ok=True)

    def append(self, row: dict[str, Any]) -> None:
        """One chunk's line, flushed to disk before the member reports it to Ray (a kill may follow)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.rows_path.open("a") as file:
            file.write(json.dumps(row) + "\n")
            file.flush()
            os.fsync(file.fileno())

    def rows(self) -> list[dict[str, Any]]:
        """The chunks in order; a line a kill tore is dropped (its chunk is trained again)."""
        if not self.rows_path.exists():
            return []
        rows = []
        for line in self.rows_path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
        return rows

    def truncate(self, step: int) -> list[dict[str, Any]]:
        """Drop the chunks that ended after ``step`` (atomically); returns the rows kept."""
        kept = [row for row in self.rows() if row["member_step"] <= step]
        temporary = self.rows_path.with_suffix(".jsonl.tmp")
        temporary.write_text("".join(json.dumps(row) + "\n" for row in kept))
        os.replace(temporary, self.rows_path)
        return kept


def member_logs(folder: Path) -> list[MemberLog]:
    """The logs of ``folder``'s slots, by slot."""
    slots = sorted(int(p.stem.removeprefix("slot-")) for p in folder.glob("slot-*.jsonl"))
    return [MemberLog(folder, slot) for slot in slots]


@dataclass(frozen=True)
class Resume:
    """Where a killed population restarts: the round ``step`` every live member finished."""

    step: int
    members: list[dict[str, Any]]  # Ray configs of the live slots, with ``SLOT`` and ``RESUME_STEP``
    data: list[dict[str, Any]]  # PB2's data from before the round, by slot


def find_resume(folder: Path, population: int, *, solved_at: float | None = None) -> Resume | None:
    """The round a killed population in ``folder`` restarts from, after dropping the chunks past it; None when
    there is none (no member finished a chunk, or a member's state at the round is missing): start over.

    Members that ended by the round (diverged, or reached their budget) stay ended; ``members`` is empty when all
    did, or when a member's final evaluation reached ``solved_at`` (an until-solved population that Ray stopped,
    killed before its record was written): nothing to train, the record is built from the logs as they are.
    """
    logs = member_logs(folder)
    rows = {log.slot: log.rows() for log in logs}
    data_path = folder / DATA_FILE
    data = json.loads(data_path.read_text()) if data_path.exists() else []
    finals = [row.get("final_return") for chunks in rows.values() for row in chunks]
    if solved_at is not None and any(final is not None and final >= solved_at for final in finals):
        return Resume(max(row["member_step"] for chunks in rows.values() for row in chunks), [], data)
    if len(logs) != population or any(not chunks for chunks in rows.values()):
        return None
    open_ends = [chunks[-1]["member_step"] for chunks in rows.values() if not chunks[-1]["done"]]
    step = min(open_ends, default=max(chunks[-1]["member_step"] for chunks in rows.values()))
    members = []
    for log in logs:
        kept = log.truncate(step)
        if not kept:
            return None
        last = kept[-1]
        if last["done"]:
            continue
        if last["member_step"] != step or not log.state_path(step).exists():
            return None
        members.append({**last["config"], SLOT: log.slot, RESUME_STEP: step})
    return Resume(step, members, [row for row in data if row["Time"] < step])


class ResumablePB2(ExploringPB2):
    """Ray Tune's PB2 (exploring where Ray's skips it: ``_pb2_explore.py``), plus: its data persisted by slot
    after each change, an earlier run's data (``seed``) merged in before its first explore, each member kept in
    its slot through an exploit, and (``resume_step``) the synchronous clock set to the round the resumed members
    report again: left at the first interval, PBT's next barrier would become that same round once it is passed,
    and every member would wait paused for ever."""

    def __init__(
        self, *, folder: Path, seed: list[dict[str, Any]], resume_step: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if resume_step is not None:
            self._next_perturbation_sync = resume_step
        self._folder = folder
        self._seed = list(seed)
        self._names: dict[int, str] = {}  # slot -> the Trial's name (PB2's data key)

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        super().on_trial_add(tune_controller, trial)
        self._names[trial.config[SLOT]] = str(trial)

    def _save_trial_state(self, state: Any, time: int, result: dict[str, Any], trial: Any) -> Any:
        score = super()._save_trial_state(state, time, result, trial)
        self._write_data()
        return score

    def _get_new_config(self, trial: Any, trial_to_clone: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        if self._seed:  # every live member has reported by the first explore: all are named by now
            self.data = pd.concat([self._seed_frame(), self.data]).reset_index(drop=True)
            self._seed = []
        new_config, operations = super()._get_new_config(trial, trial_to_clone)
        new_config[SLOT] = trial.config[SLOT]
        self._write_data()
        return new_config, operations

    def _seed_frame(self) -> pd.DataFrame:
        """The earlier run's rows under this run's trial names (a slot that ended keeps a name of its own)."""
        rows = [{"Trial": self._names.get(row[SLOT], f"slot-{row[SLOT]}"), **row} for row in self._seed]
        return pd.DataFrame(rows).drop(columns=[SLOT])

    def _write_data(self) -> None:
        """PB2's data, and the seed not merged yet, by slot (written whole, atomically)."""
        slots = {name: slot for slot, name in self._names.items()}
        rows = [
            {
                SLOT: slots[name] if name in slots else _named_slot(name),
                **{k: v for k, v in row.items() if k != "Trial"},
            }
            for row in self.data.to_dict("records")
            for name in [row["Trial"]]
        ]
        self._folder.mkdir(parents=True, exist_ok=True)
        temporary = self._folder / f"{DATA_FILE}.tmp"
        temporary.write_text(json.dumps(self._seed + rows, default=float))
        os.replace(temporary, self._folder / DATA_FILE)


def _named_slot(name: str) -> int:
    """The slot of a seed row a slot that ended kept (``slot-<n>``)."""
    return int(name.removeprefix("slot-"))
