"""Live, human-readable logs of trials and training runs, and the follower behind ``dqnmap-auto study logs``.

Each trial writes ``<project dir>/logs/<study>/trial-<n>/trial.log`` (and ``metrics.jsonl`` next to it) while it
runs; ``dqnmap-auto train`` writes ``train.log`` into its output directory. One line per training record, per
evaluation and per live-control acknowledgement, written line by line so ``--follow`` (or ``tail -f``) sees it at
once. The log lives on the machine that ran the trial.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from socket import gethostname
from typing import TYPE_CHECKING, Any, TextIO

import optuna
from optuna.trial import FrozenTrial, TrialState

from dqnmap_auto.callbacks import Callback, Record
from dqnmap_auto.errors import ConfigError

if TYPE_CHECKING:
    from dqnmap_auto.trainer import Trainer, TrainResult

TRIAL_LOG = "trial.log"
RUN_LOG = "train.log"
LOGS_DIR = "logs"


def trial_log_dir(directory: Path, study_name: str, number: int) -> Path:
    """Where trial ``number`` of ``study_name`` keeps its log and live metrics."""
    return directory / LOGS_DIR / study_name / f"trial-{number}"


def _hp(record: Mapping[str, Any]) -> str:
    return " ".join(f"{k[3:]} {float(v):.4g}" for k, v in record.items() if k.startswith("hp/"))


def format_record(record: Mapping[str, Any]) -> str | None:
    """The log line of a record (None for the ones not logged: episodes)."""
    step = f"step {int(record['step']):>8}"
    if "control/status" in record:
        return (
            f"{step}  control {record['control/status']}: {record['control/command']} ({record['control/detail']}) "
            f"via {record['control/via']} by {record['control/by']}"
        )
    if "eval_return" in record:
        return f"{step}  eval {float(record['eval_return']):.2f} ± {float(record.get('eval_return_std', 0.0)):.2f}"
    if "sps" in record:
        parts = [f"{key} {float(record[key]):.4g}" for key in ("loss", "q_mean", "epsilon") if key in record]
        return f"{step}  {'  '.join(parts)}  sps {float(record['sps']):.0f}  |  {_hp(record)}"
    return None


class LogWriter(Callback):
    """Appends the log lines of one Trainer's records to ``path`` (shared by a trial's seeds: ``prefix``)."""

    def __init__(self, path: str | Path, *, prefix: str = "", header: str | None = None) -> None:
        self.path = Path(path)
        self.prefix = prefix
        self.header = header
        self._file: TextIO | None = None

    def _write(self, text: str) -> None:
        if self._file is not None:
            self._file.write(f"{time.strftime('%H:%M:%S')}  {self.prefix}{text}\n")

    def on_start(self, trainer: Trainer) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8", buffering=1)  # line-buffered: followers see each line
        if self.header:
            self._write(self.header)
        if trainer.resumed_from_step:
            self._write(f"resumed from the checkpoint at step {trainer.resumed_from_step}")

    def on_record(self, record: Record) -> None:
        line = format_record(record)
        if line is not None:
            self._write(line)

    def on_end(self, result: TrainResult) -> None:
        final = result.final_eval
        how = (
            f" (stopped by a `stop` at step {result.stop_requested_at})" if result.stop_requested_at is not None else ""
        )
        self._write(f"final eval {final.mean:.2f} ± {final.std:.2f} over {len(final.returns)} episodes{how}")
        self.close()

    def note(self, text: str) -> None:
        """A free line (the trial's outcome, for instance)."""
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as out:
                out.write(f"{time.strftime('%H:%M:%S')}  {self.prefix}{text}\n")
        else:
            self._write(text)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def follow(
    path: Path,
    *,
    lines: int,
    follow: bool,
    running: Callable[[], bool],
    echo: Callable[[str], None],
    poll: float = 0.5,
) -> None:
    """Print the last ``lines`` lines of ``path`` (0: all); with ``follow``, then every new line until
    ``running()`` turns false (the rest is printed before returning)."""
    with path.open("r", encoding="utf-8") as log:
        tail: deque[str] = deque(maxlen=lines or None)
        tail.extend(log)
        for line in tail:
            echo(line.rstrip("\n"))
        if not follow:
            return
        pending = ""
        while True:
            alive = running()  # asked before reading: the lines written before the end are all printed
            chunk = log.read()
            if chunk:
                pending += chunk
                *complete, pending = pending.split("\n")
                for line in complete:
                    echo(line)
            if not alive:
                if pending:
                    echo(pending)
                return
            time.sleep(poll)


def _host_attr(trial: FrozenTrial) -> str | None:
    host = trial.user_attrs.get("dqnmap.host")  # (dqnmap_auto.tuning.recovery.HOST_ATTR)
    return str(host) if host is not None else None


def trial_log(study: optuna.Study, directory: Path, number: int | None) -> tuple[int, Path]:
    """The log of trial ``number`` (None: the newest running trial with a log here, else the newest with one)."""
    trials = study.get_trials(deepcopy=False)
    if number is None:
        logged = [t for t in trials if (trial_log_dir(directory, study.study_name, t.number) / TRIAL_LOG).exists()]
        running = [t for t in logged if t.state == TrialState.RUNNING]
        if not logged:
            raise ConfigError(f"no trial of study {study.study_name!r} has a log in {directory / LOGS_DIR}")
        number = (running or logged)[-1].number
    if not 0 <= number < len(trials):
        raise ConfigError(f"study {study.study_name!r} has no trial {number} (trials: 0..{len(trials) - 1})")
    path = trial_log_dir(directory, study.study_name, number) / TRIAL_LOG
    if not path.exists():
        host = _host_attr(trials[number])
        where = (
            f"; it ran on {host}, whose project directory holds its log" if host not in (None, gethostname()) else ""
        )
        raise ConfigError(f"no log for trial {number} ({path} does not exist{where})")
    return number, path


def trial_running(study: optuna.Study, number: int) -> Callable[[], bool]:
    """Whether the trial still runs, asked of the storage (for :func:`follow`)."""
    trial_id = study.get_trials(deepcopy=False)[number]._trial_id
    return lambda: not study._storage.get_trial(trial_id).state.is_finished()


def trial_outcome(study: optuna.Study, number: int) -> str:
    trial = study._storage.get_trial(study.get_trials(deepcopy=False)[number]._trial_id)
    value = f" with value {trial.value:.2f}" if trial.value is not None else ""
    return f"trial {number}: {trial.state.name}{value}"
