"""The trainer side: read a channel at most once a second, and apply what is new at training-phase boundaries.

One :class:`Controller` per run or trial owns the channel and the reading clock; each seed's Trainer gets a
:class:`ControlCallback` from it (a trial's seeds are trained in turn, so every seed applies every command at its
own next phase boundary). The callback applies a command through the Trainer's and the tuner's narrow methods
(:mod:`.rules`), then hands the acknowledgement to the Trainer as an ordinary record, so every record consumer
(JSONL, MLflow, notes, logs, plots) logs it; the channel publishes it once (the first seed to apply it).

The ids of the commands a seed applied are part of its checkpoint (``state_key``), so a resumed run applies
exactly the commands its checkpoint had not seen.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dqnmap_auto.callbacks import Callback, Record
from dqnmap_auto.control.channels import Channel
from dqnmap_auto.control.commands import Command
from dqnmap_auto.control.records import control_record
from dqnmap_auto.control.rules import APPLIED, PublishedSpace, apply, current_values

if TYPE_CHECKING:
    from dqnmap_auto.trainer import Trainer, TrainResult

log = logging.getLogger(__name__)

#: Seconds between two reads of the channel, at least.
POLL_INTERVAL = 1.0
#: Seconds between two (time, step) points kept to estimate at which env step a command was sent.
TIMELINE_EVERY = 0.25


class Controller:
    """Shared by the seeds of one run: reads ``channel`` at most every ``interval`` seconds.

    ``background``: the reads happen on a daemon thread, and a phase boundary only takes what the last read found,
    so a slow or unreachable storage (PostgreSQL on another host) never stalls training; the trial channel uses it.
    Otherwise (a run directory's file, memory) the read happens at the phase boundary itself, when due.
    """

    def __init__(
        self,
        channel: Channel,
        *,
        interval: float = POLL_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        background: bool = False,
    ) -> None:
        self.channel = channel
        self.interval = interval
        self.clock = clock
        self.background = background
        self.commands: list[Command] = []
        self.generation = 0  # bumped whenever the list of commands changed
        self.reads = 0
        self.read_seconds = 0.0  # time spent reading (CPU time of the reader thread in the background)
        self._next_read = float("-inf")
        self._lock = threading.Lock()
        self._latest: list[Command] = []  # as last read, with its generation
        self._latest_generation = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._acknowledged: set[str] = set()
        self._unpublished: list[tuple[Command, Record]] = []  # acknowledgements the channel could not take yet
        self._opened = False
        self._failing = False

    def callback(self) -> ControlCallback:
        """The callback of one seed's Trainer."""
        return ControlCallback(self)

    def open(self, space: PublishedSpace) -> None:
        """Publish ``space`` and start reading (once, whichever seed starts first)."""
        if self._opened:
            return
        self._opened = True
        self._guard("publish the space", self.channel.open, space)
        if self.background:
            self._thread = threading.Thread(target=self._read_loop, name="dqnmap-live-control", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop reading; idempotent (the owner calls it whatever way the run ended)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._opened:
            self._opened = False
            self._guard("close", self.channel.close)

    def _read_loop(self) -> None:
        while not self._stop.is_set():
            self._read_now()
            self._stop.wait(self.interval)

    def _read_now(self) -> None:
        started = time.thread_time() if self.background else time.perf_counter()
        read, commands = self._guard("read commands", self.channel.read)
        if read:
            with self._lock:
                if [c.id for c in commands] != [c.id for c in self._latest]:
                    self._latest = list(commands)
                    self._latest_generation += 1
        self.reads += 1
        self.read_seconds += (time.thread_time() if self.background else time.perf_counter()) - started

    def poll(self) -> None:
        """At a phase boundary: take the commands the last read found (reading first when due, unless reads
        happen in the background), and retry acknowledgements the channel refused."""
        if not self.background:
            now = self.clock()
            if now >= self._next_read:
                self._next_read = now + self.interval
                self._read_now()
        if self._latest_generation != self.generation:
            with self._lock:
                self.commands, self.generation = self._latest, self._latest_generation
        if self._unpublished:
            self._publish()

    def acknowledge(self, command: Command, record: Record) -> None:
        """Publish the first seed's outcome of each command (retried at the next polls if the channel fails)."""
        if command.id not in self._acknowledged:
            self._acknowledged.add(command.id)
            self._unpublished.append((command, record))
            self._publish()

    def _publish(self) -> None:
        while self._unpublished:
            command, record = self._unpublished[0]
            if not self._guard("acknowledge", self.channel.acknowledge, command, record)[0]:
                return
            self._unpublished.pop(0)

    def _guard(self, what: str, action: Callable[..., Any], *args: Any) -> tuple[bool, Any]:
        """(whether it worked, its result): a storage hiccup must not end a training run, so warn once and try
        again at the next poll."""
        try:
            result = action(*args)
        except Exception as error:  # storage errors come in many types (OSError, SQLAlchemy, Optuna)
            if not self._failing:
                log.warning("live control: cannot %s (%s); retrying", what, f"{type(error).__name__}: {error}"[:300])
            self._failing = True
            return False, None
        self._failing = False
        return True, result


class ControlCallback(Callback):
    """Applies new commands at the Trainer's phase boundaries and emits their records."""

    state_key = "control"

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self.applied: set[str] = set()  # ids of the commands this seed applied (or rejected)
        self._seen_generation = -1
        # (wall time, env step) every TIMELINE_EVERY seconds: the env step at which a command was sent is
        # interpolated from them.
        self._timeline: deque[tuple[float, int]] = deque(maxlen=64)

    def on_start(self, trainer: Trainer) -> None:
        self.controller.open(PublishedSpace.of(trainer.tuner.space, trainer.tuner.replayed()))
        self._timeline.append((time.time(), trainer.step))

    def on_phase(self, trainer: Trainer) -> None:
        controller = self.controller
        controller.poll()
        now = time.time()
        if now - self._timeline[-1][0] >= TIMELINE_EVERY:
            self._timeline.append((now, trainer.step))
        if controller.generation == self._seen_generation:
            return
        self._seen_generation = controller.generation
        for command in controller.commands:
            if command.id not in self.applied:
                self._apply(trainer, command)

    def _apply(self, trainer: Trainer, command: Command) -> None:
        outcome = apply(trainer, command)
        self.applied.add(command.id)
        record = control_record(
            command,
            outcome,
            step=trainer.step,
            at=time.time(),
            latency_steps=self._steps_since(command.sent_at, trainer.step),
            values=current_values(trainer) if outcome.status == APPLIED and command.verb != "stop" else None,
        )
        trainer.emit(record)
        self.controller.acknowledge(command, record)

    def _steps_since(self, sent_at: float, step: int) -> float | None:
        """Env steps from ``sent_at`` to now, by linear interpolation between polls (None: sent before them)."""
        times = [t for t, _ in self._timeline]
        index = bisect.bisect_right(times, sent_at)
        if index == 0:
            return None
        t0, s0 = self._timeline[index - 1]
        t1, s1 = self._timeline[index] if index < len(self._timeline) else (time.time(), step)
        at_send = s0 + (s1 - s0) * (sent_at - t0) / (t1 - t0) if t1 > t0 else s0
        return max(0.0, step - at_send)

    def on_end(self, result: TrainResult) -> None:
        self.controller.close()

    def state_dict(self) -> dict[str, Any]:
        return {"applied": sorted(self.applied)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.applied = set(state.get("applied", []))
