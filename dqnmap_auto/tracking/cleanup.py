"""Removing a deleted study's MLflow experiment: its runs, their artifacts and logged models.

MLflow's own deletion is two-step: ``delete_experiment`` moves the experiment and its runs to the trash (the
name stays taken, so a new study of that name would log into the old experiment), and ``mlflow gc`` purges the
trash. A local store (the project's SQLite) is purged here with ``mlflow gc``; a tracking server's store can
only be purged on the server, so there the experiment is renamed (freeing the name) and left in the trash.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

from dqnmap_auto.errors import ConfigError
from dqnmap_auto.tracking.uris import is_http
from dqnmap_auto.tuning.storage import mask_password


def local_store_missing(tracking_uri: str) -> bool:
    """Whether a SQLite store does not exist yet (opening it would create it)."""
    return tracking_uri.startswith("sqlite:///") and not Path(tracking_uri.removeprefix("sqlite:///")).exists()


def remove_experiment(tracking_uri: str, name: str, *, keep: bool) -> str | None:
    """Delete (or, with ``keep``, rename) the experiment called ``name``; returns what was done, in words, or
    None when there is no such experiment."""
    if local_store_missing(tracking_uri):
        return None
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None or experiment.lifecycle_stage != "active":
        return None
    experiment_id = experiment.experiment_id
    found = client.search_runs([experiment_id], run_view_type=ViewType.ALL, max_results=50_000)
    runs = len(found)
    if keep:  # a new study of the same name must not log into it: rename
        renamed = f"{name} (study deleted {time.strftime('%Y-%m-%d %H:%M:%S')})"
        client.rename_experiment(experiment_id, renamed)
        return f"kept its MLflow experiment ({runs} runs) as {renamed!r}"
    logged = client.search_logged_models(experiment_ids=[experiment_id])
    models = [model.model_id for model in logged]
    client.rename_experiment(experiment_id, f"{name} (deleted, id {experiment_id})")
    for model_id in models:  # the experiment's deletion leaves its logged models active
        client.delete_logged_model(model_id)
    client.delete_experiment(experiment_id)
    if is_http(tracking_uri):
        return f"moved its MLflow experiment ({runs} runs) to the server's trash (`mlflow gc` there purges it)"
    purge(tracking_uri, experiment_id, models)
    for uri in [run.info.artifact_uri for run in found] + [model.artifact_location for model in logged]:
        _remove_empty_tree(uri)  # gc removes the files, not their (now empty) folders
    return f"its MLflow experiment ({runs} runs, {len(models)} models, their artifacts)"


def _remove_empty_tree(uri: str) -> None:
    """Remove a local run's or model's artifact folder (``<location>/<id>/artifacts``) when no file is left in it."""
    if not uri.startswith("file://"):
        return
    folder = Path(unquote(urlparse(uri).path)).parent
    if folder.is_dir() and not any(path.is_file() for path in folder.rglob("*")):
        shutil.rmtree(folder, ignore_errors=True)


def purge(tracking_uri: str, experiment_id: str, logged_models: list[str]) -> None:
    """``mlflow gc`` on one deleted experiment of a local store (MLflow's CLI: its only public purge)."""
    command = [sys.executable, "-m", "mlflow", "gc", "--backend-store-uri", tracking_uri]
    command += ["--tracking-uri", tracking_uri, "--experiment-ids", experiment_id]
    if logged_models:
        command += ["--logged-model-ids", ",".join(logged_models)]
    env = {"MLFLOW_DISABLE_TELEMETRY": "true", **os.environ}  # its upload waits for a timeout when offline
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
        raise ConfigError(
            f"MLflow store {mask_password(tracking_uri)}: `mlflow gc` failed ({lines[-1][:200]}); the experiment "
            "is in MLflow's trash"
        )
