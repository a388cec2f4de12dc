"""Where a study lives and how a process opens it: the storage location, create-or-continue, load.

Shared by the invoking process and every worker (local processes or Dask workers), which each open the storage
themselves: Optuna coordinates them through it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna

from dqnmap_auto.errors import ConfigError
from dqnmap_auto.tuning.recovery import StaleTrialHandler
from dqnmap_auto.tuning.spec import StudySpec, build_pruner, build_sampler
from dqnmap_auto.tuning.storage import HeartbeatPolicy, describe_storage, open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPEC_ATTR = "spec"  # the spec's YAML text, stored on the study so `best --export` and `enqueue` can use it


@dataclass(frozen=True)
class StudyLocation:
    """Where a study lives: a storage URL (None: the project's journal) and the project directory."""

    storage: str | None
    directory: Path

    def open(self, *, create: bool = False, heartbeat: HeartbeatPolicy | None = None) -> optuna.storages.BaseStorage:
        return open_storage(self.storage, self.directory, create=create, heartbeat=heartbeat)

    def describe(self) -> str:
        return describe_storage(self.storage, self.directory)


def create_or_continue(
    spec: StudySpec,
    location: StudyLocation,
    *,
    name: str | None = None,
    worker: int = 0,
    stale_handler: StaleTrialHandler | None = None,
) -> optuna.Study:
    """Create the study, or load it with the spec's sampler and pruner if it already exists.

    The storage is opened for running trials: with Optuna heartbeats where it has them (RDB), whose stale
    trials go to ``stale_handler``.
    """
    heartbeat = HeartbeatPolicy(spec.study.heartbeat_interval, spec.study.stale_after, stale_handler)
    sampler_seed = spec.base.training.seed + worker if "seed" not in spec.study.sampler.args else None
    sampler = build_sampler(spec.study.sampler, seed=sampler_seed)
    if worker and "seed" in spec.study.sampler.args:  # same seed in every worker would repeat suggestions
        sampler = build_sampler(
            spec.study.sampler.model_copy(
                update={"args": {**spec.study.sampler.args, "seed": spec.study.sampler.args["seed"] + worker}}
            )
        )
    study = optuna.create_study(
        study_name=name or spec.name,
        storage=location.open(create=True, heartbeat=heartbeat),
        sampler=sampler,
        pruner=build_pruner(spec.study.pruner),
        direction="maximize",
        load_if_exists=True,
    )
    if SPEC_ATTR not in study.user_attrs:  # a new study
        study.set_user_attr(SPEC_ATTR, Path(spec.source).read_text(encoding="utf-8"))
        with warnings.catch_warnings():  # experimental since Optuna 3.2, stable in practice
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([spec.study.metric_name])
        for params in spec.study.enqueue:
            study.enqueue_trial(params, skip_if_exists=True)
    return study


def load_existing(location: StudyLocation, name: str) -> optuna.Study:
    """Load a study that must exist; the error lists the ones that do."""
    storage = location.open(create=False)
    names = optuna.get_all_study_names(storage)
    if name not in names:
        known = ", ".join(sorted(names)) or "none"
        raise ConfigError(f"study {name!r} does not exist in {location.describe()} (studies: {known})")
    return optuna.load_study(study_name=name, storage=storage)
