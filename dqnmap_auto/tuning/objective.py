"""One Optuna trial: sample a config, train ``seeds`` agents interleaved, report, prune.

Why interleaved seeds: all seeds reach each evaluation point together, so the value reported at step s is the
mean over seeds at s, and the pruner decides on that (less noisy than one seed). With the Wilcoxon pruner,
which is made for paired per-instance values, each seed's return is reported on its own instead, at step
``eval_index * seeds + seed_index``, so the pruner pairs the same (evaluation, seed) across trials.

Divergence (non-finite loss or Q-values) ends the trial as PRUNED, with the reason in the ``diverged`` user
attribute: the sampler then still learns that the region is bad (it ignores FAILed trials), and a diverged
trial is a legitimate outcome of a configuration, not a bug.

Live control (``dqnmap_auto.control``): every seed's Trainer takes commands from the trial's user attributes; a
``stop`` ends every seed at its next phase boundary and the trial COMPLETEs with the final evaluation's value
(``stopped_at_step`` says where). With ``log_dir`` each trial also writes a live log and metrics.jsonl there.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import optuna
from optuna.trial import TrialState

from dqnmap_auto.callbacks import Callback, JsonlWriter, Record
from dqnmap_auto.config import TrainConfig
from dqnmap_auto.control import Controller, TrialChannel
from dqnmap_auto.errors import ConfigError, DivergenceError
from dqnmap_auto.logs import TRIAL_LOG, LogWriter
from dqnmap_auto.trainer import Trainer, TrainResult
from dqnmap_auto.tuning.recovery import INTERRUPTED, RETRY_OF_ATTR, Heartbeat, enqueue_retry, has_native_heartbeat
from dqnmap_auto.tuning.seeds import advance_together, load_consistent, value_at
from dqnmap_auto.tuning.spec import CategoricalParam, FloatParam, IntParam, StudySpec


class TrialObserver(Protocol):
    """Watches one trial (the MLflow child run and the dashboard note, for instance)."""

    def seed_callback(self, seed_index: int, config: TrainConfig) -> Callback:
        """The record consumer of one seed's Trainer."""

    def finish(self, trial: optuna.Trial, state: TrialState, *, reason: str | None, trainers: list[Trainer]) -> None:
        """Called once, before the trial's state is final in Optuna (so it can still write to the trial)."""


ObserverFactory = Callable[[optuna.Trial], TrialObserver]
#: Draws a trial's params (config path -> value) in place of the spec's ``search_space``: for spaces a flat
#: search space cannot express, e.g. rl-zoo3's DQN space (1 - gamma on a log scale, gradient steps as a
#: fraction of train_freq). A module-level function, so that worker processes can take it.
ParamSampler = Callable[[optuna.Trial], dict[str, Any]]

MAX_TRAJECTORY_POINTS = 100
#: Trial system attributes (optuna-dashboard does not show them): data for the program, not for reading.
TRAJECTORY_ATTR = "dqnmap:hp_trajectory"  # the downsampled hp/<name> trajectory, for `study best --export`
INVOCATION_ATTR = "dqnmap:invocation"  # which `study run` invocation ran the trial, for its summary


def set_trial_system_attr(trial: optuna.Trial, key: str, value: Any) -> None:
    """Optuna 5's ``Trial`` has no system-attribute setter; its storage has (as optuna-dashboard uses it)."""
    trial.storage.set_trial_system_attr(trial._trial_id, key, value)


def trajectory_of(trial: optuna.trial.FrozenTrial) -> dict[str, list[list[float]]]:
    """A trial's learned hyperparameter trajectory; trials stored before it moved out of the user attributes
    (where its long JSON widened optuna-dashboard's trial page) keep it in ``hp_trajectory``."""
    return trial.system_attrs.get(TRAJECTORY_ATTR) or trial.user_attrs.get("hp_trajectory") or {}


def _short(values: dict[str, float]) -> dict[str, float]:
    """7 significant digits (float32's precision): its noise (0.9900000095367432) widens the dashboard's cells."""
    return {name: float(f"{value:.7g}") for name, value in values.items()}


