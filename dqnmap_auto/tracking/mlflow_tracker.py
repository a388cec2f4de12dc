"""A thin MLflow tracker on ``MlflowClient`` with explicit run ids.

One experiment per study, one parent run per ``study run`` invocation, one child run per trial (``trial-<n>``).
Records are buffered and sent with ``log_batch`` (at each evaluation and live-control record, when 1000 metrics are
waiting, at the first record after ``FLUSH_EVERY`` seconds, so the MLflow UI draws live curves, and at the end),
never one call per step. A live-control record becomes a tag (``control/<id>``: what, when, old -> new or why) plus
marker metrics at its step; text values are never metrics. The final status mirrors Optuna: COMPLETE -> FINISHED,
PRUNED -> KILLED, FAIL -> FAILED. The run id is stored on the Optuna trial (user attribute ``mlflow_run_id``), and
the study and trial on the run (tags ``optuna.study``, ``optuna.trial``), so either dashboard leads to the other.

Not built on optuna-integration's ``MLflowCallback``: it logs final values only, serialises parallel trials
and leaves pruned and failed runs FINISHED.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus, RunTag

from dqnmap_auto.callbacks import Callback, Record
from dqnmap_auto.config import TrainConfig, dump_config
from dqnmap_auto.control.records import is_control, summary
from dqnmap_auto.errors import ConfigError
from dqnmap_auto.tracking.uris import check_reachable, is_http
from dqnmap_auto.tracking.uris import default_tracking_uri as default_tracking_uri  # re-exported
from dqnmap_auto.tuning.storage import mask_password

# With an http tracking server MLflow prints "View run ... at" for every run it ends: noise between progress bars.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
# "Creating initial MLflow database tables..." on a new local store: noise in the first `study run`'s output.
logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)

MAX_METRICS_PER_BATCH = 1000  # MLflow's limit per log_batch call
FLUSH_EVERY = 15.0  # seconds: a running trial's curves are at most this old (plus the gap between two records)
MAX_PARAMS_PER_BATCH = 100
#: MLflow 3 opens an experiment in its GenAI view unless it is tagged as model development.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
#: Suffix of a pruned trial's run name: MLflow draws KILLED runs with the same red cross as FAILED ones.
PRUNED_SUFFIX = " (pruned)"
STATUS_OF_STATE = {
    optuna.trial.TrialState.COMPLETE: RunStatus.to_string(RunStatus.FINISHED),
    optuna.trial.TrialState.PRUNED: RunStatus.to_string(RunStatus.KILLED),
    optuna.trial.TrialState.FAIL: RunStatus.to_string(RunStatus.FAILED),
}


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> {"agent.lr": "0.0023", ...} (MLflow params are flat strings)."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = json.dumps(value) if not isinstance(value, str) else value
    return out


def _batched(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True)
class TrackingContext:
    """What a worker process needs to log into the parent run (picklable)."""

    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    study_name: str
    storage: str

    def client(self) -> MlflowClient:
        return MlflowClient(self.tracking_uri)

    def run_url(self, run_id: str) -> str | None:
        """The run's page in the MLflow UI of an http tracking server (None for a local store: no UI address)."""
        if not is_http(self.tracking_uri):
            return None
        return f"{self.tracking_uri.rstrip('/')}/#/experiments/{self.experiment_id}/runs/{run_id}"


def start_study_run(
    *,
    study_name: str,
    tracking_uri: str,
    directory: Path,
    storage: str,
    spec_path: str | None,
    spec_params: Mapping[str, Any],
    sampler_seed: int | None = None,
) -> TrackingContext:
    """Create (or reuse) the study's experiment and open the parent run of this invocation (tagged with the
    sampler seed it drew, so that ``study run --seed`` can repeat it)."""
    check_reachable(tracking_uri)
    client = MlflowClient(tracking_uri)
    try:
        experiment = client.get_experiment_by_name(study_name)
        if experiment is None:
            artifact_location = None
            if tracking_uri.startswith("sqlite:///") and str(directory.resolve()) in tracking_uri:
                artifact_location = (directory / "mlartifacts").resolve().as_uri()
            experiment_id = client.create_experiment(
                study_name, artifact_location=artifact_location, tags=EXPERIMENT_KIND
            )
        else:
            experiment_id = experiment.experiment_id
            for key, value in EXPERIMENT_KIND.items():  # experiments made before the tag existed
                if experiment.tags.get(key) != value:
                    client.set_experiment_tag(experiment_id, key, value)
        tags = {"optuna.study": study_name, "optuna.storage": mask_password(storage), "dqnmap.role": "study"}
        if sampler_seed is not None:
            tags["dqnmap.sampler_seed"] = str(sampler_seed)
        run = client.create_run(experiment_id, run_name=f"study-{time.strftime('%Y%m%d-%H%M%S')}", tags=tags)
    except Exception as error:  # unreachable server, bad URI, read-only store...
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError(f"--tracking-uri {mask_password(tracking_uri)}: {mask_password(message)[:200]}") from None
    params = [Param(k, v[:6000]) for k, v in flatten(spec_params).items()]
    for chunk in _batched(params, MAX_PARAMS_PER_BATCH):
        client.log_batch(run.info.run_id, params=chunk)
    if spec_path is not None:
        client.log_artifact(run.info.run_id, spec_path, artifact_path="spec")
    return TrackingContext(tracking_uri, experiment_id, run.info.run_id, study_name, mask_password(storage))


