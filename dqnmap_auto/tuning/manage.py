"""Inspecting and editing existing studies: list, per-trial rows, best trial and its export, enqueue, delete."""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

import optuna
import yaml
from pydantic import ValidationError

from dqnmap_auto.config import (
    TrainConfig,
    apply_overrides,
    format_validation_error,
    split_study_keys,
    validate_train_config,
)
from dqnmap_auto.errors import ConfigError
from dqnmap_auto.tuning.location import StudyLocation, checkpoint_dir, load_existing, spec_text
from dqnmap_auto.tuning.spec import CategoricalParam, IntParam, ParamSpec, StudySettings

#: Settings that only meta mode reads, and those only the hd rule reads (hd mode, or meta mode's lr).
META_ONLY = ("meta_lr", "interval", "lookahead", "lr_rule", "lookahead_target", "hypergrad_clip")
HD_RULE = ("hd_lr", "hd_interval", "hd_target_cos", "hd_lr_pull", "hd_max_step_ratio", "hd_measure", "hd_pace_max")


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


def _stored_spec(study: optuna.Study) -> tuple[dict[str, Any], dict[str, Any]]:
    """The stored spec's (base config mapping, study section mapping); empty when there is none."""
    text = spec_text(study)
    if text is None:
        return {}, {}
    data = yaml.safe_load(text) or {}
    base, study_part = split_study_keys(data if isinstance(data, dict) else {})
    return base, study_part.get("study") or {}


def _config_with(base: dict[str, Any], params: dict[str, Any]) -> TrainConfig:
    return validate_train_config(apply_overrides(base, [f"{k}={_yaml_scalar(v)}" for k, v in params.items()]))


