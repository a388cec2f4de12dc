"""Helpers shared by the benchmark scripts.

- the rl-zoo3 settings as a TrainConfig and as SB3 kwargs (the configs every benchmark starts from);
- the benchmark environments with their rl-zoo3 budget and success threshold;
- one training run as a JSON-able record (so the same fields come from every script);
- an append-only JSONL log of finished runs and a process pool that fills it, so that a run of hours can be
  killed and resumed, and a report rebuilt from what is there;
- the report scaffolding (command line, machine, commit) and matplotlib figures.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import multiprocessing
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dqnmap_auto.config import TrainConfig, load_train_config
from dqnmap_auto.errors import DivergenceError
from dqnmap_auto.evaluation import EvalResult, Evaluator

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
MACHINE = "2-core shared CPU (no GPU), 1 torch thread per run"

#: Turns self-tuning off: the "fixed hyperparameters" arm of every benchmark.
FIXED = ("self_tuning.enabled=false",)


@dataclass(frozen=True)
class BenchEnv:
    """A benchmark environment: its spec (rl-zoo3's tuned row as the base), budget and success threshold."""

    name: str
    spec: Path
    steps: int
    threshold: float
    worst: float = 0.0  # a return below any real episode's: what a diverged run scores in rank-based statistics

    def success(self, final_mean: float | None) -> bool:
        """Success as the issue defines it: the final deterministic 20-episode mean reaches the threshold."""
        return final_mean is not None and final_mean >= self.threshold


ENVS: dict[str, BenchEnv] = {
    "cartpole": BenchEnv("cartpole", ROOT / "studies" / "cartpole.yaml", 50_000, 475.0, worst=0.0),
    "acrobot": BenchEnv("acrobot", ROOT / "studies" / "acrobot.yaml", 100_000, -100.0, worst=-500.0),
    # gymnasium's reward_threshold of MountainCar-v0 (-110); rl-zoo3's published single run: -100.8
    "mountaincar": BenchEnv("mountaincar", ROOT / "studies" / "mountaincar.yaml", 120_000, -110.0, worst=-200.0),
    # gymnasium's "solved" line of LunarLander (200); rl-zoo3's published 100k-step run: 154 +- 79
    "lunarlander": BenchEnv("lunarlander", ROOT / "studies" / "lunarlander.yaml", 100_000, 200.0, worst=-1000.0),
}
#: The envs of the issue-6 benchmarks (anchor, robustness, hd signal), which size their runs per env.
CLASSIC_PAIR = ("cartpole", "acrobot")


def bench_config(env: BenchEnv, *, steps: int, seed: int, overrides: Sequence[str] = ()) -> TrainConfig:
    """The env's spec base with the run's budget and seed, a 20-episode final evaluation, and ``overrides``.

    Five evaluations of 10 episodes during the run give a learning curve at little cost; the success
    criterion only reads the final one.
    """
    fixed = [
        f"training.total_steps={steps}",
        f"training.seed={seed}",
        f"training.eval_every={max(steps // 5, 1)}",
        "training.eval_episodes=10",
        "training.final_eval_episodes=20",
    ]
    return load_train_config(env.spec, overrides=[*fixed, *overrides])


def rl_zoo_cartpole(*, mode: str | None, steps: int, seed: int = 0) -> TrainConfig:
    """studies/cartpole.yaml (rl-zoo3's CartPole row) with self-tuning ``mode`` (None: off)."""
    overrides = [f"training.total_steps={steps}", f"training.seed={seed}", "training.eval_every=0"]
    overrides += list(FIXED) if mode is None else [f"self_tuning.mode={mode}"]
    return load_train_config(ENVS["cartpole"].spec, overrides=overrides)


def sb3_kwargs(config: TrainConfig) -> dict[str, Any]:
    """Stable-Baselines3 DQN arguments equal to ``config``'s agent settings (the benchmarks' SB3 arm runs
    rl-zoo3's row, whose lr is constant: a linear ``agent.lr_decay`` is refused rather than dropped)."""
    agent = config.agent
    if agent.lr_decay != "none":
        raise ValueError(f"sb3_kwargs: agent.lr_decay={agent.lr_decay} has no SB3 equivalent here")
    return {
        "learning_rate": agent.lr,
        "batch_size": agent.batch_size,
        "buffer_size": agent.buffer_size,
        "learning_starts": agent.learning_starts,
        "gamma": agent.gamma,
        "target_update_interval": agent.target_update_interval,
        "train_freq": agent.train_freq,
        "gradient_steps": agent.gradient_steps,
        "exploration_fraction": agent.exploration_fraction,
        "exploration_initial_eps": agent.exploration_initial_eps,
        "exploration_final_eps": agent.exploration_final_eps,
        "tau": agent.tau,
        "max_grad_norm": agent.max_grad_norm,
        "policy_kwargs": {"net_arch": list(agent.net_arch)},
        "seed": config.training.seed,
        "verbose": 0,
        "device": "cpu",
    }


# -- one run -------------------------------------------------------------------------------------------------
def final_evaluator(config: TrainConfig) -> Evaluator:
    """The evaluation the Trainer ends with (same episode seeds, same count): used for SB3 runs too, so both
    implementations are measured on exactly the same 20 episodes."""
    return Evaluator(config.env, seed=config.training.seed, n_episodes=config.training.final_eval_episodes)


def outcome(
    config: TrainConfig,
    *,
    final: EvalResult | None,
    steps: int,
    seconds: float,
    hp_initial: dict[str, float],
    hp_final: dict[str, float],
    eval_history: Sequence[tuple[int, float]] = (),
    diverged: str | None = None,
    solved_at: int | None = None,
) -> dict[str, Any]:
    """The fields every run record carries, whichever implementation trained it (``solved_at``: the step at
    which ``training.stop_at_return`` ended the run)."""
    return {
        "final_mean": final.mean if final is not None else None,
        "final_std": final.std if final is not None else None,
        "final_returns": final.returns if final is not None else None,
        "env_steps": steps,
        "wall_s": round(seconds, 2),
        "sps": round(steps / seconds, 1) if seconds > 0 else None,
        "hp_initial": hp_initial,
        "hp_final": hp_final,
        "tuned": config.self_tuning.tuned(),
        "eval_history": [[int(s), float(v)] for s, v in eval_history],
        "diverged": diverged,
        "solved_at": solved_at,
    }


def train_dqnmap(config: TrainConfig) -> dict[str, Any]:
    """Train this project's agent; a divergence (non-finite loss or Q) is a recorded outcome, not an error."""
    from dqnmap_auto.trainer import Trainer

    started = time.perf_counter()
    trainer = Trainer(config)
    try:
        result = trainer.run()
    except DivergenceError as error:
        return outcome(
            config,
            final=None,
            steps=trainer.step,
            seconds=time.perf_counter() - started,
            hp_initial=trainer.initial_hyperparams,
            hp_final=trainer.tuner.space.current(),
            eval_history=trainer.eval_history,
            diverged=error.reason,
        )
    return outcome(
        config,
        final=result.final_eval,
        steps=result.steps,
        seconds=time.perf_counter() - started,
        hp_initial=result.initial_hyperparams,
        hp_final=result.hyperparams,
        eval_history=result.eval_history,
        solved_at=result.solved_at,
    )


# -- results log and process pool ------------------------------------------------------------------------------
class ResultLog:
    """Append-only JSONL of finished runs, keyed by ``record["key"]``.

    Why a log and not one result file at the end: the full benchmarks take hours on a shared 2-core machine;
    every finished run is on disk at once (written, flushed, fsynced), a rerun skips what is there, and the
    report is rebuilt from the lines. A line cut short by a kill is skipped with a warning.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def records(self) -> list[dict[str, Any]]:
        """Every recorded run once (the first line of a key wins)."""
        if not self.path.exists():
            return []
        out: dict[str, dict[str, Any]] = {}
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                print(f"warning: {self.path}:{number}: unreadable line skipped (cut short?)", file=sys.stderr)
                continue
            out.setdefault(record["key"], record)
        return list(out.values())

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold a lock file beside the log: two invocations on one log would run the same runs twice."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with (self.path.parent / f"{self.path.stem}.lock.tmp").open("w") as handle:  # *.tmp: git-ignored
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SystemExit(f"error: another benchmark process is writing {self.path}") from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def keys(self) -> set[str]:
        return {record["key"] for record in self.records()}

    def _ends_cut(self) -> bool:
        """Whether the log's last byte is not a newline (its last line was cut short)."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return False
        with self.path.open("rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) != b"\n"

    def append(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(_json_safe(record), separators=(",", ":")) + "\n"
        if self._ends_cut():
            line = "\n" + line  # a kill cut the last line: the new record must not run on into it
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())


def _json_safe(value: Any) -> Any:
    """NaN/inf become null: strict JSON readers (and the report) must not choke on a diverged run."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


@dataclass(frozen=True)
class Task:
    """One independent run: ``fn(arg)`` returns the outcome fields; ``fields`` say which run it is."""

    key: str
    fields: dict[str, Any]
    fn: Callable[[Any], dict[str, Any]]
    arg: Any = None
    label: str = field(default="", compare=False)


def _init_worker() -> None:
    """One torch thread per worker: N workers on N cores, no oversubscription (and the Trainer's default)."""
    import torch

    torch.set_num_threads(1)


def run_tasks(
    tasks: Sequence[Task],
    log: ResultLog,
    *,
    workers: int,
    annotate: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> None:
    """Run the tasks not yet in ``log`` (in the given order) in ``workers`` processes; append each as it ends.

    ``annotate`` adds derived fields (success, ...) to a record before it is written. Only this (parent)
    process writes the log, so lines never interleave. Spawned workers (not forked): a fresh interpreter per
    worker, no torch/threads state copied from the parent.
    """
    with log.exclusive():
        _run_pending(tasks, log, workers=workers, annotate=annotate)


def _run_pending(
    tasks: Sequence[Task],
    log: ResultLog,
    *,
    workers: int,
    annotate: Callable[[dict[str, Any]], dict[str, Any]] | None,
) -> None:
    done = log.keys()
    pending = [task for task in tasks if task.key not in done]
    print(f"{len(tasks) - len(pending)} of {len(tasks)} runs already in {log.path}; {len(pending)} to run", flush=True)
    if not pending:
        return
    started = time.perf_counter()

    def record(index: int, task: Task, result: dict[str, Any]) -> None:
        line = {"key": task.key, **task.fields, **result}
        log.append(annotate(line) if annotate is not None else line)
        elapsed = time.perf_counter() - started
        summary = result.get("summary") or _summary(result)
        print(f"[{index}/{len(pending)} {elapsed:.0f}s] {task.label or task.key}: {summary}", flush=True)

    if workers <= 1:
        _init_worker()
        for index, task in enumerate(pending, start=1):
            record(index, task, task.fn(task.arg))
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker) as pool:
        # Submitted in order: the pool's queue is FIFO, so the interleaved order is the execution order.
        futures: dict[Future[dict[str, Any]], Task] = {pool.submit(task.fn, task.arg): task for task in pending}
        finished = 0
        try:
            remaining = set(futures)
            while remaining:
                ready, remaining = wait(remaining, return_when=FIRST_COMPLETED)
                for future in ready:
                    finished += 1
                    record(finished, futures[future], future.result())
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _summary(result: dict[str, Any]) -> str:
    if result.get("diverged"):
        return f"diverged ({result['diverged']}) after {result['wall_s']:.0f}s"
    return f"final {result['final_mean']:.1f} in {result['wall_s']:.0f}s ({result['sps']:.0f} steps/s)"


# -- reports ------------------------------------------------------------------------------------------------
def command_line() -> str:
    """How this script was started, as one shell line (with the PYTHONPATH it needs); ``--report-only`` left
    out, so a rebuilt report still names the command that ran the benchmark."""
    script = os.path.relpath(sys.argv[0], ROOT) if os.path.isabs(sys.argv[0]) else sys.argv[0]
    args = [arg for arg in sys.argv[1:] if arg != "--report-only"]
    return "PYTHONPATH=. python " + shlex.join([script, *args])


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"


def report_header(title: str, *, quick: bool, notes: Iterable[str] = ()) -> list[str]:
    """Title, the exact command, machine and commit: what anyone needs to rerun or discount a report.

    A quick report says so in its title: its runs are too short for its success figures to mean anything.
    """
    if quick:
        title = f"QUICK SMOKE TEST, not a result: {title}"
    lines = [
        f"# {title}",
        "",
        f"- Command: `{command_line()}`",
        f"- Machine: {MACHINE}; Python {platform.python_version()}; commit {git_commit()}",
        f"- Written: {time.strftime('%Y-%m-%d %H:%M')}"
        + (" (rebuilt from the JSONL with `--report-only`)" if "--report-only" in sys.argv else ""),
    ]
    lines += [f"- {note}" for note in notes]
    return [*lines, ""]


def write_report(path: Path, lines: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines).rstrip() + "\n"
    path.write_text(text, encoding="utf-8")
    print(text)
    print(f"report: {path}")


def results_name(base: str, *, env: str | None = None, quick: bool, tag: str = "") -> str:
    """``robustness-cartpole-quick`` etc.: quick outputs never overwrite (or mix with) full-size ones."""
    parts = [base, env or "", tag, "quick" if quick else ""]
    return "-".join(p for p in parts if p)


def seconds_per_step(records: Iterable[dict[str, Any]], *, by: str) -> dict[str, float]:
    """Measured wall seconds per env step, per value of field ``by`` (e.g. per mode): the basis of the
    full-size CPU-time estimates (one run = one thread, so wall time of a run is its CPU time)."""
    totals: dict[str, list[float]] = {}
    for record in records:
        if record.get("env_steps"):
            pair = totals.setdefault(str(record[by]), [0.0, 0.0])
            pair[0] += record["wall_s"]
            pair[1] += record["env_steps"]
    return {name: seconds / steps for name, (seconds, steps) in totals.items()}


def cpu_estimate_lines(
    records: Sequence[dict[str, Any]], full_steps: dict[str, int], *, by: str, workers: int = 2
) -> list[str]:
    """Markdown: the recorded CPU time and the full size extrapolated from this run's seconds per env step."""
    rates = seconds_per_step(records, by=by)
    spent = sum(r.get("wall_s", 0.0) for r in records)
    lines = [f"CPU time of the recorded runs: {spent / 60:.1f} min (sum of run wall times, 1 thread each)."]
    if all(name in rates for name in full_steps):
        total = sum(rates[name] * steps for name, steps in full_steps.items())
        per = ", ".join(f"{name} {rates[name] * 1000:.2f} ms/step" for name in full_steps)
        lines.append(
            f"Full size extrapolated from these rates ({per}): {total / 3600:.1f} CPU hours, about "
            f"{total / 3600 / workers:.1f} h wall with --workers {workers} at the same per-run speed (rates of short "
            "runs include relatively more evaluation, and depend on the machine's load at the time)."
        )
    return lines


def mean_std(values: Sequence[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.fmean(values):.1f} ± {statistics.pstdev(values):.1f}"


def fmt_value(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display on the benchmark machines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def late_means(series: dict[str, tuple[list[float], list[float]]], total_steps: int) -> dict[str, list[float]]:
    """Per series, [mean, standard error] of its records after the first third of the run (the exploration
    phase), for the signal scripts (lr_signals.py, gamma_signals.py); a series with fewer than two is left out."""
    late = {}
    for name, (steps, values) in series.items():
        tail = [v for s, v in zip(steps, values, strict=True) if s > total_steps / 3]
        if len(tail) >= 2:
            late[name] = [statistics.fmean(tail), statistics.stdev(tail) / math.sqrt(len(tail))]
    return late


def add_common_args(parser: Any, *, envs: Sequence[str] = tuple(ENVS)) -> None:
    """The options every benchmark script shares."""
    parser.add_argument("--env", choices=list(envs), default=envs[0])
    parser.add_argument("--quick", action="store_true", help="smoke-test size (minutes); separate output files")
    parser.add_argument("--workers", type=int, default=1, help="independent runs in N processes")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    parser.add_argument("--report-only", action="store_true", help="rebuild the report from the JSONL, run nothing")
    parser.add_argument("--tag", default="", help="suffix of the output names (a variant: --set ...)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra config override for this project's runs (repeatable), e.g. self_tuning.max_change=null",
    )


def add_arms_arg(parser: Any, arms: Sequence[str]) -> None:
    """``--arms``: run only some arms. Arms that don't depend on self-tuning settings (sb3, fixed) need not be
    rerun for an engine variant: their recorded runs can be copied over."""
    parser.add_argument("--arms", default=",".join(arms), help=f"comma-separated arms to run, of {list(arms)} [all]")


def chosen_arms(parser: Any, text: str, arms: Sequence[str]) -> list[str]:
    """The arms named in ``text``; an unknown name is a usage error (exit 2)."""
    chosen = [arm.strip() for arm in text.split(",") if arm.strip()]
    unknown = sorted(set(chosen) - set(arms))
    if unknown or not chosen:
        parser.error(f"--arms: unknown arm(s) {unknown or text!r}; choose from {list(arms)}")
    return chosen


def timed(method, total: list[float]):  # type: ignore[no-untyped-def]
    """Wrap ``method`` so that the wall time spent inside it is added to ``total[0]``: the overhead benchmarks
    patch the methods of the part they measure with it."""

    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            total[0] += time.perf_counter() - started

    return wrapper