def finish_study_run(context: TrackingContext, study: optuna.Study, *, failed: bool = False) -> None:
    """Study-level plots on the parent run, then close it."""
    from dqnmap_auto.tracking.plots import study_plots

    client = context.client()
    with tempfile.TemporaryDirectory() as tmp:
        for path in study_plots(study, tmp):
            client.log_artifact(context.parent_run_id, str(path), artifact_path="plots")
    try:
        best = study.best_trial
        assert best.value is not None
        client.log_batch(
            context.parent_run_id,
            metrics=[Metric("best_value", best.value, int(time.time() * 1000), best.number)],
            tags=[RunTag("optuna.best_trial", str(best.number))],
        )
    except ValueError:
        pass
    client.set_terminated(context.parent_run_id, "FAILED" if failed else "FINISHED")


class TrialRun:
    """The MLflow child run of one trial: params, buffered metrics, artifacts, final status."""

    def __init__(self, context: TrackingContext, trial: optuna.Trial) -> None:
        self.context = context
        self.client = context.client()
        self.run_name = f"trial-{trial.number}"
        run = self.client.create_run(
            context.experiment_id,
            run_name=self.run_name,
            tags={
                "mlflow.parentRunId": context.parent_run_id,
                "optuna.study": context.study_name,
                "optuna.trial": str(trial.number),
                "optuna.storage": context.storage,
                "optuna.state": "RUNNING",
                "dqnmap.role": "trial",
            },
        )
        self.run_id = run.info.run_id
        self.trial = str(trial.number)
        trial.set_user_attr("mlflow_run_id", self.run_id)
        retry_of = trial.user_attrs.get("dqnmap.retry_of")
        if retry_of is not None:  # link the retry to the run of the trial it continues
            previous = trial.study.get_trials(deepcopy=False)[int(retry_of)].user_attrs.get("mlflow_run_id")
            self.client.set_tag(self.run_id, "dqnmap.retry_of_trial", str(retry_of))
            if previous:
                self.client.set_tag(self.run_id, "dqnmap.retry_of_run", previous)
        self._pending: list[Metric] = []
        self._pending_tags: list[RunTag] = []
        self._flushed = time.monotonic()
        self.records: dict[int, list[Record]] = {}
        self.log_lines: list[str] = []

    # -- per seed ----------------------------------------------------------------------------------------
    def seed_callback(self, seed_index: int, config: TrainConfig) -> Callback:
        if seed_index == 0:
            params = flatten(config.model_dump(mode="json"))
            params.pop("training.seed", None)
            params["seeds.first"] = str(config.training.seed)
            for chunk in _batched([Param(k, v[:6000]) for k, v in params.items()], MAX_PARAMS_PER_BATCH):
                self.client.log_batch(self.run_id, params=chunk)
        return _SeedRecords(self, seed_index)

    def add(self, seed_index: int, record: Record) -> None:
        self.records.setdefault(seed_index, []).append(record)
        prefix = "" if seed_index == 0 else f"seed{seed_index}/"
        now = int(time.time() * 1000)
        step = int(record["step"])
        self._pending.extend(
            Metric(prefix + k, float(v), now, step) for k, v in record.items() if k != "step" and not isinstance(v, str)
        )
        if "eval_return" in record:
            self.log_lines.append(f"seed {seed_index} step {step}: eval {float(record['eval_return']):.2f}")
        control = is_control(record)
        if control:
            self.log_lines.append(f"seed {seed_index} {summary(record)}")
            tag = f"{prefix}control/{record['control/id']}"
            self._pending_tags.append(RunTag(tag, f"{summary(record)} at {record['control/at']}"[:5000]))
        due = time.monotonic() - self._flushed >= FLUSH_EVERY
        if "eval_return" in record or control or due or len(self._pending) >= MAX_METRICS_PER_BATCH:
            self.flush()

    def flush(self) -> None:
        for chunk in _batched(self._pending, MAX_METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=chunk)
        if self._pending_tags:
            self.client.log_batch(self.run_id, tags=self._pending_tags)
        self._pending, self._pending_tags = [], []
        self._flushed = time.monotonic()

    # -- end ---------------------------------------------------------------------------------------------
    def finish(
        self,
        state: optuna.trial.TrialState,
        *,
        reason: str | None,
        configs: list[TrainConfig],
        model: torch.nn.Module | None,
        plots: Sequence[Path] = (),
        obs_example: Any = None,
        solved_at: Sequence[int | None] = (),
    ) -> None:
        """Upload artifacts (``plots`` are drawn by the caller, which shares them with optuna-dashboard) and set
        the final status. ``solved_at`` (per seed) becomes a tag, so the runs list shows which trials stopped early
        at ``training.stop_at_return``."""
        self.flush()
        self.log_lines.append(f"outcome: {state.name}" + (f" ({reason})" if reason else ""))
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            if configs:
                (folder / "config.yaml").write_text(dump_config(configs[0]), encoding="utf-8")
            with (folder / "metrics.jsonl").open("w", encoding="utf-8") as out:
                for seed_index, records in sorted(self.records.items()):
                    for record in records:
                        out.write(json.dumps({"seed_index": seed_index, **record}) + "\n")
            (folder / "trial.log").write_text("\n".join(self.log_lines) + "\n", encoding="utf-8")
            if model is not None:
                torch.save(model.state_dict(), folder / "model.pt")
            self.client.log_artifacts(self.run_id, str(folder))
            if model is not None:
                self._log_pytorch_model(model, folder / "mlflow_model", obs_example, step=self._last_step())
        for path in plots:
            self.client.log_artifact(self.run_id, str(path), artifact_path="plots")
        tags = [RunTag("optuna.state", state.name)]
        if any(step is not None for step in solved_at):
            tags.append(RunTag("dqnmap.solved_at", ",".join("-" if step is None else str(step) for step in solved_at)))
        if reason:
            tags.append(
                RunTag("failure_reason" if state == optuna.trial.TrialState.FAIL else "prune_reason", reason[:5000])
            )
        self.client.log_batch(self.run_id, tags=tags)
        if state == optuna.trial.TrialState.PRUNED:
            self.client.update_run(self.run_id, name=self.run_name + PRUNED_SUFFIX)
        self.client.set_terminated(self.run_id, STATUS_OF_STATE[state])

    def _last_step(self) -> int:
        steps = [int(record["step"]) for records in self.records.values() for record in records[-1:]]
        return max(steps, default=0)

    def _log_pytorch_model(self, model: torch.nn.Module, path: Path, obs_example: Any, *, step: int) -> None:
        """The Q-network as an MLflow 3 logged model (an ``mlflow.pytorch`` flavor), the run's output: it shows
        in the run's Models column and the experiment's Models tab.

        The same steps as ``mlflow.pytorch.log_model``, on this run's client: that function logs through the
        process-wide tracking URI and active run, which the trials' explicit run ids do not use.
        """
        import mlflow.pytorch
        from mlflow.entities import LoggedModelOutput, LoggedModelStatus
        from mlflow.models import Model

        logged = self.client.create_logged_model(
            self.context.experiment_id, name="model", source_run_id=self.run_id, tags={"optuna.trial": self.trial}
        )
        # Explicit requirements: MLflow's inference of them starts a subprocess (seconds per trial).
        requirements = [f"torch=={torch.__version__.split('+')[0]}"]
        mlflow.pytorch.save_model(
            model,
            str(path),
            mlflow_model=Model(
                artifact_path=logged.artifact_location,
                model_uuid=logged.model_id,
                run_id=self.run_id,
                model_id=logged.model_id,
            ),
            serialization_format="pt2",
            input_example=obs_example,
            pip_requirements=requirements,
        )
        self.client.log_model_artifacts(logged.model_id, str(path))
        self.client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
        self.client.log_outputs(self.run_id, [LoggedModelOutput(logged.model_id, step=step)])


class _SeedRecords(Callback):
    def __init__(self, run: TrialRun, seed_index: int) -> None:
        self.run = run
        self.seed_index = seed_index

    def on_record(self, record: Record) -> None:
        self.run.add(self.seed_index, record)