def _yaml_scalar(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def applicable(params: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """``params`` without the self-tuning settings the trial's mode does not read (``meta_lr`` in hd mode, the hd
    rule's settings in meta mode without a tuned lr, everything when self-tuning is off)."""
    try:
        tuning = _config_with(base, params).self_tuning
    except ConfigError:
        return params
    unused: set[str] = set()
    if not tuning.enabled:
        unused = {name for name in type(tuning).model_fields if name != "enabled"}
    elif not tuning.tuned():  # mode and params say why nothing tunes (hd mode without lr)
        unused = {name for name in type(tuning).model_fields if name not in ("enabled", "mode", "params")}
    elif tuning.mode == "hd":
        unused = set(META_ONLY)
    elif tuning.lr_rule != "hd" or "lr" not in tuning.tuned():
        unused = set(HD_RULE)
    return {key: value for key, value in params.items() if key.removeprefix("self_tuning.") not in unused}


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One row per trial: number, state, value, the step it was pruned at, the params that apply to it (a
    waiting trial's: those it was enqueued with)."""
    base, _ = _stored_spec(study)
    rows = []
    for trial in study.get_trials(deepcopy=False):
        pruned_at = trial.user_attrs.get("pruned_at_step")
        if pruned_at is None and trial.state == optuna.trial.TrialState.PRUNED and trial.intermediate_values:
            pruned_at = max(trial.intermediate_values)
        params = trial.params or trial.system_attrs.get("fixed_params", {})  # Optuna's enqueue_trial keeps them there
        rows.append(
            {
                "number": trial.number,
                "state": trial.state.name,
                "value": trial.value,
                "pruned_at": pruned_at,
                "params": applicable(params, base),
                "reason": trial.user_attrs.get("diverged") or trial.user_attrs.get("failure_reason"),
            }
        )
    return rows


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    try:
        return study.best_trial
    except ValueError:
        raise ConfigError(f"study {study.study_name!r} has no completed trial yet") from None


def export_best(study: optuna.Study, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write the best trial as a train config, with its learned hyperparameter trajectory as ``schedule``.

    An existing file is kept unless ``overwrite`` (as `train --out` keeps an existing run).
    """
    from dqnmap_auto.tuning.objective import trajectory_of
    from dqnmap_auto.tuning.spec import load_study_spec

    trial = best_trial(study)
    text = spec_text(study)
    if text is None:
        raise ConfigError(f"study {study.study_name!r} was not created by dqnmap-auto (no stored spec)")
    path = Path(path)
    if path.exists() and not overwrite:
        raise ConfigError(f"--export {path}: already exists; choose another file or pass --overwrite")
    with tempfile.TemporaryDirectory() as tmp:
        spec_file = Path(tmp) / f"{study.study_name}.yaml"
        spec_file.write_text(text, encoding="utf-8")
        spec = load_study_spec(spec_file)
    config = spec.trial_config(trial.params, seed=spec.base.training.seed)
    data = config.model_dump(mode="json")
    trajectory = trajectory_of(trial)
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


def check_in_space(key: str, value: Any, param: ParamSpec) -> Any:
    """``value`` as the search space's type, or a ConfigError saying how it falls outside the space (Optuna
    only warns, and then trains with it)."""
    if isinstance(param, CategoricalParam):
        if value not in param.choices:
            raise ConfigError(f"{key}={value!r}: not one of the search space's choices {param.choices}")
        return value
    kind = "an integer" if isinstance(param, IntParam) else "a number"
    if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"{key}={value!r}: expected {kind}") from None
    number_ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not number_ok or (isinstance(param, IntParam) and not float(value).is_integer()):
        raise ConfigError(f"{key}={value!r}: expected {kind}")
    given, value = value, int(value) if isinstance(param, IntParam) else float(value)
    if not param.low <= value <= param.high:
        raise ConfigError(f"{key}={given!r}: outside the search space [{param.low:g}, {param.high:g}]")
    step = param.step
    if step is not None and not math.isclose((value - param.low) / step, round((value - param.low) / step)):
        raise ConfigError(f"{key}={given!r}: not on the search space's grid (low {param.low:g}, step {step:g})")
    return value


def enqueue(study: optuna.Study, assignments: list[str]) -> dict[str, Any]:
    """Queue a trial with fixed parameters (``path=value``); the paths must be in the search space, the values
    inside it (type, range, step, choices), and the config they make valid."""
    base, study_section = _stored_spec(study)
    try:
        space = StudySettings.model_validate(study_section).search_space
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, prefix="study")) from None
    params: dict[str, Any] = {}
    for assignment in assignments:
        if "=" not in assignment:
            raise ConfigError(f"{assignment!r}: expected key=value")
        key, raw = assignment.split("=", 1)
        if key not in space:
            raise ConfigError(f"{key!r} is not in the search space of {study.study_name!r} ({sorted(space)})")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        params[key] = check_in_space(key, value, space[key])
    if not params:
        raise ConfigError("give at least one key=value")
    _config_with(base, params)  # e.g. a combination the config rejects
    study.enqueue_trial(params)
    return params


def remove_trial_artifacts(study: optuna.Study, store_dir: Path) -> int:
    """Remove the study's and its trials' Optuna artifacts (plots, notes' data, the spec) from the store."""
    from optuna.artifacts import FileSystemArtifactStore, get_all_artifact_meta
    from optuna.artifacts.exceptions import ArtifactNotFound

    if not store_dir.is_dir():
        return 0
    store = FileSystemArtifactStore(str(store_dir))
    metas = [
        meta
        for trial in study.get_trials(deepcopy=False)
        for meta in get_all_artifact_meta(trial, storage=study._storage)
    ]
    metas += get_all_artifact_meta(study)
    removed = 0
    for meta in metas:
        try:
            store.remove(meta.artifact_id)
            removed += 1
        except ArtifactNotFound:
            continue
    return removed


def delete(
    location: StudyLocation, name: str, *, tracking_uri: str | None = None, keep_mlflow: bool = False
) -> list[str]:
    """Delete a study and everything it wrote: its trials, their checkpoints and Optuna artifacts, and its MLflow
    experiment (``keep_mlflow``: renamed and kept). Returns what was removed, one phrase per store."""
    from dqnmap_auto.logs import LOGS_DIR
    from dqnmap_auto.tracking.cleanup import remove_experiment
    from dqnmap_auto.tracking.dashboard_notes import artifact_dir
    from dqnmap_auto.tracking.uris import check_reachable, default_tracking_uri

    study = load_existing(location, name)
    uri = tracking_uri or default_tracking_uri(location.directory)
    check_reachable(uri)  # before anything is removed
    removed = [f"study {name!r} ({len(study.get_trials(deepcopy=False))} trials)"]
    experiment = remove_experiment(uri, name, keep=keep_mlflow)
    if experiment is not None:
        removed.append(experiment)
    artifacts = remove_trial_artifacts(study, artifact_dir(location.directory))
    if artifacts:
        removed.append(f"{artifacts} optuna-dashboard artifacts")
    checkpoints = checkpoint_dir(location, name)
    if checkpoints.exists():
        shutil.rmtree(checkpoints)
        removed.append("its checkpoints")
    logs = location.directory / LOGS_DIR / name  # the trials' live logs (dqnmap_auto.logs)
    if logs.exists():
        shutil.rmtree(logs)
        removed.append("its live logs")
    optuna.delete_study(study_name=name, storage=location.open(create=False))
    return removed
