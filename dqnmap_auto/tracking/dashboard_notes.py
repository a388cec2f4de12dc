"""optuna-dashboard: a markdown note per trial and its plots as Optuna artifacts.

The artifacts go to a ``FileSystemArtifactStore`` in the project directory (``<dir>/artifacts``);
``dqnmap-auto dashboard`` starts optuna-dashboard with ``--artifact-dir`` pointing there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import optuna
import optuna_dashboard
from optuna.artifacts import FileSystemArtifactStore, upload_artifact

ARTIFACT_DIR_NAME = "artifacts"


def artifact_dir(directory: Path) -> Path:
    return directory / ARTIFACT_DIR_NAME


def trial_note(
    *,
    number: int,
    state: str,
    tuned: Iterable[str],
    initial: Mapping[str, float],
    final: Mapping[str, float],
    final_eval: float | None,
    reason: str | None,
    mlflow_run_id: str | None,
) -> str:
    """Markdown: initial -> final value of every tuned hyperparameter, final eval, reason, MLflow run id."""
    lines = [f"### Trial {number}: {state}", ""]
    if final_eval is not None:
        lines.append(f"**Final eval return:** {final_eval:.2f}")
    if reason:
        lines.append(f"**Reason:** {reason}")
    tuned = list(tuned)
    if tuned:
        lines += ["", "| hyperparameter | initial | final |", "|---|---|---|"]
        lines += [f"| {n} | {initial[n]:.4g} | {final[n]:.4g} |" for n in tuned]
    else:
        lines.append("No self-tuning in this trial.")
    if mlflow_run_id:
        lines += ["", f"**MLflow run:** `{mlflow_run_id}`"]
    return "\n".join(lines) + "\n"


def publish(trial: optuna.Trial, note: str, plots: Iterable[Path], store_dir: Path) -> None:
    """Save the note and upload the plots (PNG) as the trial's artifacts."""
    optuna_dashboard.save_note(trial, note)
    store_dir.mkdir(parents=True, exist_ok=True)
    store = FileSystemArtifactStore(str(store_dir))
    for path in plots:
        upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=trial, mimetype="image/png")
