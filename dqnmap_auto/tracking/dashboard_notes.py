"""optuna-dashboard: a markdown note per trial, its plots and long data as Optuna artifacts, the spec on the study.

The artifacts go to a ``FileSystemArtifactStore`` in the project directory (``<dir>/artifacts``);
``dqnmap-auto dashboard`` starts optuna-dashboard with ``--artifact-dir`` pointing there. Long data (the spec's
text, a trial's hyperparameter trajectory) goes to artifacts, not to user attributes: optuna-dashboard draws
user attributes in one table row each, and a long JSON string widens the whole trial page.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import FileSystemArtifactStore, get_all_artifact_meta, upload_artifact

from dqnmap_auto.tuning.location import SPEC_ARTIFACT, SPEC_ATTR, spec_text

ARTIFACT_DIR_NAME = "artifacts"
TRAJECTORY_ARTIFACT = "hp_trajectory.json"


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
    mlflow_run_url: str | None = None,
    control: str = "",
) -> str:
    """Markdown: initial -> final value of every tuned hyperparameter, final eval, reason, MLflow run id (a link
    to the run's page when the tracking server has a UI address), and the live-control audit trail (``control``, a
    markdown section; see ``dqnmap_auto.control.records``)."""
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
        run = f"[`{mlflow_run_id}`]({mlflow_run_url})" if mlflow_run_url else f"`{mlflow_run_id}`"
        lines += ["", f"**MLflow run:** {run}"]
    if control:
        lines += ["", control.rstrip("\n")]
    return "\n".join(lines) + "\n"


def publish(
    trial: optuna.Trial, note: str, plots: Iterable[Path], store_dir: Path, *, data: Mapping[str, Any] | None = None
) -> None:
    """Save the note and upload the plots (PNG) and ``data`` (file name -> JSON-able) as the trial's artifacts."""
    import optuna_dashboard  # imports scikit-learn (seconds): only where a note is written

    optuna_dashboard.save_note(trial, note)
    store_dir.mkdir(parents=True, exist_ok=True)
    store = FileSystemArtifactStore(str(store_dir))
    for path in plots:
        upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=trial, mimetype="image/png")
    with tempfile.TemporaryDirectory(prefix="dqnmap-data-") as tmp:
        for name, value in (data or {}).items():
            path = Path(tmp) / name
            path.write_text(json.dumps(value, indent=1), encoding="utf-8")
            upload_artifact(
                artifact_store=store, file_path=str(path), study_or_trial=trial, mimetype="application/json"
            )


def publish_spec(study: optuna.Study, store_dir: Path) -> None:
    """The spec's YAML as a study artifact (once per study), and the ``spec`` user attribute pointing to it."""
    text = spec_text(study)
    if text is None or any(meta.filename == SPEC_ARTIFACT for meta in get_all_artifact_meta(study)):
        return
    store_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dqnmap-spec-") as tmp:
        path = Path(tmp) / SPEC_ARTIFACT
        path.write_text(text, encoding="utf-8")
        upload_artifact(
            artifact_store=FileSystemArtifactStore(str(store_dir)),
            file_path=str(path),
            study_or_trial=study,
            mimetype="text/plain",
        )
    source = study.user_attrs.get(SPEC_ATTR)
    name = source if isinstance(source, str) and "\n" not in source else "the spec"
    study.set_user_attr(SPEC_ATTR, f"{name} (full text: study artifact {SPEC_ARTIFACT})")
