"""Inspecting and editing existing studies: list, per-trial rows, best trial and its export, enqueue, delete."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import optuna
import yaml

from dqnmap_auto.errors import ConfigError
from dqnmap_auto.tuning.spec import load_study_spec
from dqnmap_auto.tuning.study import SPEC_ATTR, StudyLocation, load_existing


def list_studies(location: StudyLocation) -> list[dict[str, Any]]:
    rows = []
    for summary in optuna.get_all_study_summaries(location.open(create=False)):
        best = summary.best_trial.value if summary.best_trial is not None else None
        rows.append(
            {
                "name": summary.study_name,
                "trials": summary.n_trials,
                "best": best,
                "created": summary.datetime_start,
            }
        )
    return rows


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One row per trial: number, state, value, the step it was pruned at, params."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        pruned_at = trial.user_attrs.get("pruned_at_step")
        if pruned_at is None and trial.state == optuna.trial.TrialState.PRUNED and trial.intermediate_values:
            pruned_at = max(trial.intermediate_values)
        rows.append(
            {
                "number": trial.number,
                "state": trial.state.name,
                "value": trial.value,
                "pruned_at": pruned_at,
                "params": trial.params,
                "reason": trial.user_attrs.get("diverged") or trial.user_attrs.get("failure_reason"),
            }
        )
    return rows


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    try:
        return study.best_trial
    except ValueError:
        raise ConfigError(f"study {study.study_name!r} has no completed trial yet") from None


def export_best(study: optuna.Study, path: str | Path) -> Path:
    """Write the best trial as a train config, with its learned hyperparameter trajectory as ``schedule``."""
    trial = best_trial(study)
    spec_text = study.user_attrs.get(SPEC_ATTR)
    if spec_text is None:
        raise ConfigError(f"study {study.study_name!r} was not created by dqnmap-auto (no stored spec)")
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        spec_file = Path(tmp) / f"{study.study_name}.yaml"
        spec_file.write_text(spec_text, encoding="utf-8")
        spec = load_study_spec(spec_file)
    config = spec.trial_config(trial.params, seed=spec.base.training.seed)
    data = config.model_dump(mode="json")
    trajectory = trial.user_attrs.get("hp_trajectory") or {}
    tuned = trial.user_attrs.get("tuned") or []
    if tuned:
        data["schedule"] = {name: trajectory[name] for name in tuned if name in trajectory}
    header = (
        f"# Best trial {trial.number} of study {study.study_name!r}: value {trial.value:.4g}.\n"
        "# `dqnmap-auto train THIS_FILE` retrains it (self-tuning as configured);\n"
        "# `dqnmap-auto train THIS_FILE --schedule` replays the learned hyperparameter schedule instead.\n"
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"--export {path}: cannot write ({error.strerror or error})") from None
    return path


def enqueue(study: optuna.Study, assignments: list[str]) -> dict[str, Any]:
    """Queue a trial with fixed parameters (``path=value``); the paths must be in the search space."""
    spec_text = study.user_attrs.get(SPEC_ATTR, "")
    space = ((yaml.safe_load(spec_text) or {}).get("study") or {}).get("search_space") or {}
    params: dict[str, Any] = {}
    for assignment in assignments:
        if "=" not in assignment:
            raise ConfigError(f"{assignment!r}: expected key=value")
        key, raw = assignment.split("=", 1)
        if key not in space:
            raise ConfigError(f"{key!r} is not in the search space of {study.study_name!r} ({sorted(space)})")
        params[key] = yaml.safe_load(raw)
    if not params:
        raise ConfigError("give at least one key=value")
    study.enqueue_trial(params)
    return params


def delete(location: StudyLocation, name: str) -> None:
    load_existing(location, name)
    optuna.delete_study(study_name=name, storage=location.open(create=False))