def sample_params(trial: optuna.Trial, spec: StudySpec) -> dict[str, Any]:
    """Ask the trial for every search-space entry, named by its config path."""
    params: dict[str, Any] = {}
    for path, param in spec.study.search_space.items():
        if isinstance(param, FloatParam):
            params[path] = trial.suggest_float(path, param.low, param.high, log=param.log, step=param.step)
        elif isinstance(param, IntParam):
            params[path] = trial.suggest_int(path, param.low, param.high, log=param.log, step=param.step)
        elif isinstance(param, CategoricalParam):
            params[path] = trial.suggest_categorical(path, param.choices)
    return params


class TrajectoryRecorder(Callback):
    """Keeps the ``hp/<name>`` values of one run, for the trial's exported schedule."""

    def __init__(self) -> None:
        self.points: dict[str, list[tuple[int, float]]] = {}

    def on_start(self, trainer: Trainer) -> None:
        for name, value in trainer.tuner.space.current().items():
            self.points.setdefault(name, []).append((trainer.step, value))

    def on_record(self, record: Record) -> None:
        for key, value in record.items():
            if key.startswith("hp/"):
                self.points.setdefault(key[3:], []).append((int(record["step"]), float(value)))

    def downsampled(self, limit: int = MAX_TRAJECTORY_POINTS) -> dict[str, list[list[float]]]:
        out = {}
        for name, points in self.points.items():
            stride = max(1, math.ceil(len(points) / limit))
            kept = points[::stride]
            if kept[-1] != points[-1]:
                kept.append(points[-1])
            out[name] = [[step, value] for step, value in kept]
        return out


def objective_value(kind: str, history: list[float]) -> float:
    """last, best or area under the curve (the mean of the evaluation curve, equally spaced points)."""
    if kind == "last":
        return history[-1]
    if kind == "best":
        return max(history)
    return sum(history) / len(history)


