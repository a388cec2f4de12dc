"""The trial observer that publishes everywhere: the MLflow child run and the optuna-dashboard note/artifacts."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import TrialState

from dqnmap_auto.callbacks import Callback, RecordCollector
from dqnmap_auto.config import TrainConfig
from dqnmap_auto.control.records import markdown_table
from dqnmap_auto.tracking.dashboard_notes import TRAJECTORY_ARTIFACT, publish, trial_note
from dqnmap_auto.tracking.mlflow_tracker import TrackingContext, TrialRun
from dqnmap_auto.tracking.plots import run_plots
from dqnmap_auto.trainer import Trainer
from dqnmap_auto.tuning.objective import TRAJECTORY_ATTR
from dqnmap_auto.tuning.recovery import INTERRUPTED


@dataclass(frozen=True)
class TrackingSettings:
    """Picklable: what a worker process needs to build the observers of its trials."""

    mlflow: TrackingContext | None
    artifact_dir: Path | None

    def observer(self, trial: optuna.Trial) -> TrialTracking:
        return TrialTracking(self, trial)

    def fail_stale_run(self, trial: optuna.trial.FrozenTrial, reason: str) -> None:
        """A dead worker's trial: its MLflow run becomes FAILED with the reason."""
        run_id = trial.user_attrs.get("mlflow_run_id")
        if self.mlflow is None or run_id is None:
            return
        client = self.mlflow.client()
        client.set_tag(run_id, "optuna.state", "FAIL")
        client.set_tag(run_id, "failure_reason", f"stale: {reason}")
        client.set_terminated(run_id, "FAILED")


class TrialTracking:
    def __init__(self, settings: TrackingSettings, trial: optuna.Trial) -> None:
        self.settings = settings
        self.run = TrialRun(settings.mlflow, trial) if settings.mlflow is not None else None
        self.collector = RecordCollector()  # seed 0, for the plots when MLflow is off
        self.configs: list[TrainConfig] = []

    def seed_callback(self, seed_index: int, config: TrainConfig) -> Callback:
        self.configs.append(config)
        if self.run is not None:
            return self.run.seed_callback(seed_index, config)
        return self.collector if seed_index == 0 else Callback()

    def finish(self, trial: optuna.Trial, state: TrialState, *, reason: str | None, trainers: list[Trainer]) -> None:
        first = trainers[0]
        tuning = first.config.self_tuning
        bounds = {n: (b.low, b.high) for n, b in tuning.bounds.items() if n in first.tuner.space.names}
        records = self.run.records.get(0, []) if self.run is not None else self.collector.records
        # Ctrl-C: record the outcome, skip the plots and the model export (seconds); the retry will have its own
        interrupted = reason == INTERRUPTED
        with tempfile.TemporaryDirectory(prefix="dqnmap-plots-") as tmp:  # drawn once, for both dashboards
            plots = [] if interrupted else run_plots(records, tmp, bounds=bounds)
            if self.run is not None:
                # a batch of 2: no export specialisation on the batch size
                obs = first.replay.sample_observations(2, np.random.default_rng(0)) if len(first.replay) > 1 else None
                self.run.finish(
                    state,
                    reason=reason,
                    configs=self.configs,
                    model=None if interrupted else first.agent.q_net,
                    plots=plots,
                    obs_example=obs,
                    solved_at=[trainer.solved_at for trainer in trainers],
                )
            if self.settings.artifact_dir is not None:
                self._publish_note(trial, state, reason, first, plots, control=markdown_table(records))

    def _publish_note(
        self,
        trial: optuna.Trial,
        state: TrialState,
        reason: str | None,
        first: Trainer,
        plots: list[Path],
        *,
        control: str = "",
    ) -> None:
        assert self.settings.artifact_dir is not None
        last = first.last_eval
        note = trial_note(
            number=trial.number,
            state=state.name,
            tuned=first.tuner.space.names,
            initial=first.initial_hyperparams,
            final=first.tuner.space.current(),
            final_eval=last.mean if last is not None else None,
            reason=reason,
            mlflow_run_id=self.run.run_id if self.run is not None else None,
            mlflow_run_url=self.run.context.run_url(self.run.run_id) if self.run is not None else None,
            control=control,
        )
        trajectory = trial.storage.get_trial_system_attrs(trial._trial_id).get(TRAJECTORY_ATTR)
        data = {TRAJECTORY_ARTIFACT: trajectory} if trajectory else None
        publish(trial, note, plots, self.settings.artifact_dir, data=data)
