"""Record consumers that are not tied to Optuna or MLflow: the console progress bar and the JSONL writer.

A record is a flat dict with at least ``step`` (env steps done). Kinds of record: episode (``episodic_return``,
``episode_length``), training (``loss``, ``q_mean``, ``epsilon``, ``sps``, ``hp/<name>``, ``hypergrad/<name>``),
evaluation (``eval_return``, ``eval_return_std``) and live control (``control/status``, ``control/command`` and the
other ``control/...`` fields, see ``dqnmap_auto.control.records``): the only kind with text values besides numbers.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TextIO

from tqdm.auto import tqdm

if TYPE_CHECKING:
    from dqnmap_auto.trainer import Trainer, TrainResult

Record = dict[str, float | str]


class Callback:
    """Hooks the Trainer calls; ``on_record`` returning ``False`` stops training after the current step.

    A callback with a ``state_key`` keeps state across a resume: the Trainer's checkpoint holds its
    :meth:`state_dict` (plain data: it is loaded with ``weights_only``) and hands it back to
    :meth:`load_state_dict`.
    """

    state_key: ClassVar[str | None] = None

    def on_start(self, trainer: Trainer) -> None:
        """Called once before the first env step."""

    def on_record(self, record: Record) -> bool | None:
        """Called for every record, in step order."""
        return None

    def on_phase(self, trainer: Trainer) -> None:
        """Called at every training-phase boundary (every ``train_freq`` vector steps, also before learning
        starts): the point where changing a hyperparameter cannot split a phase. Only callbacks that override it
        are called."""

    def on_end(self, result: TrainResult) -> None:
        """Called once after the final evaluation."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (called before :meth:`on_start` when a run resumes)."""


class JsonlWriter(Callback):
    """Appends every record as one JSON line: flushed at each evaluation and live-control record, at least every
    ``flush_every`` seconds while records arrive (so the file can be followed live), and at the end."""

    def __init__(self, path: str | Path, *, flush_every: float = 5.0) -> None:
        self.path = Path(path)
        self.flush_every = flush_every
        self._file: TextIO | None = None
        self._flushed = time.monotonic()

    def on_start(self, trainer: Trainer) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")

    def on_record(self, record: Record) -> None:
        assert self._file is not None, "on_start was not called"
        self._file.write(json.dumps(record) + "\n")
        now = time.monotonic()
        if "eval_return" in record or "control/status" in record or now - self._flushed >= self.flush_every:
            self._file.flush()
            self._flushed = now

    def on_end(self, result: TrainResult) -> None:
        self.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class RecordCollector(Callback):
    """Keeps every record in memory (notebooks, tests, plots)."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    def on_record(self, record: Record) -> None:
        self.records.append(record)

    def series(self, key: str) -> tuple[list[float], list[float]]:
        """(steps, values) of the records that carry ``key``."""
        rows = [(float(r["step"]), float(r[key])) for r in self.records if key in r]
        return [s for s, _ in rows], [v for _, v in rows]


class ProgressBar(Callback):
    """Console bar over env steps: SPS, last eval return, current learning rate and gamma."""

    def __init__(self, *, description: str = "train", leave: bool = True, file: TextIO | None = None) -> None:
        self.description = description
        self.leave = leave
        self.file = file  # None: stderr
        self._bar: tqdm | None = None
        self._last_step = 0
        self._postfix: dict[str, str] = {}

    def on_start(self, trainer: Trainer) -> None:
        self._bar = tqdm(
            total=trainer.config.training.total_steps,
            desc=self.description,
            unit="step",
            leave=self.leave,
            dynamic_ncols=True,
            file=self.file,
        )
        self._last_step = trainer.step

    def on_record(self, record: Record) -> None:
        if self._bar is None:
            return
        if "sps" in record:
            self._postfix["sps"] = f"{record['sps']:.0f}"
            self._postfix["lr"] = f"{record['hp/lr']:.2e}"
            self._postfix["gamma"] = f"{record['hp/gamma']:.4f}"
        if "eval_return" in record:
            self._postfix["eval"] = f"{record['eval_return']:.1f}"
        step = int(record["step"])
        if step > self._last_step:
            self._bar.update(step - self._last_step)
            self._last_step = step
        self._bar.set_postfix(self._postfix, refresh=False)

    def on_end(self, result: TrainResult) -> None:
        """The bar's last line shows the final evaluation (emitted at the step of the last record, it would
        otherwise leave the previous periodic one on screen)."""
        if self._bar is not None:
            self._postfix["eval"] = f"{result.final_eval.mean:.1f}"
            self._bar.set_postfix(self._postfix, refresh=True)
            self._bar.close()
            self._bar = None