class TrialObjective:
    """The callable handed to ``study.optimize``."""

    def __init__(
        self,
        spec: StudySpec,
        *,
        observer_factory: ObserverFactory | None = None,
        checkpoint_dir: Path | None = None,
        invocation: str | None = None,
        log_dir: Path | None = None,
        live_control: bool = True,
        sample: ParamSampler | None = None,
    ) -> None:
        """
        Args:
            spec: the study spec.
            observer_factory: builds the tracking of each trial (MLflow, optuna-dashboard), if any.
            checkpoint_dir: where trials checkpoint (``<dir>/trial-<n>/seed-<i>.pt``); None: no checkpoints.
            invocation: the id of the `study run` invocation, stored on each trial so that its summary counts
                its own trials, not those of another invocation running on the same study.
            log_dir: where trials write their live log and metrics (``<dir>/trial-<n>/``); None: nowhere.
            live_control: whether running trials take commands (``dqnmap-auto trial ...``, the dashboard form).
            sample: draws each trial's params instead of the spec's ``search_space`` (see ``ParamSampler``).
        """
        self.spec = spec
        self.observer_factory = observer_factory
        self.checkpoint_dir = checkpoint_dir
        self.invocation = invocation
        self.log_dir = log_dir
        self.live_control = live_control
        self.sample = sample

    def checkpoint_path(self, trial_number: int, seed_index: int) -> Path | None:
        if self.checkpoint_dir is None:
            return None
        return self.checkpoint_dir / f"trial-{trial_number}" / f"seed-{seed_index}.pt"

    def __call__(self, trial: optuna.Trial) -> float:
        spec = self.spec
        if self.invocation is not None:
            set_trial_system_attr(trial, INVOCATION_ATTR, self.invocation)
        try:
            params = self.sample(trial) if self.sample is not None else sample_params(trial, spec)
            base_seed = spec.base.training.seed
            try:
                configs = [spec.trial_config(params, seed=base_seed + i) for i in range(spec.study.seeds)]
            except ConfigError as error:
                trial.set_user_attr("failure_reason", f"invalid sampled config: {error}")
                return math.nan  # FAIL: a spec/search-space problem, not a property of the agent
            native = has_native_heartbeat(trial.study._storage)  # Optuna beats for RDB storages itself
            with Heartbeat(trial, interval=spec.study.heartbeat_interval, beat=not native):
                return self._train_trial(trial, configs)
        except KeyboardInterrupt:
            # Ctrl-C: Optuna marks the trial FAIL; the reason says why, and a retry resumes from its checkpoints,
            # as after a crash (``recovery``).
            trial.set_user_attr("failure_reason", INTERRUPTED)
            enqueue_retry(trial.study, trial.number, trial.params, INTERRUPTED)
            raise

    def _train_trial(self, trial: optuna.Trial, configs: list[TrainConfig]) -> float:
        observer = self.observer_factory(trial) if self.observer_factory is not None else None
        recorder = TrajectoryRecorder()
        # Commands in the trial's storage, read on a background thread (a slow storage never stalls training)
        controller = Controller(TrialChannel.for_trial(trial), background=True) if self.live_control else None
        trainers = []
        for index, config in enumerate(configs):
            callbacks: list[Callback] = [recorder] if index == 0 else []
            if observer is not None:
                callbacks.append(observer.seed_callback(index, config))
            if controller is not None:
                callbacks.append(controller.callback())
            callbacks += self._log_callbacks(trial, index, len(configs))
            trainers.append(Trainer(config, callbacks, checkpoint_path=self.checkpoint_path(trial.number, index)))
        self._resume_retry(trial, trainers)
        state, reason = TrialState.FAIL, None
        try:
            value = self._run(trial, trainers, recorder)
            state = TrialState.COMPLETE
            return value
        except optuna.TrialPruned as pruned:
            state, reason = TrialState.PRUNED, str(pruned)
            raise
        except KeyboardInterrupt:
            reason = INTERRUPTED
            raise
        except BaseException as error:
            reason = f"{type(error).__name__}: {error}".splitlines()[0]
            raise
        finally:
            for trainer in trainers:
                trainer.close()
            if controller is not None:
                controller.close()  # (also when the trial diverged or failed: no Trainer.finish then)
            if observer is not None:
                observer.finish(trial, state, reason=reason, trainers=trainers)
            # a failed trial's checkpoints stay for its retry
            if state != TrialState.FAIL and self.checkpoint_dir is not None:
                shutil.rmtree(self.checkpoint_dir / f"trial-{trial.number}", ignore_errors=True)

    def _log_callbacks(self, trial: optuna.Trial, seed_index: int, seeds: int) -> list[Callback]:
        """The live log (every seed) and metrics.jsonl (seed 0) of a trial, when there is a ``log_dir``."""
        if self.log_dir is None:
            return []
        folder = self.log_dir / f"trial-{trial.number}"
        retry_of = trial.user_attrs.get(RETRY_OF_ATTR)
        header = f"trial {trial.number} seed {seed_index}" + (
            f", retry of trial {retry_of}" if retry_of is not None else ""
        )
        log = LogWriter(folder / TRIAL_LOG, prefix=f"[seed {seed_index}] " if seeds > 1 else "", header=header)
        return [log, JsonlWriter(folder / "metrics.jsonl")] if seed_index == 0 else [log]

    def _resume_retry(self, trial: optuna.Trial, trainers: list[Trainer]) -> None:
        """A retry of a dead trial resumes its seeds from their latest checkpoints, when they agree on a step;
        otherwise it starts over (``resume_skipped`` says why). Its earlier values are reported again by
        :meth:`_run`, from the evaluations the checkpoints hold."""
        retry_of = trial.user_attrs.get(RETRY_OF_ATTR)
        if retry_of is None:
            return
        states, found = load_consistent([self.checkpoint_path(int(retry_of), i) for i in range(len(trainers))])
        if states is None:
            trial.set_user_attr("resume_skipped", found)
            return
        for trainer, state in zip(trainers, states, strict=True):
            trainer.load_state_dict(state)
        trial.set_user_attr("resumed_from_step", max(trainer.step for trainer in trainers))

    @property
    def _checkpoint_every(self) -> int | None:
        if self.checkpoint_dir is None:
            return None
        return self.spec.study.checkpoint_every or self.spec.study.eval_every

    @property
    def _per_seed(self) -> bool:
        """Whether each seed reports its own value (the Wilcoxon pruner, alone or wrapped)."""
        pruner = self.spec.study.pruner
        return pruner.name == "wilcoxon" or bool(pruner.wraps and pruner.wraps.name == "wilcoxon")

    def _run(self, trial: optuna.Trial, trainers: list[Trainer], recorder: TrajectoryRecorder) -> float:
        study = self.spec.study
        total = trainers[0].config.training.total_steps
        wilcoxon = self._per_seed
        history: list[float] = []
        done = max(trainer.step for trainer in trainers)  # > 0 after a resume (a solved seed may have stopped sooner)
        saved = {index: trainer.step for index, trainer in enumerate(trainers) if trainer.step}  # resumed from
        for trainer in trainers:
            trainer.start()
        try:
            for eval_index, step in enumerate(range(study.eval_every, total, study.eval_every)):
                resumed = step <= done  # evaluated before the resume: its values come from the checkpoints
                if not resumed:
                    advance_together(trainers, step, checkpoint_every=self._checkpoint_every, saved=saved)
                if self._stop_requested(trial, trainers):
                    break  # (a stopped seed trains no further: the advance below returns at once)
                values = [value_at(t.eval_history, step, study.eval_every) for t in trainers]
                returns = [v for v in values if v is not None]
                history.append(sum(returns) / len(returns) if returns else math.nan)
                if wilcoxon:
                    for seed_index, value in enumerate(values):
                        if value is not None:
                            trial.report(value, eval_index * len(trainers) + seed_index)
                else:
                    trial.report(history[-1], step)
                if resumed:
                    continue
                if trial.should_prune():
                    trial.set_user_attr("pruned_at_step", step)
                    for trainer in trainers:
                        trainer.stop()
                    self._store_outcome(trial, trainers, [t.finish() for t in trainers], recorder)
                    raise optuna.TrialPruned(f"pruned at step {step} with eval {history[-1]:.2f}")
            if not any(t.stop_requested_at is not None for t in trainers):
                advance_together(trainers, total, checkpoint_every=self._checkpoint_every, saved=saved)
            self._stop_requested(trial, trainers)
            results = [trainer.finish() for trainer in trainers]
        except DivergenceError as error:
            trial.set_user_attr("diverged", error.reason)
            trial.set_user_attr("pruned_at_step", error.step)
            raise optuna.TrialPruned(f"diverged: {error.reason}") from None
        finals = [r.final_eval.mean for r in results]
        history.append(sum(finals) / len(finals))
        if wilcoxon:
            for seed_index, value in enumerate(finals):
                trial.report(value, len(history[:-1]) * len(trainers) + seed_index)
        else:
            trial.report(history[-1], total)
        self._store_outcome(trial, trainers, results, recorder)
        return objective_value(study.objective, history)

    @staticmethod
    def _stop_requested(trial: optuna.Trial, trainers: list[Trainer]) -> bool:
        """Whether a live-control ``stop`` reached a seed; then every seed stops (its final evaluation follows)."""
        steps = [t.stop_requested_at for t in trainers if t.stop_requested_at is not None]
        if not steps:
            return False
        for trainer in trainers:
            trainer.request_stop()
        trial.set_user_attr("stopped_at_step", min(steps))
        return True

    @staticmethod
    def _store_outcome(
        trial: optuna.Trial, trainers: list[Trainer], results: list[TrainResult], recorder: TrajectoryRecorder
    ) -> None:
        trial.set_user_attr("seed_returns", [r.final_eval.mean for r in results])
        trial.set_user_attr("env_steps", sum(r.steps for r in results))
        if any(r.solved_at is not None for r in results):  # training.stop_at_return ended some seed early
            trial.set_user_attr("solved_at", [r.solved_at for r in results])
        trial.set_user_attr("hp_initial", _short(results[0].initial_hyperparams))
        trial.set_user_attr("hp_final", _short(results[0].hyperparams))
        trial.set_user_attr("tuned", trainers[0].tuner.space.names)
        set_trial_system_attr(trial, TRAJECTORY_ATTR, recorder.downsampled())
